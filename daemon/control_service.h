// The gRPC Control service on the daemon's control socket: the front door
// for fuse-hostctl and mount helpers. It only translates between the wire
// and the MountManager; absl::Status codes and messages pass through as gRPC
// statuses, which the CLI prints as they are.
//
// Thread-safe (the MountManager is).

#ifndef FUSE_HOSTD_DAEMON_CONTROL_SERVICE_H_
#define FUSE_HOSTD_DAEMON_CONTROL_SERVICE_H_

#include "daemon/mount_manager.h"
#include "proto/control.grpc.pb.h"

namespace fusehost {

class ControlService final : public v1::Control::Service {
 public:
  explicit ControlService(MountManager* manager) : manager_(manager) {}

  grpc::Status Mount(grpc::ServerContext* context,
                     const v1::MountRequest* request,
                     v1::MountReply* reply) override;
  grpc::Status Unmount(grpc::ServerContext* context,
                       const v1::UnmountRequest* request,
                       v1::UnmountReply* reply) override;
  grpc::Status List(grpc::ServerContext* context,
                    const v1::ListRequest* request,
                    v1::ListReply* reply) override;

 private:
  MountManager* manager_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_SERVICE_H_
