// The daemon's connection to one backend: a gRPC channel to the backend's
// FileSystem service, with a deadline on every call, fast failure while the
// backend is down, and quick reconnection when it comes back.
//
// Transport failures are turned into per-op errnos here, the one place where
// a gRPC status meets the error model: a deadline becomes ETIMEDOUT, an
// unreachable backend ENOTCONN, anything else EIO.
//
// Thread-safe. Completion callbacks run on gRPC's threads and must not block.

#ifndef FUSE_HOSTD_DAEMON_BACKEND_CHANNEL_H_
#define FUSE_HOSTD_DAEMON_BACKEND_CHANNEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// Sends single operations to a backend; the seam that lets the kernel adapter
// be tested or layered (caches, batching) without a real backend.
class OpTransport {
 public:
  // Called exactly once with the op's result; on transport failure the result
  // carries the mapped errno.
  using Done = std::function<void(const v1::OpResult&)>;

  virtual ~OpTransport() = default;
  virtual void Send(v1::Op op, Done done) = 0;
  // Cancels every op in flight: their callbacks run soon with ECANCELED.
  virtual void CancelAll() = 0;
  // Blocks until no op is in flight.
  virtual void WaitIdle() = 0;
};

// Maps a failed gRPC status to the errno each op of the message gets.
int ErrnoForStatus(const grpc::Status& status);

class BackendChannel : public OpTransport {
 public:
  struct Options {
    // gRPC target: "unix:/path" or "host:port".
    std::string target;
    uint64_t mount_id = 0;
    // Deadline of each Execute call.
    absl::Duration call_timeout = absl::Seconds(30);
    // Deadline of Init.
    absl::Duration init_timeout = absl::Seconds(5);
    // Deadline of Destroy: short, since it runs while the daemon stops.
    absl::Duration destroy_timeout = absl::Seconds(1);
  };

  explicit BackendChannel(Options options);
  ~BackendChannel() override;

  // Init handshake; an error status (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
  // carries a one-line message meant for the user.
  absl::StatusOr<v1::InitReply> Init(const v1::InitRequest& request);
  // Best effort; never blocks longer than destroy_timeout.
  void Destroy();

  void Send(v1::Op op, Done done) override;

  void CancelAll() override;
  void WaitIdle() override;

 private:
  struct Call;
  void Finish(const std::shared_ptr<Call>& call, const grpc::Status& status);

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FileSystem::Stub> stub_;

  absl::Mutex mu_;
  absl::flat_hash_set<std::shared_ptr<Call>> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_BACKEND_CHANNEL_H_
