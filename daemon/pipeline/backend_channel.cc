// BackendChannel: messages made from ops (handles resolved, ids made
// unique) and sent on a connection or a Session stream. Their answers and
// retries are in backend_channel_answers.cc, the connections in
// backend_channel_connections.cc.

#include "daemon/pipeline/backend_channel.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/pipeline/backend_channel_call.h"
#include "google/protobuf/arena.h"

namespace fusehost {
namespace {

absl::Status StatusFromGrpc(const grpc::Status& s, absl::string_view what,
                            absl::string_view target) {
  std::string msg = absl::StrCat(what, " ", target, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(
          absl::StrCat("backend ", target, " is unreachable: ",
                       s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(
          absl::StrCat("backend ", target, " did not answer in time"));
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::FailedPreconditionError(absl::StrCat(
          "backend ", target, " does not serve the fuse-hostd FileSystem service"));
    default:
      return absl::UnknownError(msg);
  }
}

}  // namespace

BackendChannel::BackendChannel(Options options)
    : options_(std::move(options)),
      reopener_(
          &handles_,
          [this](v1::Op op,
                 std::function<void(const v1::OpResult&, uint64_t)> done) {
            SendReopen(std::move(op), std::move(done));
          },
          [this](std::vector<RoutedOp> ops) { Route(std::move(ops), nullptr); },
          options_.target) {
  if (!RemakesConnections()) {
    conn_ = InsecureTcpConnection();
    return;
  }
  dial_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "backend-dial");  // for top -H
    DialLoop();
  });
}

BackendChannel::~BackendChannel() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (dial_thread_.joinable()) dial_thread_.join();
  CancelAll();
  WaitIdle();
  // The connections go here, on the destroying thread, never on gRPC's.
}


absl::StatusOr<v1::InitReply> BackendChannel::Init(
    const v1::InitRequest& request) {
  std::shared_ptr<Connection> conn;
  {
    absl::MutexLock lock(&mu_);
    conn = conn_;
  }
  if (conn == nullptr) {
    // The first connection is made here, on the caller's thread, so that
    // a refusal reaches the user who asked for the mount.
    absl::StatusOr<std::shared_ptr<Connection>> made = Connect();
    if (!made.ok()) return made.status();
    conn = *std::move(made);
    absl::MutexLock lock(&mu_);
    if (conn_ == nullptr) {
      conn_ = conn;
    } else {
      retired_.push_back(conn);
      conn = conn_;
    }
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.init_timeout));
  v1::InitReply reply;
  grpc::Status s = conn->stub->Init(&context, request, &reply);
  if (!s.ok()) return StatusFromGrpc(s, "Init on", options_.target);
  handles_.SawInstance(reply.instance());
  serves_session_.store(options_.session && reply.serves_session());
  takes_handles_from_ops_.store(reply.runs_batches_in_order() &&
                                reply.takes_handles_from_earlier_ops());
  return reply;
}

void BackendChannel::Destroy() {
  std::shared_ptr<Connection> conn;
  {
    absl::MutexLock lock(&mu_);
    conn = conn_;
  }
  if (conn == nullptr) return;  // nobody to say goodbye to
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.destroy_timeout));
  v1::DestroyRequest request;
  request.set_mount_id(options_.mount_id);
  v1::DestroyReply reply;
  conn->stub->Destroy(&context, request, &reply);  // best effort
}

void BackendChannel::Send(v1::Op op, Done done) {
  std::vector<PendingOp> ops;
  ops.push_back(PendingOp{std::move(op), std::move(done)});
  SendBatch(std::move(ops), nullptr, /*in_order=*/false);
}

void BackendChannel::SendBatch(std::vector<PendingOp> ops,
                               std::function<void()> sent, bool in_order) {
  std::vector<RoutedOp> routed;
  routed.reserve(ops.size());
  for (PendingOp& p : ops) routed.push_back(RoutedOp{std::move(p), 0});
  Route(std::move(routed), std::move(sent), in_order);
}

