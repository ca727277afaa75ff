// Which mount options a user other than root may give: the counterpart of
// fusermount3's option checks.
//
// Allowed: ro, rw, nosuid, nodev, noexec, exec, noatime, atime, relatime,
// default_permissions, no_default_permissions, fsname=, subtype=, the
// daemon's per-mount tuning (attr_timeout=, entry_timeout=,
// negative_timeout=, timeout=, max_write=, cache_entries= up to a cap), and
// allow_other when the policy permits it. Options the daemon does not know
// go to the backend only (InitRequest.options), which runs as the user, and
// are allowed unless they name a kernel or mount option.
// Refused: suid and dev (user mounts are always nosuid,nodev), options the
// daemon sets itself (user_id, group_id, fd, rootmode), and kernel options
// it does not support for users (allow_root, blkdev, max_read, blksize,
// SELinux contexts).
//
// Thread-safe: pure function.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_USER_MOUNT_OPTIONS_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_USER_MOUNT_OPTIONS_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fusehost {

struct UserOptionRules {
  bool allow_other_permitted = false;
  // Why allow_other is not permitted, for the refusal message.
  std::string allow_other_refusal = "/etc/fuse.conf has no user_allow_other";
  // Largest cache_entries= a user may ask for (the cache is daemon memory).
  size_t max_cache_entries = 100000;
};

// Checks `options` (comma-separated) and returns the options to mount with:
// the user's, in order, followed by "nosuid,nodev". A refusal is
// PERMISSION_DENIED naming the option and the reason.
absl::StatusOr<std::string> CheckUserMountOptions(absl::string_view options,
                                                  const UserOptionRules& rules);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_USER_MOUNT_OPTIONS_H_
