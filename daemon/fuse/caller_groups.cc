#include "daemon/fuse/caller_groups.h"

namespace fusehost {

std::shared_ptr<const CallerGroups::Groups> CallerGroups::Get(
    pid_t pid, uid_t uid, gid_t gid, const Fetch& fetch) {
  const Key key(pid, uid, gid);
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.expiry > now) return it->second.groups;
  }
  auto groups = std::make_shared<Groups>();
  if (!fetch(groups.get())) groups->clear();
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= max_entries_) {
    // Stale entries go first; if all are fresh, start over (a burst of
    // short-lived processes).
    absl::erase_if(entries_, [now](const auto& kv) { return kv.second.expiry <= now; });
    if (entries_.size() >= max_entries_) entries_.clear();
  }
  entries_[key] = Entry{groups, now + ttl_};
  return groups;
}

}  // namespace fusehost
