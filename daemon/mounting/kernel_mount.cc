#include "daemon/mounting/kernel_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "daemon/mounting/mountinfo.h"

namespace fusehost {

namespace {

// fsconfig() with a string value; false (and errno) on failure.
bool SetString(int fs_fd, const char* key, const std::string& value) {
  return fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value.c_str(), 0) == 0;
}

bool SetFlag(int fs_fd, const char* key) {
  return fsconfig(fs_fd, FSCONFIG_SET_FLAG, key, nullptr, 0) == 0;
}

absl::Status MountError(const std::string& mountpoint, const char* step,
                        int err) {
  return absl::InternalError(absl::StrCat("mount ", mountpoint, ": ", step,
                                          ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<KernelMount> MountFuse(const KernelMountRequest& request) {
  const MountOptions& opts = *request.options;
  UniqueFd fuse(open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fuse.valid()) {
    return absl::InternalError(
        absl::StrCat("cannot open /dev/fuse: ", std::strerror(errno)));
  }
  UniqueFd fs(fsopen("fuse", FSOPEN_CLOEXEC));
  if (!fs.valid()) return MountError(request.mountpoint, "fsopen", errno);
  bool ok = SetString(fs.get(), "source", request.source) &&
            SetString(fs.get(), "subtype", opts.subtype) &&
            SetString(fs.get(), "fd", absl::StrCat(fuse.get())) &&
            SetString(fs.get(), "rootmode", "40000") &&
            SetString(fs.get(), "user_id", absl::StrCat(request.owner_uid)) &&
            SetString(fs.get(), "group_id", absl::StrCat(request.owner_gid)) &&
            (!opts.default_permissions ||
             SetFlag(fs.get(), "default_permissions")) &&
            (!opts.allow_other || SetFlag(fs.get(), "allow_other")) &&
            (!opts.read_only || SetFlag(fs.get(), "ro"));
  if (!ok) return MountError(request.mountpoint, "fsconfig", errno);
  if (fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return MountError(request.mountpoint, "fsconfig", errno);
  }
  unsigned int attrs = 0;
  if (opts.read_only) attrs |= MOUNT_ATTR_RDONLY;
  if (opts.nosuid) attrs |= MOUNT_ATTR_NOSUID;
  if (opts.nodev) attrs |= MOUNT_ATTR_NODEV;
  if (opts.noexec) attrs |= MOUNT_ATTR_NOEXEC;
  if (opts.noatime) attrs |= MOUNT_ATTR_NOATIME;
  UniqueFd mnt(fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
  if (!mnt.valid()) return MountError(request.mountpoint, "fsmount", errno);

  // The identity, read from the detached mount itself. statx() with an
  // empty mask asks the file system nothing (the daemon does not serve this
  // connection yet, and root may not be allowed in a user's mount).
  KernelMount km;
  struct statx stx;
  if (statx(mnt.get(), "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) != 0) {
    return MountError(request.mountpoint, "statx", errno);
  }
  km.identity.device = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  km.identity.mount_id = MountIdOfFd(mnt.get());
  if (!km.identity.valid()) {
    return absl::InternalError(absl::StrCat(
        "mount ", request.mountpoint, ": cannot tell the new mount's id"));
  }

  UniqueFd target;
  int target_fd = request.mountpoint_fd;
  if (target_fd < 0) {
    target.reset(open(request.mountpoint.c_str(),
                      O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!target.valid()) {
      return MountError(request.mountpoint, "open", errno);
    }
    target_fd = target.get();
  }
  if (move_mount(mnt.get(), "", target_fd, "",
                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return MountError(request.mountpoint, "move_mount", errno);
  }
  km.fuse_fd = fuse.release();
  return km;
}

std::string CurrentMountpoint(const MountIdentity& identity) {
  for (const MountinfoEntry& e : ReadMountinfo()) {
    if (e.mount_id == identity.mount_id && e.device == identity.device &&
        IsFuseType(e.fs_type)) {
      return e.mountpoint;
    }
  }
  return "";
}

absl::Status UnmountFuse(const MountIdentity& identity, bool lazy) {
  // A rename between reading mountinfo and opening the path makes the
  // check below fail; the mount is then looked up again.
  constexpr int kAttempts = 3;
  std::string last_path;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::string path = CurrentMountpoint(identity);
    if (path.empty()) {
      return absl::NotFoundError(absl::StrCat(
          last_path.empty() ? "the mount" : last_path, " is no longer mounted"));
    }
    last_path = path;
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash + 1 >= path.size()) {
      return absl::InternalError(absl::StrCat("cannot unmount ", path));
    }
    std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    std::string last = path.substr(slash + 1);
    UniqueFd parent_fd(open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!parent_fd.valid()) continue;
    {
      // What the name leads to must be the root of this very mount.
      UniqueFd root(openat(parent_fd.get(), last.c_str(),
                           O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (!root.valid() || MountIdOfFd(root.get()) != identity.mount_id) {
        continue;
      }
      // Closed here: it would keep the mount busy.
    }
    std::string target = absl::StrCat("/proc/self/fd/", parent_fd.get(), "/", last);
    if (umount2(target.c_str(), (lazy ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) == 0) {
      return absl::OkStatus();
    }
    int err = errno;
    if (err == EBUSY) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is busy (files are open); use --lazy to detach it"));
    }
    return absl::InternalError(
        absl::StrCat("unmount ", path, ": ", std::strerror(err)));
  }
  return absl::UnavailableError(absl::StrCat(
      last_path, " kept moving while it was being unmounted; try again"));
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

int MountIdAt(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) return 0;
  int id = MountIdOfFd(fd.get());
  return id > 0 ? id : 0;
}

std::vector<std::string> DetachStaleMounts(
    const std::vector<RecordedMount>& recorded) {
  std::vector<std::string> detached;
  std::vector<MountinfoEntry> current = ReadMountinfo();
  for (const RecordedMount& r : recorded) {
    MountIdentity identity;
    identity.device = r.device;
    std::string where;
    for (const MountinfoEntry& e : current) {
      if (e.device != r.device || !IsFuseType(e.fs_type)) continue;
      bool same = r.kernel_mount_id != 0 ? e.mount_id == r.kernel_mount_id
                                         : e.mountpoint == r.mountpoint;
      if (same) {
        identity.mount_id = e.mount_id;
        where = e.mountpoint;
      }
    }
    if (!identity.valid()) continue;
    AbortFuseConnection(r.device);
    if (UnmountFuse(identity, /*lazy=*/true).ok()) detached.push_back(where);
  }
  return detached;
}

}  // namespace fusehost
