// mount(2)/umount2(2) of FUSE filesystems, done by the daemon itself rather
// than through libfuse, so that it controls user_id/group_id (the user a mount
// belongs to) and every flag. libfuse is then handed the opened /dev/fuse as
// "/dev/fd/N".
//
// Thread-safe: no shared state.

#ifndef FUSE_HOSTD_DAEMON_KERNEL_MOUNT_H_
#define FUSE_HOSTD_DAEMON_KERNEL_MOUNT_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/mount_options.h"

namespace fusehost {

struct KernelMountRequest {
  std::string mountpoint;  // absolute, canonical
  std::string source;      // shown as the device in /proc/mounts
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  const MountOptions* options = nullptr;
};

struct KernelMount {
  int fuse_fd = -1;     // the /dev/fuse connection, owned by the caller
  dev_t device = 0;     // st_dev of the mounted root; names the connection
};

// Opens /dev/fuse and mounts it at request.mountpoint.
absl::StatusOr<KernelMount> MountFuse(const KernelMountRequest& request);

// umount2(); `lazy` detaches even while files are open. EBUSY becomes
// FAILED_PRECONDITION ("busy").
absl::Status UnmountFuse(const std::string& mountpoint, bool lazy);

// Aborts the FUSE connection of `device` through /sys/fs/fuse/connections,
// failing every pending and future request with ENOTCONN. Used when a mount
// must go away even though files on it are still open.
void AbortFuseConnection(dev_t device);

// File system type of the topmost mount at `path` ("" if none).
std::string MountTypeAt(const std::string& path);

// True if `path` is the root of a FUSE mount ("fuse" or "fuse.*").
bool IsFuseMountpoint(const std::string& path);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_KERNEL_MOUNT_H_
