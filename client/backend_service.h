// The gRPC face of a FileSystem: implements the fusehost.v1.FileSystem
// service (proto/filesystem.proto) on gRPC's synchronous server API.
//
// Internal to the SDK; backends call Serve() from filesystem.h.

#ifndef FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_
#define FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>

#include "client/filesystem.h"
#include "client/op_dispatcher.h"
#include "client/thread_pool.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// The protocol version this SDK speaks (InitReply.protocol_version).
inline constexpr uint32_t kProtocolVersion = 1;

// Thread use: gRPC calls the handlers concurrently from its own threads. The
// service has no mutable state besides its thread pool, which is itself
// thread-safe. The FileSystem must outlive the service, and the service must
// outlive the grpc::Server it is registered with.
class BackendService final : public v1::FileSystem::Service {
 public:
  struct Options {
    // Pool threads that run a batch's operations next to the handler thread
    // that received it; values below 1 mean 1.
    int threads = 4;
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

 private:
  FileSystem& fs_;
  const OpDispatcher dispatcher_;
  // Last, so it is destroyed (and its workers joined) before the members its
  // closures could use.
  ThreadPool pool_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_BACKEND_SERVICE_H_
