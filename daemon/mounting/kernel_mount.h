// mount(2)/umount2(2) of FUSE filesystems, done by the daemon itself rather
// than through libfuse, so that it controls user_id/group_id (the user a mount
// belongs to) and every flag. libfuse is then handed the opened /dev/fuse as
// "/dev/fd/N".
//
// Thread-safe: no shared state.

#ifndef FUSE_HOSTD_DAEMON_MOUNTING_KERNEL_MOUNT_H_
#define FUSE_HOSTD_DAEMON_MOUNTING_KERNEL_MOUNT_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/mounting/mount_options.h"
#include "daemon/mounting/mount_record.h"

namespace fusehost {

struct KernelMountRequest {
  std::string mountpoint;  // absolute, canonical
  // If valid, mount on this descriptor's directory (through
  // /proc/self/fd/N) instead of resolving `mountpoint` again: the directory
  // checked for a user is the one mounted on, whatever happens to the path.
  int mountpoint_fd = -1;
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
//
// With `expected_device` (the mount's st_dev) it unmounts only that mount:
// the parent directory is opened once, what its last component leads to is
// checked to be on a FUSE mount of that device (through its mount id, which
// asks the file system nothing: root may not even stat a user's mount), and
// the unmount goes through the opened parent, not following a symlink in
// the last component. A user who owns a directory on the path can then not
// swap in a symlink that redirects root's unmount to another mount
// (NOT_FOUND: "is no longer mounted there").
absl::Status UnmountFuse(const std::string& mountpoint, bool lazy,
                         dev_t expected_device = 0);

// Aborts the FUSE connection of `device` through /sys/fs/fuse/connections,
// failing every pending and future request with ENOTCONN. Used when a mount
// must go away even though files on it are still open.
void AbortFuseConnection(dev_t device);

// File system type of the topmost mount at `path` ("" if none).
std::string MountTypeAt(const std::string& path);

// True if `path` is the root of a FUSE mount ("fuse" or "fuse.*").
bool IsFuseMountpoint(const std::string& path);

// The device of the topmost mount at `path` (0 if none).
dev_t DeviceOfMountAt(const std::string& path);

// Detaches the mounts in `recorded` that are still there: same mountpoint,
// same device, a FUSE type. They are what a crashed daemon left behind: their
// connections are aborted (pending and future requests get ENOTCONN) and
// they are unmounted lazily. Returns the mountpoints detached.
std::vector<std::string> DetachStaleMounts(
    const std::vector<RecordedMount>& recorded);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_KERNEL_MOUNT_H_