void BackendChannel::Route(std::vector<RoutedOp> ops,
                           std::function<void()> sent, bool in_order) {
  // Tokens back to the backend's handles; a stale one never leaves (it is
  // reopened first and goes on alone, after the rest of an in-order batch).
  auto owned = std::make_unique<Call>();
  Call* call = owned.get();
  call->request.set_mount_id(options_.mount_id);
  call->request.set_in_order(in_order);
  // Creates answered early that this message carries, by token, with their
  // positions in it; and the ops that take their handles from them (index,
  // the create's index), whose fh_from_op is set once ids are final.
  absl::flat_hash_map<uint64_t, int> creates;
  std::vector<std::pair<int, int>> from_earlier;
  const bool from_ops = in_order && takes_handles_from_ops_.load();
  // `r`, its handles resolved to `tokens`' backend handles, joins the call.
  auto add = [call](RoutedOp& r, const OpHandles& tokens) {
    *call->request.add_ops() = std::move(r.pending.op);
    call->done.push_back(std::move(r.pending.done));
    call->check.push_back(std::move(r.pending.check));
    call->tokens.push_back(tokens);
    call->reroutes.push_back(r.reroutes);
  };
  for (RoutedOp& r : ops) {
    if (from_ops) {
      const OpHandles carried = HandlesOf(r.pending.op);
      auto created =
          carried.count == 1 ? creates.find(carried.fh[0]) : creates.end();
      if (created != creates.end() &&
          handles_.ResolveFromEarlierOp(&r.pending.op, carried.fh[0])) {
        from_earlier.emplace_back(call->request.ops_size(), created->second);
        add(r, carried);
        continue;
      }
      if (r.pending.creates_token != 0) {
        creates[r.pending.creates_token] = call->request.ops_size();
      }
    }
    HandleRoute route = handles_.Resolve(&r.pending.op);
    if (route.kind == HandleRoute::kReopen) {
      const int i = route.tokens.fh[0] == route.stale ? 0 : 1;
      std::string path = HandlePathOf(r.pending.op, i);
      reopener_.Hold(route.stale, path, std::move(r));
      continue;
    }
    if (route.kind == HandleRoute::kAnswer) {
      v1::OpResult answer = ErrorResult(r.pending.op.id(), route.posix_errno);
      if (route.posix_errno == 0) answer.mutable_empty();
      r.pending.done(answer);
      continue;
    }
    add(r, route.tokens);
  }
  if (call->request.ops_size() == 0) {
    if (sent) sent();
    return;
  }
  // Ops sent again come from several messages: ids are made unique anew.
  std::vector<uint64_t> ids;
  for (const v1::Op& op : call->request.ops()) ids.push_back(op.id());
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    for (int i = 0; i < call->request.ops_size(); ++i) {
      call->request.mutable_ops(i)->set_id(i + 1);
    }
  }
  for (auto [op, create] : from_earlier) {
    call->request.mutable_ops(op)->set_fh_from_op(
        call->request.ops(create).id());
  }
  call->sent = std::move(sent);
  Launch(std::move(owned));
}

void BackendChannel::SendReopen(
    v1::Op op, std::function<void(const v1::OpResult&, uint64_t)> done) {
  auto owned = std::make_unique<Call>();
  op.set_id(1);
  owned->request.set_mount_id(options_.mount_id);
  *owned->request.add_ops() = std::move(op);
  owned->done.emplace_back();
  owned->check.emplace_back();
  owned->tokens.emplace_back();
  owned->reroutes.push_back(0);
  owned->reopened = std::move(done);
  Launch(std::move(owned));
}

void BackendChannel::Launch(std::unique_ptr<Call> owned) {
  Call* call = owned.get();
  std::shared_ptr<Connection> conn;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    in_flight_.emplace(call, std::move(owned));
    stopping = stopping_;
    if (!stopping) {
      conn = LiveLocked();
      if (conn == nullptr) {
        waiting_.emplace_back(call, CallDeadline(*call));
        return;  // the dial thread sends it, or fails it
      }
    }
  }
  if (stopping) {
    Fail(call, ECANCELED);
    return;
  }
  Start(call, std::move(conn));
}

absl::Time BackendChannel::CallDeadline(const Call& call) const {
  // The earliest deadline of the ops it carries (each counts from its
  // kernel request's arrival), and never later than a fresh call's.
  absl::Time deadline = absl::Now() + options_.call_timeout;
  for (const v1::Op& op : call.request.ops()) {
    if (op.deadline_unix_ms() != 0) {
      deadline = std::min(deadline, absl::FromUnixMillis(op.deadline_unix_ms()));
    }
  }
  return deadline;
}

void BackendChannel::Start(Call* call, std::shared_ptr<Connection> conn) {
  call->context.set_deadline(absl::ToChronoTime(CallDeadline(*call)));
  v1::FileSystem::Stub* stub = conn->stub.get();
  if (!RemakesConnections()) {
    call->started_connected =
        conn->channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
  }
  Connection* on = conn.get();
  {
    absl::MutexLock lock(&mu_);
    call->conn = std::move(conn);
  }
  if (StartOnSession(call, on)) return;
  stub->async()->Execute(&call->context, &call->request, call->response,
                         [this, call](grpc::Status s) { Finish(call, s); });
}

