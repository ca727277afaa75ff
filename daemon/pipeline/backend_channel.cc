#include "daemon/pipeline/backend_channel.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include "daemon/pipeline/broken_connection.h"
#include "google/protobuf/arena.h"

namespace fusehost {
namespace {

// The errno of an op whose message got no answer: one that changes
// something and was sent may have been applied, and must not look as if it
// never reached the backend.
int UnansweredErrno(const v1::Op& op, const grpc::Status& status, bool sent);

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

google::protobuf::ArenaOptions ArenaOptions() {
  google::protobuf::ArenaOptions options;
  // A page of a listing (a few hundred entries) in a few blocks.
  options.start_block_size = 4096;
  options.max_block_size = 64 * 1024;
  return options;
}

int UnansweredErrno(const v1::Op& op, const grpc::Status& status, bool sent) {
  if (status.ok()) return EIO;
  if (sent && status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      !Repeatable(op)) {
    return EIO;
  }
  return ErrnoForStatus(status);
}

}  // namespace

int ErrnoForStatus(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ETIMEDOUT;
    case grpc::StatusCode::UNAVAILABLE:
      return ENOTCONN;
    case grpc::StatusCode::CANCELLED:
      return ECANCELED;
    default:
      // Not ENOSYS for UNIMPLEMENTED: the kernel would remember it and never
      // send that operation again on this mount.
      return EIO;
  }
}

struct BackendChannel::Call {
  grpc::ClientContext context;
  v1::Batch request;
  // The answer is parsed into an arena: a listing is thousands of small
  // messages (entries, attributes, times), each otherwise a malloc and a
  // free, a large part of the daemon's cost of taking in a listing.
  google::protobuf::Arena arena{ArenaOptions()};
  v1::BatchResult* response =
      google::protobuf::Arena::CreateMessage<v1::BatchResult>(&arena);
  // Sent on a Session stream (of `conn`): the arena its result came in,
  // which `response` then points into, and how to cancel it.
  std::unique_ptr<google::protobuf::Arena> session_arena;
  BackendSession* session = nullptr;
  std::atomic<uint64_t> sequence{0};
  std::vector<Done> done;  // by op position in `request`
  std::vector<std::function<void(v1::OpResult*)>> check;  // likewise
  std::vector<OpHandles> tokens;  // likewise: what the op carried
  std::vector<int> reroutes;      // likewise (RoutedOp)
  std::function<void()> sent;
  // Set for the op that reopens a handle: it gets the result instead of
  // `done`, with the instance that answered, and no token is issued.
  std::function<void(const v1::OpResult&, uint64_t)> reopened;
  // Set once the message is on its way (it may wait for a connection).
  std::shared_ptr<Connection> conn;
  // How often it was sent again after its connection broke (see
  // RetryOnNewConnection).
  int retries = 0;
  // Plain TCP: the channel was connected when the message went out, so an
  // UNAVAILABLE is a connection that broke, not a backend never reached.
  bool started_connected = false;
};

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
      std::make_unique<BackendSession>(conn->stub.get(), ArenaOptions());
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

void BackendChannel::Fail(Call* call, int posix_errno) {
  grpc::Status status(posix_errno == ECANCELED ? grpc::StatusCode::CANCELLED
                                               : grpc::StatusCode::UNAVAILABLE,
                      "no connection to the backend");
  Finish(call, status);
}

bool BackendChannel::RetryOnNewConnection(Call* call,
                                          const grpc::Status& status) {
  // A connection breaks when its backend restarts or the network drops it.
  // Ops of a message in flight that change nothing wait for a new
  // connection instead: a short stall rather than ENOTCONN. A few times,
  // since a backend that is still going away may take a connection and
  // drop it. The others fail with EIO: they may have been applied. (A plain
  // TCP channel is remade by gRPC itself: the ops go again on it, waiting
  // for it to be ready.)
  constexpr int kMaxRetries = 4;
  if (call->retries >= kMaxRetries ||
      status.error_code() != grpc::StatusCode::UNAVAILABLE ||
      (!RemakesConnections() && !call->started_connected)) {
    return false;
  }
  const int n = call->request.ops_size();
  std::vector<bool> again(n);
  bool any = false;
  for (int i = 0; i < n; ++i) {
    const v1::Op& op = call->request.ops(i);
    // An op that names an earlier op's handle cannot go without it.
    again[i] =
        op.fh_from_op() == 0 &&
        (Repeatable(op) || (op.has_flush() && call->tokens[i].count == 1 &&
                            handles_.ReadOnly(call->tokens[i].fh[0])));
    any = any || again[i];
  }
  if (!any) return false;
  auto owned = std::make_unique<Call>();
  Call* next = owned.get();
  next->request.set_mount_id(call->request.mount_id());
  next->request.set_in_order(call->request.in_order());
  next->retries = call->retries + 1;
  next->reopened = std::move(call->reopened);
  std::vector<int> lost;
  for (int i = 0; i < n; ++i) {
    if (!again[i]) {
      lost.push_back(i);
      continue;
    }
    next->request.add_ops()->Swap(call->request.mutable_ops(i));
    next->done.push_back(std::move(call->done[i]));
    next->check.push_back(std::move(call->check[i]));
    next->tokens.push_back(call->tokens[i]);
    next->reroutes.push_back(call->reroutes[i]);
  }
  if (options_.stats != nullptr && !lost.empty()) {
    options_.stats->RecordBackendMessage(static_cast<int>(lost.size()), true);
  }
  for (int i : lost) {
    v1::OpResult failed = ErrorResult(call->request.ops(i).id(), EIO);
    if (call->check[i]) call->check[i](&failed);
    call->done[i](failed);
  }
  next->sent = std::move(call->sent);
  bool stopping;
  std::shared_ptr<Connection> remade_by_grpc;
  {
    absl::MutexLock lock(&mu_);
    if (RemakesConnections() && call->conn != nullptr && call->conn == conn_) {
      retired_.push_back(std::move(conn_));
      conn_.reset();
    }
    auto it = in_flight_.find(call);
    std::unique_ptr<Call> old = std::move(it->second);
    in_flight_.erase(it);
    in_flight_.emplace(next, std::move(owned));
    stopping = stopping_;
    if (!stopping && RemakesConnections()) {
      waiting_.emplace_back(next, CallDeadline(*next));
      want_dial_ = true;
    } else if (!stopping) {
      remade_by_grpc = conn_;
    }
    if (cancelling_ > 0) {
      // CancelAll() may still hold a pointer to the old call.
      finished_while_cancelling_.push_back(std::move(old));
    }
  }
  if (stopping) {
    Fail(next, ECANCELED);
  } else if (remade_by_grpc != nullptr) {
    next->context.set_wait_for_ready(true);
    Start(next, std::move(remade_by_grpc));
  }
  return true;
}

