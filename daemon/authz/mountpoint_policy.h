// Where a user other than root may mount, judged from facts gathered as that
// user (see as_user.h), as fusermount3 judges it:
//   * the user must own the directory (unless the policy only asks for write
//     access, which is what fusermount3 asks) and be allowed to write it;
//   * a sticky directory (like /tmp) must be the user's own;
//   * the file system underneath must be one of fusermount3's allowed types
//     (ext4, xfs, btrfs, tmpfs, fuse, nfs, ...), never proc, sysfs and the
//     like, where "write access" does not mean what it seems.
//
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_MOUNTPOINT_POLICY_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_MOUNTPOINT_POLICY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fusehost {

struct MountpointFacts {
  uid_t owner = 0;
  mode_t mode = 0;
  int64_t fs_type = 0;   // statfs f_type of the file system it is on
  int write_errno = 0;   // 0 if the user may write it
};

// Whether a user may mount on a directory with `facts`. `shown` names it in
// messages. Refusals are PERMISSION_DENIED with a one-line reason.
absl::Status CheckUserMountpoint(const MountpointFacts& facts, uid_t user,
                                 bool require_owner, const std::string& shown);

// Whether `fs_type` (statfs f_type) is on fusermount3's list.
bool IsAllowedUnderlyingFs(int64_t fs_type);

// The absolute path descriptor `fd` refers to, in the daemon's view.
absl::StatusOr<std::string> PathOfFd(int fd);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_MOUNTPOINT_POLICY_H_
