// The daemon's connection to one backend: a gRPC channel to the backend's
// FileSystem service, with a deadline on every call, fast failure while the
// backend is down, and quick reconnection when it comes back.
//
// Transport failures are turned into per-op errnos here, the one place where
// a gRPC status meets the error model: a deadline becomes ETIMEDOUT, an
// unreachable backend ENOTCONN, anything else EIO.
//
// Thread-safe. Completion callbacks run on gRPC's threads and must not block.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/stats/mount_stats.h"
#include "daemon/pipeline/op_transport.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// Maps a failed gRPC status to the errno each op of the message gets.
int ErrnoForStatus(const grpc::Status& status);

class BackendChannel : public OpTransport, public BatchSink {
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
    // Where messages are counted; may be null.
    MountStats* stats = nullptr;
  };

  explicit BackendChannel(Options options);
  ~BackendChannel() override;

  // Init handshake; an error status (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
  // carries a one-line message meant for the user.
  absl::StatusOr<v1::InitReply> Init(const v1::InitRequest& request);
  // Best effort; never blocks longer than destroy_timeout.
  void Destroy();

  // One op, one message.
  void Send(v1::Op op, Done done) override;
  void SendBatch(std::vector<PendingOp> ops, std::function<void()> sent) override;

  void CancelAll() override;
  void WaitIdle() override;

  // For the invalidation stream, which lives as long as the mount.
  v1::FileSystem::Stub* stub() { return stub_.get(); }

 private:
  struct Call;
  void Finish(Call* call, const grpc::Status& status);

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FileSystem::Stub> stub_;

  absl::Mutex mu_;
  // Sole owner of every call in flight. gRPC's callback holds a plain
  // pointer: a call (and its ClientContext, which references the channel)
  // must never outlive WaitIdle(), or the channel's last reference could be
  // dropped on a gRPC thread, which gRPC cannot handle.
  absl::flat_hash_map<Call*, std::unique_ptr<Call>> in_flight_
      ABSL_GUARDED_BY(mu_);
  int cancelling_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Call>> finished_while_cancelling_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_