void BackendChannel::Finish(Call* call, const grpc::Status& status) {
  if (RetryOnNewConnection(call, status)) return;
  const int n = call->request.ops_size();
  if (options_.stats != nullptr) {
    options_.stats->RecordBackendMessage(n, !status.ok(),
                                         call->session != nullptr);
  }
  // Match results to ops by id; the backend may answer in any order, and
  // anything missing, duplicated or unknown is its bug: EIO for those ops.
  absl::flat_hash_map<uint64_t, int> position;
  position.reserve(n);
  for (int i = 0; i < n; ++i) position[call->request.ops(i).id()] = i;
  std::vector<bool> answered(n, false);
  // Ops the backend refused for carrying an earlier instance's handle: it
  // restarted since; they go again once their handles are reopened.
  std::vector<RoutedOp> stale;
  if (status.ok()) {
    const uint64_t instance = call->response->instance();
    if (handles_.SawInstance(instance) && options_.on_new_instance) {
      options_.on_new_instance(instance);
    }
    for (v1::OpResult& r : *call->response->mutable_results()) {
      auto it = position.find(r.id());
      if (it == position.end() || answered[it->second]) continue;
      const int i = it->second;
      answered[i] = true;
      v1::Op* op = call->request.mutable_ops(i);
      if (call->reopened) {
        call->reopened(r, instance);
        continue;
      }
      if (r.posix_errno() == EBADF && op->handle_instance() != 0 &&
          instance != 0 && op->handle_instance() != instance &&
          call->tokens[i].count > 0) {
        if (EndsHandle(*op)) {
          // Released with the instance that held it.
          v1::OpResult released = ErrorResult(r.id(), 0);
          released.mutable_empty();
          call->done[i](released);
          continue;
        }
        RoutedOp again{PendingOp{}, call->reroutes[i]};
        again.pending.op.Swap(op);
        SetHandles(&again.pending.op, call->tokens[i]);
        again.pending.op.clear_handle_instance();
        again.pending.done = std::move(call->done[i]);
        again.pending.check = std::move(call->check[i]);
        stale.push_back(std::move(again));
        continue;
      }
      if (call->check[i]) call->check[i](&r);
      handles_.IssueTokens(*op, instance, &r);
      handles_.NoteResult(*op, call->tokens[i], &r);
      call->done[i](r);
    }
  }
  const bool sent = call->conn != nullptr;
  for (int i = 0; i < n; ++i) {
    if (answered[i]) continue;
    const v1::Op& op = call->request.ops(i);
    v1::OpResult failed = ErrorResult(op.id(), UnansweredErrno(op, status, sent));
    if (call->reopened) {
      call->reopened(failed, 0);
      continue;
    }
    if (call->check[i]) call->check[i](&failed);
    call->done[i](failed);
  }
  if (!stale.empty()) Route(std::move(stale), nullptr);
  if (call->sent) call->sent();
  absl::MutexLock lock(&mu_);
  // A connection the daemon made is not remade by gRPC: once it fails, the
  // next message gets a new one.
  if (RemakesConnections() && call->conn != nullptr && call->conn == conn_ &&
      status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    retired_.push_back(std::move(conn_));
    conn_.reset();
  }
  auto it = in_flight_.find(call);
  std::unique_ptr<Call> owned = std::move(it->second);
  in_flight_.erase(it);
  if (cancelling_ > 0) {
    // CancelAll() may still hold a pointer to this call.
    finished_while_cancelling_.push_back(std::move(owned));
  } else {
    // Destroyed here, under the lock, so that WaitIdle() cannot return while
    // any part of the call is still alive.
    owned.reset();
  }
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
