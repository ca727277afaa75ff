#include "daemon/pipeline/backend_channel.h"

#include <cerrno>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// Large enough for a 1 MiB read or write plus framing, or a big directory.
constexpr int kMaxMessageBytes = 64 << 20;
// Receive window of each call: room for a few 1 MiB replies.
constexpr int kStreamWindowBytes = 8 << 20;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
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
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
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
  std::function<void()> sent;
};

BackendChannel::BackendChannel(Options options)
    : options_(std::move(options)),
      channel_(MakeChannel(options_.target)),
      stub_(v1::FileSystem::NewStub(channel_)) {}

BackendChannel::~BackendChannel() {
  CancelAll();
  WaitIdle();
}

absl::StatusOr<v1::InitReply> BackendChannel::Init(
    const v1::InitRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.init_timeout));
  v1::InitReply reply;
  grpc::Status s = stub_->Init(&context, request, &reply);
  if (!s.ok()) return StatusFromGrpc(s, "Init on", options_.target);
  return reply;
}

void BackendChannel::Destroy() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.destroy_timeout));
  v1::DestroyRequest request;
  request.set_mount_id(options_.mount_id);
  v1::DestroyReply reply;
  stub_->Destroy(&context, request, &reply);  // best effort
}

void BackendChannel::Send(v1::Op op, Done done) {
  std::vector<PendingOp> ops;
  ops.push_back(PendingOp{std::move(op), std::move(done)});
  SendBatch(std::move(ops), nullptr);
}

void BackendChannel::SendBatch(std::vector<PendingOp> ops,
                               std::function<void()> sent) {
  auto owned = std::make_unique<Call>();
  Call* call = owned.get();
  call->request.set_mount_id(options_.mount_id);
  call->request.mutable_ops()->Reserve(ops.size());
  call->done.reserve(ops.size());
  for (PendingOp& p : ops) {
    *call->request.add_ops() = std::move(p.op);
    call->done.push_back(std::move(p.done));
  }
  call->sent = std::move(sent);
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.call_timeout));
  {
    absl::MutexLock lock(&mu_);
    in_flight_.emplace(call, std::move(owned));
  }
  stub_->async()->Execute(&call->context, &call->request, &call->response,
                          [this, call](grpc::Status s) { Finish(call, s); });
}

void BackendChannel::Finish(Call* call, const grpc::Status& status) {
  const int n = call->request.ops_size();
  if (options_.stats != nullptr) options_.stats->RecordBackendMessage(n, !status.ok());
  // Match results to ops by id; the backend may answer in any order, and
  // anything missing, duplicated or unknown is its bug: EIO for those ops.
  absl::flat_hash_map<uint64_t, int> position;
  position.reserve(n);
  for (int i = 0; i < n; ++i) position[call->request.ops(i).id()] = i;
  std::vector<bool> answered(n, false);
  if (status.ok()) {
    for (const v1::OpResult& r : call->response.results()) {
      auto it = position.find(r.id());
      if (it == position.end() || answered[it->second]) continue;
      answered[it->second] = true;
      call->done[it->second](r);
    }
  }
  int err = status.ok() ? EIO : ErrnoForStatus(status);
  for (int i = 0; i < n; ++i) {
    if (!answered[i]) call->done[i](ErrorResult(call->request.ops(i).id(), err));
  }
  if (call->sent) call->sent();
  absl::MutexLock lock(&mu_);
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
  {
    absl::MutexLock lock(&mu_);
    ++cancelling_;  // keeps every call alive until the loop below is done
    for (auto& [call, owned] : in_flight_) calls.push_back(call);
  }
  // Outside the lock: TryCancel may run the completion (Finish) inline.
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
