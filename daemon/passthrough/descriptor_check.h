// Whether a descriptor a backend handed over may back an open file.
//
// Why the checks matter: the kernel opens the backing file anew for each
// passthrough open, with the FUSE file's flags and the credentials of the
// daemon that registered it, and checks no permission on that open. So the
// descriptor must show that the backend itself opened the file the way the
// caller's open asks (the same access mode), and it must be a regular file
// (not a device, pipe, socket or directory). A file the kernel marks
// append-only may only be written at its end, which an open without
// O_APPEND would escape: such files are never passed through for writing.
// Nor are set-user-ID or set-group-ID files: the kernel writes the backing
// file with the daemon's privileges, so the bits a write by someone else
// must clear would stay (forwarded writes reach the backend, which clears
// them). And the file must be on a storage filesystem of this machine
// (local_filesystem.h): a pseudo filesystem's file (/proc/sys) may check
// the credentials of each read or write, which would be the daemon's.
//
// Thread-safe: a pure function of the descriptor.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_CHECK_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_CHECK_H_

#include <sys/stat.h>

#include "absl/status/status.h"

namespace fusehost {

// OK if `fd` may back an open with open(2) flags `open_flags`; `*st` is
// then its fstat. Otherwise why not.
absl::Status CheckBackingDescriptor(int fd, int open_flags, struct stat* st);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_CHECK_H_
