#include "examples/loopback/own_changes.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>

namespace fusehost {
namespace examples {
namespace {

bool SameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// "/" and "/a/b" as the backing directory's relative names ("." and "a/b").
const char* RelativeName(const std::string& path) {
  const char* rel = path.c_str();
  while (*rel == '/') ++rel;
  return *rel == '\0' ? "." : rel;
}

}  // namespace

bool OwnChanges::State::operator==(const State& o) const {
  if (exists != o.exists) return false;
  if (!exists) return true;
  return dev == o.dev && ino == o.ino && mode == o.mode && uid == o.uid &&
         gid == o.gid && nlink == o.nlink && size == o.size &&
         SameTime(mtime, o.mtime) && SameTime(ctime, o.ctime);
}

OwnChanges::OwnChanges(int root_fd, absl::Duration keep)
    : root_fd_(root_fd), keep_(keep) {}

OwnChanges::State OwnChanges::FromStat(const struct stat& st) {
  State s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  s.nlink = st.st_nlink;
  s.size = st.st_size;
  s.mtime = st.st_mtim;
  s.ctime = st.st_ctim;
  return s;
}

bool OwnChanges::StateOf(const std::string& path, State* state) const {
  struct stat st;
  if (fstatat(root_fd_, RelativeName(path), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    *state = FromStat(st);
    return true;
  }
  if (errno == ENOENT) {
    *state = State{};  // absent
    return true;
  }
  return false;  // e.g. EACCES: the state is unknown
}

void OwnChanges::Record(uint64_t mount_id, const std::string& path) {
  // The state is read under the lock that stores it. Two changes of one
  // path may finish at once (a chmod, and the release of the file's
  // writable open that the daemon sends in the background): read outside,
  // the older state could be stored last, and the newer change's event
  // would then look like someone else's.
  absl::MutexLock lock(&mu_);
  State state;
  const bool known = StateOf(path, &state);
  const absl::Time now = absl::Now();
  if (!known) {
    records_.erase(path);
  } else {
    records_[path] = Entry{state, now + keep_, mount_id};
  }
  // Expired records go in sweeps, so the table stays as small as the
  // changes of the last `keep_`.
  if (now >= next_sweep_) {
    absl::erase_if(records_,
                   [now](const auto& r) { return r.second.until <= now; });
    next_sweep_ = now + keep_;
  }
}

OwnChanges::Scope::Scope(OwnChanges& owner, uint64_t mount_id,
                         std::initializer_list<std::string> paths)
    : owner_(owner), mount_id_(mount_id), paths_(paths) {
  absl::MutexLock lock(&owner_.mu_);
  for (const std::string& path : paths_) {
    absl::InlinedVector<Changing, 1>& changes = owner_.changing_[path];
    auto mine = std::find_if(
        changes.begin(), changes.end(),
        [this](const Changing& c) { return c.mount_id == mount_id_; });
    if (mine != changes.end()) {
      ++mine->count;
    } else {
      changes.push_back(Changing{mount_id_, 1});
    }
  }
}

OwnChanges::Scope::~Scope() {
  for (const std::string& path : paths_) {
    if (!path.empty()) owner_.Record(mount_id_, path);
  }
  absl::MutexLock lock(&owner_.mu_);
  for (const std::string& path : paths_) {
    auto it = owner_.changing_.find(path);
    absl::InlinedVector<Changing, 1>& changes = it->second;
    auto mine = std::find_if(
        changes.begin(), changes.end(),
        [this](const Changing& c) { return c.mount_id == mount_id_; });
    if (--mine->count == 0) changes.erase(mine);
    if (changes.empty()) owner_.changing_.erase(it);
  }
}

std::optional<uint64_t> OwnChanges::ExplainedBy(const std::string& path) {
  Entry recorded;
  {
    absl::MutexLock lock(&mu_);
    auto changing = changing_.find(path);
    if (changing != changing_.end()) {
      // Several mounts changing it at once: each has made a change the
      // others do not know of.
      if (changing->second.size() > 1) return std::nullopt;
      return changing->second.front().mount_id;
    }
    auto it = records_.find(path);
    if (it == records_.end() || it->second.until <= absl::Now()) {
      return std::nullopt;
    }
    recorded = it->second;
  }
  State now;
  if (!StateOf(path, &now) || !(now == recorded.state)) return std::nullopt;
  return recorded.mount_id;
}

}  // namespace examples
}  // namespace fusehost
