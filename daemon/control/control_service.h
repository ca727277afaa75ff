// The gRPC Control service on the daemon's control socket: the front door
// for fuse-hostctl and mount.fuse.hostd. Every call is made on behalf of the
// kernel credentials of its connection (control_listener.h) and authorized
// (authorizer.h) before the MountManager acts on it; absl::Status codes and
// one-line messages pass through as gRPC statuses, which the CLI prints as
// they are.
//
// Audit: every mount and unmount, allowed or refused, and every other
// refusal, is one line in the daemon's log:
//   fuse-hostd: audit: uid=1001(alice) pid=42: mount unix:/s at /m: refused: ...
//
// Thread-safe (the MountManager and Authorizer are).

#ifndef FUSE_HOSTD_DAEMON_CONTROL_CONTROL_SERVICE_H_
#define FUSE_HOSTD_DAEMON_CONTROL_CONTROL_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "daemon/authz/authorizer.h"
#include "daemon/mount_manager.h"
#include "daemon/sockets/peer_credentials.h"
#include "proto/control.grpc.pb.h"

namespace fusehost {

class ControlService final : public v1::Control::Service {
 public:
  struct Options {
    MountManager* manager = nullptr;
    const Authorizer* authorizer = nullptr;
    // Who made a call (ControlListener::CallerOf).
    std::function<absl::StatusOr<PeerCredentials>(const grpc::ServerContext&)>
        caller_of;
    // Requests of one user other than root served at once; more are
    // refused (RESOURCE_EXHAUSTED). 0: no limit.
    size_t max_requests_in_flight_per_uid = 0;
  };

  explicit ControlService(Options options) : options_(std::move(options)) {}

  grpc::Status Mount(grpc::ServerContext* context,
                     const v1::MountRequest* request,
                     v1::MountReply* reply) override;
  grpc::Status Unmount(grpc::ServerContext* context,
                       const v1::UnmountRequest* request,
                       v1::UnmountReply* reply) override;
  grpc::Status List(grpc::ServerContext* context,
                    const v1::ListRequest* request,
                    v1::ListReply* reply) override;
  grpc::Status Stats(grpc::ServerContext* context,
                     const v1::StatsRequest* request,
                     v1::StatsReply* reply) override;

 private:
  // Who called, counted as one request in flight until the returned guard
  // goes; an error status when the caller is unknown or over the limit.
  class InFlight;
  absl::StatusOr<std::unique_ptr<InFlight>> Admit(
      const grpc::ServerContext& context, PeerCredentials* caller);

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<uid_t, size_t> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_CONTROL_SERVICE_H_
