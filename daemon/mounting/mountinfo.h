// Reading /proc/self/mountinfo, which never blocks on a FUSE file system,
// and its path escaping.
//
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_DAEMON_MOUNTING_MOUNTINFO_H_
#define FUSE_HOSTD_DAEMON_MOUNTING_MOUNTINFO_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fusehost {

struct MountinfoEntry {
  int mount_id = 0;        // as in /proc/self/fdinfo's mnt_id
  dev_t device = 0;        // st_dev of the mount (MAJOR:MINOR)
  std::string mountpoint;  // unescaped
  std::string fs_type;     // e.g. "fuse.hostd"
  std::string source;      // unescaped
};

// Parses mountinfo text; malformed lines are skipped. Order is kept: a later
// entry at the same mountpoint is mounted on top of an earlier one.
std::vector<MountinfoEntry> ParseMountinfo(absl::string_view text);

// The current mounts of the daemon's mount namespace.
std::vector<MountinfoEntry> ReadMountinfo();

// mountinfo writes space, tab, newline and backslash as \ooo.
std::string EscapeMountPath(absl::string_view path);
std::string UnescapeMountPath(absl::string_view field);

// The id of the mount descriptor `fd` is on (/proc/self/fdinfo's mnt_id),
// or -1. Works for O_PATH descriptors and asks the file system nothing.
int MountIdOfFd(int fd);

// "fuse" or "fuse.*".
bool IsFuseType(absl::string_view fs_type);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_MOUNTINFO_H_
