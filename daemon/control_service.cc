#include "daemon/control_service.h"

#include <cstdio>

namespace fusehost {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace

grpc::Status ControlService::Mount(grpc::ServerContext*,
                                   const v1::MountRequest* request,
                                   v1::MountReply* reply) {
  MountRequest r;
  r.backend = request->backend();
  r.mountpoint = request->mountpoint();
  r.options = request->options();
  absl::StatusOr<uint64_t> id = manager_->Mount(r);
  if (!id.ok()) {
    fprintf(stderr, "fuse-hostd: mount %s at %s refused: %s\n",
            r.backend.c_str(), r.mountpoint.c_str(),
            std::string(id.status().message()).c_str());
    return ToGrpc(id.status());
  }
  reply->set_mount_id(*id);
  return grpc::Status::OK;
}

grpc::Status ControlService::Unmount(grpc::ServerContext*,
                                     const v1::UnmountRequest* request,
                                     v1::UnmountReply*) {
  return ToGrpc(manager_->Unmount(request->mountpoint(), request->lazy()));
}

grpc::Status ControlService::List(grpc::ServerContext*, const v1::ListRequest*,
                                  v1::ListReply* reply) {
  for (const MountStatus& s : manager_->List()) {
    v1::MountInfo* info = reply->add_mounts();
    info->set_mount_id(s.mount_id);
    info->set_mountpoint(s.mountpoint);
    info->set_backend(s.backend);
    info->set_options(s.options);
    info->set_backend_name(s.backend_name);
    info->set_owner_uid(s.owner_uid);
    info->set_owner_gid(s.owner_gid);
    info->set_state(s.state);
  }
  return grpc::Status::OK;
}

}  // namespace fusehost
