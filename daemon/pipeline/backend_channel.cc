#include "daemon/pipeline/backend_channel.h"

#include <fcntl.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include <grpcpp/create_channel_posix.h>

namespace fusehost {
namespace {

// Large enough for a 1 MiB read or write plus framing, or a big directory.
constexpr int kMaxMessageBytes = 64 << 20;
// Receive window of each call: room for a few 1 MiB replies.
constexpr int kStreamWindowBytes = 8 << 20;
// Least time between two TLS channels of one mount.
constexpr absl::Duration kRemakeSpacing = absl::Milliseconds(250);

grpc::ChannelArguments ChannelArgs(const std::string& server_name = "") {
  grpc::ChannelArguments args;
  // The name checked against the backend's certificate.
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // gRPC's default reconnect backoff grows to two minutes; a restarted
  // backend should resume its mount within a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Each mount gets its own connection, so one slow backend mount never
  // queues behind another's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Retries are the daemon's decision (an op may not be idempotent), and
  // gRPC's retry machinery buffers every call.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Each call is a new HTTP/2 stream, whose flow-control window starts
  // small; a 1 MiB read reply would wait for window updates on the way.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  // A connection the daemon made itself cannot be remade by gRPC: it must
  // not drop it for being idle.
  args.SetInt(GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS, INT_MAX);
  return args;
}

std::shared_ptr<BackendChannel::Connection> MakeConnection(
    std::shared_ptr<grpc::Channel> channel) {
  auto conn = std::make_shared<BackendChannel::Connection>();
  conn->stub = v1::FileSystem::NewStub(channel);
  conn->channel = std::move(channel);
  return conn;
}

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
  v1::BatchResult response;
  std::vector<Done> done;  // by op position in `request`
  std::vector<std::function<void(v1::OpResult*)>> check;  // likewise
  std::function<void()> sent;
  // Set once the message is on its way (it may wait for a connection).
  std::shared_ptr<Connection> conn;
  // Sent again after its connection broke (see RetryOnNewConnection).
  bool retried = false;
};

BackendChannel::BackendChannel(Options options) : options_(std::move(options)) {
  if (!RemakesConnections()) {
    conn_ = MakeConnection(grpc::CreateCustomChannel(
        options_.target, grpc::InsecureChannelCredentials(), ChannelArgs()));
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

absl::StatusOr<std::shared_ptr<BackendChannel::Connection>>
BackendChannel::Connect() {
  if (options_.dial) {
    absl::StatusOr<UniqueFd> fd = options_.dial();
    if (!fd.ok()) return fd.status();
    return MakeConnection(grpc::CreateCustomInsecureChannelFromFd(
        options_.target, fd->release(), ChannelArgs()));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      options_.credentials();
  if (!credentials.ok()) return credentials.status();
  return MakeConnection(grpc::CreateCustomChannel(
      options_.target, *credentials, ChannelArgs(options_.server_name)));
}

std::shared_ptr<BackendChannel::Connection> BackendChannel::LiveLocked() {
  // A connection made by gRPC is remade by gRPC; one the daemon made is
  // replaced once a call on it fails UNAVAILABLE (Finish). (A channel made
  // from a descriptor has no connectivity state to ask.)
  if (conn_ != nullptr) return conn_;
  want_dial_ = true;
  return nullptr;
}

void BackendChannel::DialLoop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](BackendChannel* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return c->stopping_ ||
                     (c->want_dial_ && absl::Now() >= c->next_dial_);
            },
            this),
        absl::Milliseconds(100));
    // Connections nothing uses any more are released here.
    std::vector<std::shared_ptr<Connection>> unused;
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->use_count() == 1) {
        unused.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
    // Messages that waited too long for a connection, or all of them when
    // stopping.
    std::vector<Call*> expired;
    const absl::Time now = absl::Now();
    while (!waiting_.empty() &&
           (stopping_ || now - waiting_.front().second >= options_.reconnect_wait)) {
      expired.push_back(waiting_.front().first);
      waiting_.pop_front();
    }
    const bool stopping = stopping_;
    const bool dial = !stopping && want_dial_ && conn_ == nullptr &&
                      now >= next_dial_;
    mu_.Unlock();
    unused.clear();
    for (Call* call : expired) Fail(call, stopping ? ECANCELED : ENOTCONN);
    absl::StatusOr<std::shared_ptr<Connection>> made =
        dial ? Connect() : absl::StatusOr<std::shared_ptr<Connection>>(nullptr);
    mu_.Lock();
    if (stopping) return;
    if (!dial) continue;
    if (!made.ok()) {
      // Once per change of reason: a backend that stays down is retried
      // every second.
      std::string why(made.status().message());
      if (why != last_dial_error_) {
        Log("%s%s", absl::IsPermissionDenied(made.status()) ? "audit: " : "",
            why);
        last_dial_error_ = why;
      }
      next_dial_ = absl::Now() + backoff_;
      backoff_ = std::min(backoff_ * 2, absl::Seconds(1));
      // Nobody waits: dial again only when someone needs the backend.
      if (waiting_.empty()) want_dial_ = false;
      continue;
    }
    conn_ = *std::move(made);
    want_dial_ = false;
    backoff_ = absl::Milliseconds(50);
    // A TLS channel is made before anything is known about the backend: a
    // backend that stays down would otherwise have one made (and the
    // certificate files read) for every failed message.
    if (options_.credentials) next_dial_ = absl::Now() + kRemakeSpacing;
    last_dial_error_.clear();
    std::vector<Call*> ready;
    for (auto& [call, since] : waiting_) ready.push_back(call);
    waiting_.clear();
    std::shared_ptr<Connection> conn = conn_;
    mu_.Unlock();
    for (Call* call : ready) Start(call, conn);
    mu_.Lock();
  }
}

