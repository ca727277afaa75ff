#include "daemon/kernel_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
std::string UnescapeMountinfo(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = i + 1; j <= i + 3; ++j) {
        if (field[j] < '0' || field[j] > '7') {
          octal = false;
          break;
        }
        value = value * 8 + (field[j] - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

}  // namespace

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
  if (mount(request.source.c_str(), request.mountpoint.c_str(), type.c_str(),
            flags, data.c_str()) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("mount ", request.mountpoint,
                                            ": ", std::strerror(err)));
  }
  KernelMount km;
  km.fuse_fd = fd;
  // The new mount's st_dev names its connection under /sys/fs/fuse. Asking
  // stat() would already go through the filesystem (and wait for INIT), so
  // read it from the fd's connection instead: /proc/self/mountinfo.
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string id, parent, majmin, root, point;
    in >> id >> parent >> majmin >> root >> point;
    if (UnescapeMountinfo(point) == request.mountpoint) {
      unsigned maj = 0, min = 0;
      if (sscanf(majmin.c_str(), "%u:%u", &maj, &min) == 2) {
        km.device = makedev(maj, min);  // the last match is the newest mount
      }
    }
  }
  return km;
}

absl::Status UnmountFuse(const std::string& mountpoint, bool lazy) {
  if (umount2(mountpoint.c_str(), lazy ? MNT_DETACH : 0) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
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
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::string type;  // the last (topmost) mount at `path` wins
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string field, point;
    for (int i = 0; i < 5 && in >> field; ++i) {
      if (i == 4) point = UnescapeMountinfo(field);
    }
    if (point != path) continue;
    // Optional fields end with "-"; the file system type follows.
    while (in >> field && field != "-") {}
    in >> type;
  }
  return type;
}

bool IsFuseMountpoint(const std::string& path) {
  std::string type = MountTypeAt(path);
  return type == "fuse" || type.rfind("fuse.", 0) == 0;
}

}  // namespace fusehost
