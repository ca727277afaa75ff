// The gRPC face of a FileSystem: implements the fusehost.v1.FileSystem
// service (proto/filesystem.proto) on gRPC's synchronous server API.
//
// Internal to the SDK; backends call Serve() from filesystem.h.

#ifndef FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_
#define FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "client/filesystem.h"
#include "client/invalidation_hub.h"
#include "client/op_dispatcher.h"
#include "client/thread_pool.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// The protocol version this SDK speaks (InitReply.protocol_version).
inline constexpr uint32_t kProtocolVersion = 1;

// Thread use: gRPC calls the handlers concurrently from its own threads;
// EndStreams may be called from any thread. The thread pool is thread-safe
// and the set of open streams is guarded by a mutex. The FileSystem must
// outlive the service, and the service must outlive the grpc::Server it is
// registered with.
class BackendService final : public v1::FileSystem::Service {
 public:
  struct Options {
    // Pool threads that run a batch's operations next to the handler thread
    // that received it; values below 1 mean 1.
    int threads = 4;
    // Notices an Invalidations stream may have waiting before they collapse
    // into one SUBTREE("/").
    size_t max_queued_invalidations = InvalidationHub::kDefaultMaxQueued;
    // Batches of one Session stream run at once, at most (session_runner.h).
    int session_threads = 8;
    // For tests only: the backend instance to answer as (see instance()).
    // 0, the default and what Serve() uses, picks a random one. Tests that
    // compare replies with fixed expectations (the conformance runner) set
    // it, since ops carrying handles are answered according to it.
    uint64_t instance = 0;
  };

  BackendService(FileSystem& fs, const Options& options);

  grpc::Status Init(grpc::ServerContext* context,
                    const v1::InitRequest* request,
                    v1::InitReply* reply) override;
  grpc::Status Destroy(grpc::ServerContext* context,
                       const v1::DestroyRequest* request,
                       v1::DestroyReply* reply) override;
  // Answers every op of the batch, running them concurrently. Always OK:
  // failures are per op, in each result's posix_errno.
  grpc::Status Execute(grpc::ServerContext* context, const v1::Batch* batch,
                       v1::BatchResult* reply) override;
  // Execute for each batch read from the stream, answered on it with the
  // batch's sequence, until the client ends the stream. Occupies its
  // handler thread, and up to session_threads - 1 more while batches run.
  grpc::Status Session(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::BatchResult, v1::Batch>* stream) override;
  // Writes the FileSystem's Notify* notices until the client cancels or
  // EndStreams runs. Sends the initial metadata as soon as the stream is
  // subscribed, so that a client that waits for it knows no later notice
  // can be missed. Occupies its handler thread for the life of the stream.
  grpc::Status Invalidations(
      grpc::ServerContext* context, const v1::InvalidationsRequest* request,
      grpc::ServerWriter<v1::Invalidation>* writer) override;

  // Ends every open Invalidations and Session stream (within one write, or
  // once the batches running are answered) and refuses later ones with
  // UNAVAILABLE. For shutdown: those streams never end by
  // themselves, and the server would otherwise wait out its whole grace
  // period for them.
  void EndStreams();

  // This service's backend instance (InitReply.instance in
  // proto/filesystem.proto): nonzero, picked at random when the service is
  // made, so once per Serve() call. It is sent in every InitReply and
  // BatchResult, and ops carrying handles of another instance fail with
  // EBADF without reaching the FileSystem (see OpDispatcher).
  uint64_t instance() const { return instance_; }

 private:
  FileSystem& fs_;
  const uint64_t instance_;
  // Before the dispatcher, which uses it.
  DescriptorSender descriptors_;
  const OpDispatcher dispatcher_;
  const size_t max_queued_invalidations_;
  const int session_threads_;

  absl::Mutex streams_mu_;
  bool streams_ended_ ABSL_GUARDED_BY(streams_mu_) = false;
  absl::flat_hash_set<InvalidationHub::Subscription*> streams_
      ABSL_GUARDED_BY(streams_mu_);
  absl::flat_hash_set<grpc::ServerContext*> sessions_
      ABSL_GUARDED_BY(streams_mu_);
  // Last, so it is destroyed (and its workers joined) before the members its
  // closures could use.
  ThreadPool pool_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_
