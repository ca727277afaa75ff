#include "client/backend_service.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/blocking_counter.h"
#include "common/stat_convert.h"

namespace fusehost {
namespace {

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
           v1::BatchResult& results)
      : dispatcher(dispatcher),
        batch(batch),
        results(results),
        size(batch.ops_size()),
        finished(size) {}

  // Runs unclaimed ops until there are none. Each op's result slot is
  // written by exactly one thread.
  void Drain() {
    for (int i = next.fetch_add(1); i < size; i = next.fetch_add(1)) {
      dispatcher.Dispatch(batch.mount_id(), batch.ops(i),
                          results.mutable_results(i));
      finished.DecrementCount();
    }
  }

  const OpDispatcher& dispatcher;
  const v1::Batch& batch;
  v1::BatchResult& results;
  const int size;
  std::atomic<int> next{0};
  absl::BlockingCounter finished;
};

}  // namespace

BackendService::BackendService(FileSystem& fs, const Options& options)
    : fs_(fs), dispatcher_(fs), pool_(std::max(options.threads, 1)) {}

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
  reply->set_name(fs_.Name());
  return grpc::Status::OK;
}

grpc::Status BackendService::Destroy(grpc::ServerContext* /*context*/,
                                     const v1::DestroyRequest* request,
                                     v1::DestroyReply* /*reply*/) {
  fs_.Destroy(request->mount_id());
  return grpc::Status::OK;
}

grpc::Status BackendService::Execute(grpc::ServerContext* /*context*/,
                                     const v1::Batch* batch,
                                     v1::BatchResult* reply) {
  const int size = batch->ops_size();
  // All slots exist before any thread writes one, so the repeated field is
  // never resized while ops run.
  reply->mutable_results()->Reserve(size);
  for (int i = 0; i < size; ++i) reply->add_results();
  if (size <= 1) {
    // The common case for latency-bound requests: no hand-off.
    if (size == 1) {
      dispatcher_.Dispatch(batch->mount_id(), batch->ops(0),
                           reply->mutable_results(0));
    }
    return grpc::Status::OK;
  }
  auto run = std::make_shared<BatchRun>(dispatcher_, *batch, *reply);
  const int helpers = std::min(size - 1, pool_.size());
  for (int i = 0; i < helpers; ++i) {
    pool_.Schedule([run] { run->Drain(); });
  }
  run->Drain();
  run->finished.Wait();
  return grpc::Status::OK;
}

}  // namespace fusehost
