// The daemon's on-disk record of its live mounts (<runtime_dir>/mounts), so
// that a daemon started after a crash can find and detach exactly the mounts
// the crashed one left behind, whatever their type or source (users may set
// subtype= and fsname=, so neither marks a mount as fuse-hostd's).
//
// One line per mount: "ID MAJOR:MINOR MOUNTPOINT KERNEL_MOUNT_ID", the
// mountpoint escaped as in /proc/self/mountinfo (\ooo for space, tab,
// newline, backslash). The kernel's mount id and the device number find the
// mount wherever its owner moved it and tell a leftover mount from a newer
// one; the mountpoint is for people (and for records of older versions,
// which have no mount id).
// The file is replaced atomically (write to a temporary, rename).
//
// Thread-safe: functions over files; callers serialize writes.

#ifndef FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_RECORD_H_
#define FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_RECORD_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fusehost {

struct RecordedMount {
  uint64_t mount_id = 0;
  dev_t device = 0;
  std::string mountpoint;
  int kernel_mount_id = 0;  // 0 in records of older versions
};

absl::Status WriteMountRecord(const std::string& path,
                              const std::vector<RecordedMount>& mounts);

// The recorded mounts; none if the file is missing. Malformed lines are
// skipped.
std::vector<RecordedMount> ReadMountRecord(const std::string& path);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_RECORD_H_
