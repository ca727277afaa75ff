// Callers for unit tests that drive an example FileSystem directly, without
// the daemon: the Context the daemon would pass with a request made by that
// user.

#ifndef FUSE_HOSTD_TESTS_EXAMPLES_CALLERS_H_
#define FUSE_HOSTD_TESTS_EXAMPLES_CALLERS_H_

#include <sys/types.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "client/filesystem.h"

namespace fusehost {
namespace examples {

// A request by uid:gid with these supplementary groups.
inline Context User(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Context ctx;
  ctx.uid = uid;
  ctx.gid = gid;
  ctx.groups = std::move(groups);
  return ctx;
}

// A request by the user the test runs as.
inline Context Self() { return User(geteuid(), getegid()); }

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_EXAMPLES_CALLERS_H_
