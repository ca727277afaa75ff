// /etc/fuse.conf, as fusermount3 reads it: `user_allow_other` on a line of
// its own, and `mount_max = N`. Comments start with '#'. The daemon reads it
// for every user mount request, as fusermount3 does, so an edit applies
// without a restart.
//
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_FUSE_CONF_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_FUSE_CONF_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fusehost {

struct FuseConf {
  bool user_allow_other = false;
  int mount_max = 1000;  // fusermount3's default; -1 means no limit
};

// Parses the text of a fuse.conf. Unknown lines are ignored (fusermount3
// warns and goes on).
FuseConf ParseFuseConf(absl::string_view text);

// Reads and parses `path`; a missing or unreadable file gives the defaults.
FuseConf ReadFuseConf(const std::string& path);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_FUSE_CONF_H_