std::shared_ptr<BackendChannel::Connection> BackendChannel::StreamConnection(
    absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  if (std::shared_ptr<Connection> conn = LiveLocked()) return conn;
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](BackendChannel* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return c->stopping_ || c->conn_ != nullptr;
          },
          this),
      wait);
  return stopping_ ? nullptr : conn_;
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
  SendBatch(std::move(ops), nullptr);
}

void BackendChannel::SendBatch(std::vector<PendingOp> ops,
                               std::function<void()> sent) {
  // Tokens back to the backend's handles; a stale one never leaves.
  std::vector<PendingOp> stale;
  for (auto it = ops.begin(); it != ops.end();) {
    if (handles_.ResolveTokens(&it->op)) {
      ++it;
    } else {
      stale.push_back(std::move(*it));
      it = ops.erase(it);
    }
  }
  for (PendingOp& p : stale) p.done(ErrorResult(p.op.id(), EBADF));
  if (ops.empty()) {
    if (sent) sent();
    return;
  }
  auto owned = std::make_unique<Call>();
  Call* call = owned.get();
  call->request.set_mount_id(options_.mount_id);
  call->request.mutable_ops()->Reserve(ops.size());
  call->done.reserve(ops.size());
  call->check.reserve(ops.size());
  for (PendingOp& p : ops) {
    *call->request.add_ops() = std::move(p.op);
    call->done.push_back(std::move(p.done));
    call->check.push_back(std::move(p.check));
  }
  call->sent = std::move(sent);
  std::shared_ptr<Connection> conn;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    in_flight_.emplace(call, std::move(owned));
    stopping = stopping_;
    if (!stopping) {
      conn = LiveLocked();
      if (conn == nullptr) {
        waiting_.emplace_back(call, absl::Now());
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

void BackendChannel::Start(Call* call, std::shared_ptr<Connection> conn) {
  // The earliest deadline of the ops it carries (each counts from its
  // kernel request's arrival), and never later than a fresh call's.
  absl::Time deadline = absl::Now() + options_.call_timeout;
  for (const v1::Op& op : call->request.ops()) {
    if (op.deadline_unix_ms() != 0) {
      deadline = std::min(deadline, absl::FromUnixMillis(op.deadline_unix_ms()));
    }
  }
  call->context.set_deadline(absl::ToChronoTime(deadline));
  v1::FileSystem::Stub* stub = conn->stub.get();
  {
    absl::MutexLock lock(&mu_);
    call->conn = std::move(conn);
  }
  stub->async()->Execute(&call->context, &call->request, &call->response,
                         [this, call](grpc::Status s) { Finish(call, s); });
}

void BackendChannel::Fail(Call* call, int posix_errno) {
  grpc::Status status(posix_errno == ECANCELED ? grpc::StatusCode::CANCELLED
                                               : grpc::StatusCode::UNAVAILABLE,
                      "no connection to the backend");
  Finish(call, status);
}

namespace {

// Ops that change nothing, so sending them again is harmless.
bool Repeatable(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kGetattr:
    case v1::Op::kReadlink:
    case v1::Op::kRead:
    case v1::Op::kOpendir:
    case v1::Op::kReaddir:
    case v1::Op::kStatfs:
    case v1::Op::kGetxattr:
    case v1::Op::kListxattr:
    case v1::Op::kAccess:
    case v1::Op::kLseek:
      return true;
    case v1::Op::kOpen:
      return (op.open().flags() & (O_CREAT | O_TRUNC)) == 0;
    default:
      return false;
  }
}

}  // namespace

bool BackendChannel::RetryOnNewConnection(Call* call,
                                          const grpc::Status& status) {
  // A connection the daemon made breaks for good when its backend restarts;
  // the first message on it after that fails, although the backend is back
  // (or about to be). Messages that change nothing wait for a new
  // connection instead, once: a short stall rather than ENOTCONN.
  if (!RemakesConnections() || call->retried ||
      status.error_code() != grpc::StatusCode::UNAVAILABLE) {
    return false;
  }
  for (const v1::Op& op : call->request.ops()) {
    if (!Repeatable(op)) return false;
  }
  auto again = std::make_unique<Call>();
  Call* next = again.get();
  next->request = std::move(call->request);
  next->done = std::move(call->done);
  next->check = std::move(call->check);
  next->sent = std::move(call->sent);
  next->retried = true;
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    // Put back: the caller fails it as usual.
    call->request = std::move(next->request);
    call->done = std::move(next->done);
    call->check = std::move(next->check);
    call->sent = std::move(next->sent);
    return false;
  }
  if (call->conn != nullptr && call->conn == conn_) {
    retired_.push_back(std::move(conn_));
    conn_.reset();
  }
  auto it = in_flight_.find(call);
  std::unique_ptr<Call> old = std::move(it->second);
  in_flight_.erase(it);
  in_flight_.emplace(next, std::move(again));
  waiting_.emplace_back(next, absl::Now());
  want_dial_ = true;
  if (cancelling_ > 0) {
    finished_while_cancelling_.push_back(std::move(old));
  } else {
    old.reset();
  }
  return true;
}

void BackendChannel::Finish(Call* call, const grpc::Status& status) {
  if (RetryOnNewConnection(call, status)) return;
  const int n = call->request.ops_size();
  if (options_.stats != nullptr) options_.stats->RecordBackendMessage(n, !status.ok());
  // Match results to ops by id; the backend may answer in any order, and
  // anything missing, duplicated or unknown is its bug: EIO for those ops.
  absl::flat_hash_map<uint64_t, int> position;
  position.reserve(n);
  for (int i = 0; i < n; ++i) position[call->request.ops(i).id()] = i;
  std::vector<bool> answered(n, false);
  if (status.ok()) {
    const uint64_t instance = call->response.instance();
    handles_.SawInstance(instance);
    for (v1::OpResult& r : *call->response.mutable_results()) {
      auto it = position.find(r.id());
      if (it == position.end() || answered[it->second]) continue;
      answered[it->second] = true;
      if (call->check[it->second]) call->check[it->second](&r);
      handles_.IssueTokens(call->request.ops(it->second), instance, &r);
      call->done[it->second](r);
    }
  }
  int err = status.ok() ? EIO : ErrnoForStatus(status);
  for (int i = 0; i < n; ++i) {
    if (!answered[i]) {
      v1::OpResult failed = ErrorResult(call->request.ops(i).id(), err);
      if (call->check[i]) call->check[i](&failed);
      call->done[i](failed);
    }
  }
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
  std::vector<Call*> calls;
  std::vector<Call*> waiting;
  {
    absl::MutexLock lock(&mu_);
    ++cancelling_;  // keeps every call alive until the loops below are done
    for (auto& [call, since] : waiting_) waiting.push_back(call);
    waiting_.clear();
    for (auto& [call, owned] : in_flight_) {
      if (call->conn != nullptr) calls.push_back(call);
    }
  }
  // Outside the lock: TryCancel may run the completion (Finish) inline.
  for (Call* call : waiting) Fail(call, ECANCELED);
  for (Call* call : calls) call->context.TryCancel();
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
