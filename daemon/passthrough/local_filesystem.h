// Which filesystems a backend's files may be handed to the kernel from
// (passthrough descriptors) or opened by the daemon beneath (the root
// directory of a loopback).
//
// Why a list of filesystems at all: the kernel reads and writes a backing
// file with the credentials of the daemon that registered it (root), and
// the daemon's own opens run with root's effective user and capabilities
// beside the caller's filesystem user. Storage filesystems check
// permissions once, at open, against the filesystem user, so neither lends
// the backend anything. Pseudo filesystems do not: a /proc/sys file checks
// the effective user, at every read and write, and some handlers check
// capabilities when written (kernel/ns_last_pid is writable by everyone and
// changes only for CAP_SYS_ADMIN). A user's backend could open such a file
// itself, or send /proc/sys as its root directory, and borrow root's
// rights through the mount. (Kernel 6.18 refused /proc files as backing
// files, and the daemon's own open of a root-only /proc/sys file failed, in
// a check here; that is what one kernel does today, not a promise.)
//
// So only storage filesystems (disk, memory, overlay; not network or FUSE:
// another machine or process answers for those) are accepted. Refusal is
// never an error for the caller: its open is forwarded to the backend as
// usual.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_LOCAL_FILESYSTEM_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_LOCAL_FILESYSTEM_H_

#include <cstdint>

#include "absl/status/status.h"

namespace fusehost {

// Whether statfs's f_type `type` is a storage filesystem of this machine.
bool IsLocalStorageFilesystem(uint32_t type);

// OK if `fd` is on such a filesystem; otherwise why not (naming its type).
absl::Status CheckLocalStorageFilesystem(int fd);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_LOCAL_FILESYSTEM_H_
