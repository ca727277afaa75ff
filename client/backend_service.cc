#include "client/backend_service.h"

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/time/time.h"
#include "client/in_order_batch.h"
#include "client/session_runner.h"
#include "common/stat_convert.h"

namespace fusehost {
namespace {

// How often an idle Invalidations handler checks whether its client went
// away: the sync API has no cancellation callback, only IsCancelled().
constexpr absl::Duration kCancelPoll = absl::Milliseconds(50);

// A random nonzero instance number. From the kernel's generator rather than
// a clock or pid: a restarted backend gets the same pid space and often the
// same second, and must not pick its predecessor's number.
uint64_t NewInstance() {
  uint64_t instance = 0;
  while (instance == 0) {
    if (getrandom(&instance, sizeof(instance), 0) != sizeof(instance)) {
      instance = 0;  // interrupted before the pool was ready: ask again
    }
  }
  return instance;
}

// The ops of one Execute call. The handler thread and a few pool helpers
// claim ops one at a time until none is left, so the batch finishes even
// when every pool thread is busy elsewhere (e.g. in an op that blocks): the
// handler thread alone can run all of it.
//
// Shared between them because a helper may start only after the handler
// thread has run every op and returned; such a helper claims nothing and
// touches nothing but `next`.
struct BatchRun {
  BatchRun(const OpDispatcher& dispatcher, const v1::Batch& batch,
           v1::BatchResult& results, std::vector<int> indexes)
      : dispatcher(dispatcher),
        batch(batch),
        results(results),
        indexes(std::move(indexes)),
        size(static_cast<int>(this->indexes.size())),
        finished(size) {}

  // Runs unclaimed ops until there are none. Each op's result slot is
  // written by exactly one thread.
  void Drain() {
    for (int k = next.fetch_add(1); k < size; k = next.fetch_add(1)) {
      const int i = indexes[k];
      dispatcher.Dispatch(batch.mount_id(), batch.ops(i),
                          results.mutable_results(i));
      finished.DecrementCount();
    }
  }

