// Supplementary groups of calling processes, remembered briefly.
//
// The kernel does not send a caller's supplementary groups; libfuse reads
// them from /proc/PID/task/TID/status, two system calls and a parse per
// request, which would dominate the cost of requests the daemon answers from
// its cache (ls -l asks several per file). A process's groups change rarely,
// so the answer is kept for `ttl` per (pid, uid, gid): a change of uid or
// gid is seen at once, a setgroups() alone within `ttl`. The kernel has
// already checked permissions with the current groups for mounts with
// default_permissions; the groups sent along are for backends' own checks.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_FUSE_CALLER_GROUPS_H_
#define FUSE_HOSTD_DAEMON_FUSE_CALLER_GROUPS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fusehost {

class CallerGroups {
 public:
  using Groups = std::vector<gid_t>;
  // Reads the groups of the request's caller; false if it cannot.
  using Fetch = std::function<bool(Groups*)>;

  explicit CallerGroups(absl::Duration ttl = absl::Seconds(1),
                        size_t max_entries = 4096)
      : ttl_(ttl), max_entries_(max_entries) {}

  // The groups of (pid, uid, gid), fetched if not known or stale. Empty if
  // they cannot be read (the process is gone).
  std::shared_ptr<const Groups> Get(pid_t pid, uid_t uid, gid_t gid,
                                    const Fetch& fetch);

 private:
  struct Entry {
    std::shared_ptr<const Groups> groups;
    absl::Time expiry;
  };
  using Key = std::tuple<pid_t, uid_t, gid_t>;

  const absl::Duration ttl_;
  const size_t max_entries_;
  absl::Mutex mu_;
  absl::flat_hash_map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_CALLER_GROUPS_H_
