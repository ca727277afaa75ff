#include "daemon/mounting/kernel_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/mounting/mountinfo.h"

namespace fusehost {

absl::StatusOr<KernelMount> MountFuse(const KernelMountRequest& request) {
  const MountOptions& opts = *request.options;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open /dev/fuse: ", std::strerror(errno)));
  }
  std::string data = absl::StrCat("fd=", fd, ",rootmode=40000,user_id=",
                                  request.owner_uid,
                                  ",group_id=", request.owner_gid);
  if (opts.default_permissions) data += ",default_permissions";
  if (opts.allow_other) data += ",allow_other";
  unsigned long flags = 0;
  if (opts.read_only) flags |= MS_RDONLY;
  if (opts.nosuid) flags |= MS_NOSUID;
  if (opts.nodev) flags |= MS_NODEV;
  if (opts.noexec) flags |= MS_NOEXEC;
  if (opts.noatime) flags |= MS_NOATIME;
  std::string type = absl::StrCat("fuse.", opts.subtype);
  // mount(2) follows the /proc magic link to the very directory the
  // descriptor holds, without resolving the original path again.
  std::string target =
      request.mountpoint_fd >= 0
          ? absl::StrCat("/proc/self/fd/", request.mountpoint_fd)
          : request.mountpoint;
  if (mount(request.source.c_str(), target.c_str(), type.c_str(), flags,
            data.c_str()) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("mount ", request.mountpoint,
                                            ": ", std::strerror(err)));
  }
  KernelMount km;
  km.fuse_fd = fd;
  // The new mount's st_dev names its connection under /sys/fs/fuse. Asking
  // stat() would already go through the filesystem (and wait for INIT), so
  // read it from /proc/self/mountinfo instead.
  km.device = DeviceOfMountAt(request.mountpoint);
  return km;
}

absl::Status UnmountFuse(const std::string& mountpoint, bool lazy,
                         dev_t expected_device) {
  std::string target = mountpoint;
  int flags = lazy ? MNT_DETACH : 0;
  int parent_fd = -1;
  size_t slash = mountpoint.rfind('/');
  if (expected_device != 0 && slash != std::string::npos &&
      slash + 1 < mountpoint.size()) {
    std::string parent = slash == 0 ? "/" : mountpoint.substr(0, slash);
    std::string last = mountpoint.substr(slash + 1);
    parent_fd = open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    int root_fd = parent_fd < 0 ? -1
                                : openat(parent_fd, last.c_str(),
                                         O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int mount_id = root_fd < 0 ? -1 : MountIdOfFd(root_fd);
    if (root_fd >= 0) close(root_fd);  // it would keep the mount busy
    bool ours = false;
    for (const MountinfoEntry& e : ReadMountinfo()) {
      if (e.mount_id == mount_id) {
        ours = e.device == expected_device && IsFuseType(e.fs_type);
      }
    }
    if (!ours) {
      if (parent_fd >= 0) close(parent_fd);
      return absl::NotFoundError(
          absl::StrCat(mountpoint, " is no longer mounted there"));
    }
    target = absl::StrCat("/proc/self/fd/", parent_fd, "/", last);
    flags |= UMOUNT_NOFOLLOW;
  }
  int rc = umount2(target.c_str(), flags);
  int err = errno;
  if (parent_fd >= 0) close(parent_fd);
  if (rc == 0) return absl::OkStatus();
  if (err == EBUSY) {
    return absl::FailedPreconditionError(absl::StrCat(
        mountpoint, " is busy (files are open); use --lazy to detach it"));
  }
  return absl::InternalError(
      absl::StrCat("unmount ", mountpoint, ": ", std::strerror(err)));
}

void AbortFuseConnection(dev_t device) {
  if (device == 0) return;
  std::string path =
      absl::StrCat("/sys/fs/fuse/connections/", minor(device), "/abort");
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;  // connection already gone, or fusectl not mounted
  (void)!write(fd, "1", 1);
  close(fd);
}

std::string MountTypeAt(const std::string& path) {
  std::string type;  // the last (topmost) mount at `path` wins
  for (const MountinfoEntry& e : ReadMountinfo()) {
    if (e.mountpoint == path) type = e.fs_type;
  }
  return type;
}

bool IsFuseMountpoint(const std::string& path) {
  return IsFuseType(MountTypeAt(path));
}

dev_t DeviceOfMountAt(const std::string& path) {
  dev_t device = 0;
  for (const MountinfoEntry& e : ReadMountinfo()) {
    if (e.mountpoint == path) device = e.device;
  }
  return device;
}

std::vector<std::string> DetachStaleMounts(
    const std::vector<RecordedMount>& recorded) {
  std::vector<std::string> detached;
  std::vector<MountinfoEntry> current = ReadMountinfo();
  for (const RecordedMount& r : recorded) {
    bool present = false;
    for (const MountinfoEntry& e : current) {
      if (e.mountpoint == r.mountpoint && e.device == r.device &&
          IsFuseType(e.fs_type)) {
        present = true;
      }
    }
    if (!present) continue;
    AbortFuseConnection(r.device);
    if (UnmountFuse(r.mountpoint, /*lazy=*/true, r.device).ok()) {
      detached.push_back(r.mountpoint);
    }
  }
  return detached;
}

}  // namespace fusehost