  const OpDispatcher& dispatcher;
  const v1::Batch& batch;
  v1::BatchResult& results;
  const std::vector<int> indexes;  // of the ops to run
  const int size;
  std::atomic<int> next{0};
  absl::BlockingCounter finished;
};

}  // namespace

BackendService::BackendService(FileSystem& fs, const Options& options)
    : fs_(fs),
      instance_(options.instance != 0 ? options.instance : NewInstance()),
      dispatcher_(fs, instance_, &descriptors_),
      max_queued_invalidations_(options.max_queued_invalidations),
      session_threads_(std::max(options.session_threads, 1)),
      pool_(std::max(options.threads, 1)) {}

grpc::Status BackendService::Init(grpc::ServerContext* /*context*/,
                                  const v1::InitRequest* request,
                                  v1::InitReply* reply) {
  MountInfo mount;
  mount.mount_id = request->mount_id();
  mount.mountpoint = request->mountpoint();
  mount.options.assign(request->options().begin(), request->options().end());
  InitResult result = fs_.Init(mount);
  reply->set_posix_errno(SanitizeErrno(result.posix_errno));
  reply->set_protocol_version(kProtocolVersion);
  reply->set_posix_locks(result.posix_locks);
  reply->set_flock_locks(result.flock_locks);
  reply->set_ioctl(result.ioctl);
  reply->set_runs_batches_in_order(true);
  reply->set_takes_handles_from_earlier_ops(true);  // see RunInOrder
  reply->set_releases_after_reply(true);  // see Execute
  reply->set_serves_session(true);
  reply->set_lists_by_path(result.lists_by_path);
  reply->set_posix_acl(result.posix_acl && request->posix_acl_capable());
  for (const std::string& prefix : result.unsupported_xattr_prefixes) {
    reply->add_unsupported_xattr_prefixes(prefix);
  }
  reply->set_no_xattrs(result.no_xattrs);
  reply->set_default_ttl_ms(result.default_ttl_ms);
  reply->set_name(fs_.Name());
  reply->set_instance(instance_);
  // Passthrough when both sides can: the daemon named its socket and the
  // filesystem hands out descriptors.
  if (result.posix_errno == 0 && result.passthrough &&
      !request->passthrough_socket().empty()) {
    reply->set_passthrough(descriptors_.Connect(request->mount_id(),
                                                request->passthrough_socket()));
    // Sent before the reply, as descriptors of opens are.
    if (reply->passthrough() && result.root_directory_fd >= 0 &&
        request->root_directory_tag() != 0 &&
        descriptors_.Send(request->mount_id(), request->root_directory_tag(),
                          result.root_directory_fd)) {
      reply->set_root_directory(true);
      reply->set_root_opens_as_caller(result.root_opens_as_caller);
      reply->set_root_changes_attributes(result.root_changes_attributes);
      reply->set_root_removes_names(result.root_removes_names);
      reply->set_root_creates_files(result.root_creates_files);
    }
  }
  return grpc::Status::OK;
}

grpc::Status BackendService::Destroy(grpc::ServerContext* /*context*/,
                                     const v1::DestroyRequest* request,
                                     v1::DestroyReply* /*reply*/) {
  descriptors_.Forget(request->mount_id());
  fs_.Destroy(request->mount_id());
  return grpc::Status::OK;
}

grpc::Status BackendService::Execute(grpc::ServerContext* /*context*/,
                                     const v1::Batch* batch,
                                     v1::BatchResult* reply) {
  reply->set_instance(instance_);
  const int size = batch->ops_size();
  // All slots exist before any thread writes one, so the repeated field is
  // never resized while ops run.
  reply->mutable_results()->Reserve(size);
  for (int i = 0; i < size; ++i) reply->add_results();
  if (size == 1) {
    // The common case for latency-bound requests: run here, nothing to
    // share out.
    dispatcher_.Dispatch(batch->mount_id(), batch->ops(0),
                         reply->mutable_results(0));
    return grpc::Status::OK;
  }
  // A release that comes with other ops is answered at once and done after,
  // so that their reply never waits for it (InitReply.releases_after_reply):
  // the daemon sends releases, which nothing waits for, with later ops.
  std::vector<int> now;
  now.reserve(size);
  for (int i = 0; i < size; ++i) {
    const v1::Op& op = batch->ops(i);
    // A release with another instance's handle is answered EBADF as usual.
    const bool ours =
        op.handle_instance() == 0 || op.handle_instance() == instance_;
    if (size > 1 && !batch->in_order() && ours &&
        (op.has_release() || op.has_releasedir())) {
      reply->mutable_results(i)->set_id(op.id());
      pool_.Schedule([this, mount_id = batch->mount_id(), op] {
        v1::OpResult ignored;
        dispatcher_.Dispatch(mount_id, op, &ignored);
      });
    } else {
      now.push_back(i);
    }
  }
  if (now.size() <= 1 || batch->in_order()) {
    // A release with one other op, or changes sent after their answer that
    // must reach the filesystem in order: no hand-off.
    RunInOrder(dispatcher_, *batch, now, reply);
    return grpc::Status::OK;
  }
  const int helpers =
      std::min(static_cast<int>(now.size()) - 1, pool_.size());
  auto run =
      std::make_shared<BatchRun>(dispatcher_, *batch, *reply, std::move(now));
  for (int i = 0; i < helpers; ++i) {
    pool_.Schedule([run] { run->Drain(); });
  }
  run->Drain();
  run->finished.Wait();
  return grpc::Status::OK;
}

grpc::Status BackendService::Session(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::BatchResult, v1::Batch>* stream) {
  class Stream final : public SessionStream<v1::Batch, v1::BatchResult> {
   public:
    explicit Stream(grpc::ServerReaderWriter<v1::BatchResult, v1::Batch>* s)
        : s_(s) {}
    bool Read(v1::Batch* batch) override { return s_->Read(batch); }
    bool Write(const v1::BatchResult& result) override {
      return s_->Write(result);
    }

   private:
    grpc::ServerReaderWriter<v1::BatchResult, v1::Batch>* s_;
  } adapted(stream);
  {
    absl::MutexLock lock(&streams_mu_);
    if (streams_ended_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "backend is shutting down");
    }
    sessions_.insert(context);
  }
  RunSession<v1::Batch, v1::BatchResult>(
      adapted, session_threads_,
      [this, context](const v1::Batch& batch, v1::BatchResult* result) {
        Execute(context, &batch, result);
        result->set_sequence(batch.sequence());
      });
  absl::MutexLock lock(&streams_mu_);
  sessions_.erase(context);
  return streams_ended_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "backend is shutting down")
                        : grpc::Status::OK;
}

grpc::Status BackendService::Invalidations(
    grpc::ServerContext* context, const v1::InvalidationsRequest* request,
    grpc::ServerWriter<v1::Invalidation>* writer) {
  // Notices are the backend's, not one mount's: every stream gets them,
  // but for those the FileSystem addressed to the other mounts only
  // (Notify*Except), hence the request's mount.
  std::unique_ptr<InvalidationHub::Subscription> subscription =
      fs_.invalidations_->Subscribe(request->mount_id(),
                                    max_queued_invalidations_);
  {
    absl::MutexLock lock(&streams_mu_);
    if (streams_ended_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "backend is shutting down");
    }
    streams_.insert(subscription.get());
  }
  writer->SendInitialMetadata();
  std::vector<v1::Invalidation> notices;
  bool open = true;
  while (open && !context->IsCancelled() &&
         subscription->Take(kCancelPoll, &notices)) {
    for (size_t i = 0; i < notices.size() && open; ++i) {
      // Lets gRPC put a burst into few frames; the last one goes out now.
      grpc::WriteOptions options;
      if (i + 1 < notices.size()) options.set_buffer_hint();
      open = writer->Write(notices[i], options);
    }
  }
  absl::MutexLock lock(&streams_mu_);
  streams_.erase(subscription.get());
  // A cancelled or broken stream has no status left to deliver; OK is as
  // good as any. After EndStreams the client should retry elsewhen.
  return streams_ended_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "backend is shutting down")
                        : grpc::Status::OK;
}

void BackendService::EndStreams() {
  absl::MutexLock lock(&streams_mu_);
  streams_ended_ = true;
  for (InvalidationHub::Subscription* subscription : streams_) {
    subscription->Close();
  }
  // Their reading ends; batches running are answered first.
  for (grpc::ServerContext* session : sessions_) session->TryCancel();
}

}  // namespace fusehost
