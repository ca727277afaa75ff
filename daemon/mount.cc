#include "daemon/mount.h"

#include <sys/stat.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/kernel_mount.h"

namespace fusehost {

absl::StatusOr<std::unique_ptr<Mount>> Mount::Create(MountSpec spec) {
  std::unique_ptr<Mount> m(new Mount(std::move(spec)));
  absl::StatusOr<MountOptions> options = ParseMountOptions(m->spec_.options_text);
  if (!options.ok()) return options.status();
  m->options_ = *std::move(options);

  BackendChannel::Options channel_options;
  channel_options.target = m->spec_.backend;
  channel_options.mount_id = m->spec_.mount_id;
  channel_options.call_timeout = m->options_.call_timeout;
  m->channel_ = std::make_unique<BackendChannel>(channel_options);

  v1::InitRequest init;
  init.set_mount_id(m->spec_.mount_id);
  init.set_mountpoint(m->spec_.mountpoint);
  init.set_protocol_version(1);
  for (const std::string& o : m->options_.backend_options) init.add_options(o);
  absl::StatusOr<v1::InitReply> reply = m->channel_->Init(init);
  if (!reply.ok()) return reply.status();
  if (reply->posix_errno() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend ", m->spec_.backend, " refused the mount: ",
                     std::strerror(reply->posix_errno())));
  }
  m->backend_name_ = reply->name();

  KernelMountRequest request;
  request.mountpoint = m->spec_.mountpoint;
  request.source =
      m->options_.fsname.empty() ? m->spec_.backend : m->options_.fsname;
  request.owner_uid = m->spec_.owner_uid;
  request.owner_gid = m->spec_.owner_gid;
  request.options = &m->options_;
  absl::StatusOr<KernelMount> km = MountFuse(request);
  if (!km.ok()) {
    m->channel_->Destroy();
    return km.status();
  }
  m->device_ = km->device;

  m->nodes_ = std::make_unique<NodeTable>();
  KernelAdapter::Options adapter_options;
  adapter_options.mount_id = m->spec_.mount_id;
  adapter_options.nodes = m->nodes_.get();
  adapter_options.transport = m->channel_.get();
  adapter_options.mount_options = &m->options_;
  adapter_options.posix_locks = reply->posix_locks();
  adapter_options.flock_locks = reply->flock_locks();
  adapter_options.fuse_fd = km->fuse_fd;
  Mount* self = m.get();
  adapter_options.on_session_end = [self] {
    if (self->spec_.on_session_end) self->spec_.on_session_end(self->spec_.mount_id);
  };
  absl::StatusOr<std::unique_ptr<KernelAdapter>> adapter =
      KernelAdapter::Start(std::move(adapter_options));
  if (!adapter.ok()) {
    UnmountFuse(m->spec_.mountpoint, /*lazy=*/true).IgnoreError();
    m->channel_->Destroy();
    return adapter.status();
  }
  m->adapter_ = *std::move(adapter);
  return m;
}

absl::Status Mount::Unmount(bool lazy) {
  absl::Status st = UnmountFuse(spec_.mountpoint, lazy);
  if (st.ok()) detached_.store(true);
  return st;
}

void Mount::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (adapter_ != nullptr) {
    if (!adapter_->session_ended()) {
      if (!detached_.load() && IsFuseMountpoint(spec_.mountpoint)) {
        UnmountFuse(spec_.mountpoint, /*lazy=*/true).IgnoreError();
        detached_.store(true);
      }
      // Files may still be open on the detached mount; they get ENOTCONN.
      AbortFuseConnection(device_);
    }
    adapter_->Stop();
  }
  if (channel_ != nullptr) channel_->Destroy();
}

Mount::~Mount() { Shutdown(); }

}  // namespace fusehost
