// The kernel's read-ahead window of a FUSE mount.
//
// FUSE offers its INIT reply the block layer's default window (128 KiB) as a
// ceiling, so a sequential read reaches the daemon as 128 KiB requests: one
// backend round trip each. Widening the window afterwards, through the
// mount's backing device in sysfs, lets the kernel send requests of up to
// max_pages (1 MiB with libfuse 3.14): an eighth of the round trips.

#ifndef FUSE_HOSTD_DAEMON_MOUNTING_READ_AHEAD_H_
#define FUSE_HOSTD_DAEMON_MOUNTING_READ_AHEAD_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace fusehost {

// /sys/class/bdi/MAJOR:MINOR/read_ahead_kb of the filesystem on `device`.
std::string ReadAheadPath(dev_t device);

// Sets it to `kb`. Only takes effect after the kernel processed the INIT
// reply, which would otherwise cut it back.
absl::Status SetReadAhead(dev_t device, unsigned kb);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_READ_AHEAD_H_
