#include "daemon/backend_channel.h"

#include <cerrno>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// Large enough for a 1 MiB read or write plus framing, or a big directory.
constexpr int kMaxMessageBytes = 64 << 20;

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
    case grpc::StatusCode::UNIMPLEMENTED:
      return ENOSYS;
    default:
      return EIO;
  }
}

struct BackendChannel::Call {
  grpc::ClientContext context;
  v1::Batch request;
  v1::BatchResult response;
  uint64_t op_id = 0;
  Done done;
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
  auto call = std::make_shared<Call>();
  call->op_id = op.id();
  call->done = std::move(done);
  call->request.set_mount_id(options_.mount_id);
  *call->request.add_ops() = std::move(op);
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.call_timeout));
  {
    absl::MutexLock lock(&mu_);
    in_flight_.insert(call);
  }
  stub_->async()->Execute(&call->context, &call->request, &call->response,
                          [this, call](grpc::Status s) { Finish(call, s); });
}

void BackendChannel::Finish(const std::shared_ptr<Call>& call,
                            const grpc::Status& status) {
  v1::OpResult result;
  bool found = false;
  if (status.ok()) {
    for (v1::OpResult& r : *call->response.mutable_results()) {
      if (r.id() == call->op_id) {
        result = std::move(r);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    result.Clear();
    result.set_id(call->op_id);
    // An OK reply without our op's result is a backend bug: EIO.
    result.set_posix_errno(status.ok() ? EIO : ErrnoForStatus(status));
  }
  call->done(result);
  absl::MutexLock lock(&mu_);
  in_flight_.erase(call);
}

void BackendChannel::CancelAll() {
  std::vector<std::shared_ptr<Call>> calls;
  {
    absl::MutexLock lock(&mu_);
    calls.assign(in_flight_.begin(), in_flight_.end());
  }
  // Outside the lock: a cancelled call may complete on this very thread.
  for (const auto& call : calls) call->context.TryCancel();
}

void BackendChannel::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](absl::flat_hash_set<std::shared_ptr<Call>>* s) { return s->empty(); },
      &in_flight_));
}

}  // namespace fusehost