bool BackendChannel::StartOnSession(Call* call, Connection* conn) {
  // Not from a session's own threads: the write could wait for flow
  // control that only that session's reader frees.
  if (!serves_session_.load() || BackendSession::OnSessionThread()) {
    return false;
  }
  BackendSession* session = SessionOf(conn);  // with a use held
  if (session == nullptr) return false;
  {
    absl::MutexLock lock(&mu_);
    call->session = session;
  }
  // Once sent, `call` may be answered and gone at any moment.
  const bool sent = session->Send(
      &call->request, CallDeadline(*call),
      [this, call](const grpc::Status& status,
                   std::unique_ptr<google::protobuf::Arena> arena,
                   v1::BatchResult* result) {
        if (result != nullptr) {
          call->session_arena = std::move(arena);
          call->response = result;
        }
        if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
          // It said it serves Session, and does not: no batch of the
          // stream ran, so this one goes again as an Execute call, as all
          // later ones do.
          serves_session_.store(false);
          std::shared_ptr<Connection> conn;
          {
            absl::MutexLock lock(&mu_);
            call->session = nullptr;
            conn = call->conn;
          }
          Start(call, std::move(conn));
          return;
        }
        Finish(call, status);
      },
      &call->sequence);
  if (!sent) {
    absl::MutexLock lock(&mu_);
    call->session = nullptr;
  }
  session->Unuse();
  return sent;
}

BackendSession* BackendChannel::SessionOf(Connection* conn) {
  {
    absl::MutexLock lock(&mu_);
    if (conn->session != nullptr && !conn->session->broken()) {
      conn->session->Use();
      return conn->session.get();
    }
    if (conn->opening_session) return nullptr;  // an Execute call meanwhile
    conn->opening_session = true;
  }
  auto fresh =
      std::make_unique<BackendSession>(conn->stub.get(), CallArenaOptions());
  std::vector<std::unique_ptr<BackendSession>> ended;
  absl::MutexLock lock(&mu_);
  conn->opening_session = false;
  if (conn->session != nullptr) {
    conn->broken_sessions.push_back(std::move(conn->session));
  }
  conn->session = std::move(fresh);
  // Broken streams whose threads are over: their calls are answered, so
  // nothing refers to them unless CancelAll is looking at those calls or a
  // sender has not yet seen that they broke.
  if (cancelling_ == 0) {
    auto& old = conn->broken_sessions;
    for (auto it = old.begin(); it != old.end();) {
      if ((*it)->finished() && !(*it)->in_use()) {
        ended.push_back(std::move(*it));
        it = old.erase(it);
      } else {
        ++it;
      }
    }
  }
  BackendSession* session = conn->session.get();
  session->Use();
  mu_.Unlock();
  ended.clear();  // outside the lock: joins threads already over
  mu_.Lock();
  return session;
}

void BackendChannel::CancelAll() {
  // Each call sent, with the session it went on (null: an Execute call).
  std::vector<std::pair<Call*, BackendSession*>> calls;
  std::vector<Call*> waiting;
  {
    absl::MutexLock lock(&mu_);
    // Keeps every call alive until the loops below are done, and every
    // session too (SessionOf destroys none meanwhile).
    ++cancelling_;
    for (auto& [call, since] : waiting_) waiting.push_back(call);
    waiting_.clear();
    for (auto& [call, owned] : in_flight_) {
      if (call->conn != nullptr) calls.emplace_back(call, call->session);
    }
  }
  // Outside the lock: TryCancel and Cancel may run the completion (Finish)
  // inline.
  for (Call* call : waiting) Fail(call, ECANCELED);
  for (auto& [call, session] : calls) {
    if (session != nullptr) {
      session->Cancel(call->sequence.load());
    } else {
      call->context.TryCancel();
    }
  }
  std::vector<std::unique_ptr<Call>> finished;
  {
    absl::MutexLock lock(&mu_);
    if (--cancelling_ == 0) finished.swap(finished_while_cancelling_);
  }
}

void BackendChannel::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](absl::flat_hash_map<Call*, std::unique_ptr<Call>>* m) {
        return m->empty();
      },
      &in_flight_));
}

}  // namespace fusehost
