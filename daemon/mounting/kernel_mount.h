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
  std::string mountpoint;  // absolute, canonical; for messages
  // If valid, mount on this descriptor's directory instead of resolving
  // `mountpoint` again: the directory checked for a user is the one mounted
  // on, whatever happens to the path.
  int mountpoint_fd = -1;
  std::string source;      // shown as the device in /proc/mounts
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  const MountOptions* options = nullptr;
};

// What a mount is, as the kernel knows it: never its path, which the owner
// of a directory on it may change at any time (rename a parent) or swap
// (a symlink where the directory was).
struct MountIdentity {
  int mount_id = 0;  // the kernel's mount id (/proc/self/mountinfo)
  dev_t device = 0;  // st_dev of the mounted root; names the connection
  bool valid() const { return mount_id > 0 && device != 0; }
};

struct KernelMount {
  int fuse_fd = -1;  // the /dev/fuse connection, owned by the caller
  MountIdentity identity;
};

// Opens /dev/fuse and mounts it at request.mountpoint. The mount is made
// detached first (fsopen/fsmount), so its identity is read from the mount
// itself before anything can move, and then attached to the directory
// (move_mount), which never resolves the path again when mountpoint_fd is
// given.
absl::StatusOr<KernelMount> MountFuse(const KernelMountRequest& request);

// The mount's current mountpoint, wherever its owner moved it ("" when it
// is no longer mounted).
std::string CurrentMountpoint(const MountIdentity& identity);

// Unmounts exactly the mount `identity` (umount2; `lazy` detaches even
// while files are open; EBUSY becomes FAILED_PRECONDITION, "busy"). It is
// found by its mount id wherever it is now; the unmount goes through the
// opened parent directory after checking that the name there leads to that
// very mount, and does not follow a symlink in the last component. NOT_FOUND
// ("is no longer mounted") when it is gone.
absl::Status UnmountFuse(const MountIdentity& identity, bool lazy);

// Aborts the FUSE connection of `device` through /sys/fs/fuse/connections,
// failing every pending and future request with ENOTCONN. Used when a mount
// must go away even though files on it are still open.
void AbortFuseConnection(dev_t device);

// File system type of the topmost mount at `path` ("" if none).
std::string MountTypeAt(const std::string& path);

// The mount id of what `path` names (its topmost mount when it is a
// mountpoint), looked up without asking any file system; 0 if none.
// Symlinks are followed (as root: callers resolve a user's paths as the
// user first).
int MountIdAt(const std::string& path);

// Detaches the mounts in `recorded` that are still there: the same mount id
// and device and a FUSE type, wherever they are now (records without a
// mount id: the same mountpoint and device). They are what a crashed
// daemon left behind: their connections are aborted (pending and future
// requests get ENOTCONN) and they are unmounted lazily. Returns the
// mountpoints detached.
std::vector<std::string> DetachStaleMounts(
    const std::vector<RecordedMount>& recorded);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_KERNEL_MOUNT_H_
