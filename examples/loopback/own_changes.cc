#include "examples/loopback/own_changes.h"

#include <fcntl.h>

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

void OwnChanges::Record(const std::string& path) {
  State state;
  Store(path, StateOf(path, &state) ? &state : nullptr);
}

void OwnChanges::Store(const std::string& path, const State* state) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (state == nullptr) {
    records_.erase(path);
  } else {
    records_[path] = Entry{*state, now + keep_};
  }
  // Expired records go in sweeps, so the table stays as small as the
  // changes of the last `keep_`.
  if (now >= next_sweep_) {
    absl::erase_if(records_,
                   [now](const auto& r) { return r.second.until <= now; });
    next_sweep_ = now + keep_;
  }
}

OwnChanges::Scope::Scope(OwnChanges& owner,
                         std::initializer_list<std::string> paths)
    : owner_(owner), paths_(paths) {
  absl::MutexLock lock(&owner_.mu_);
  for (const std::string& path : paths_) ++owner_.changing_[path];
}

OwnChanges::Scope::~Scope() {
  for (const std::string& path : paths_) {
    if (!path.empty()) owner_.Record(path);
  }
  absl::MutexLock lock(&owner_.mu_);
  for (const std::string& path : paths_) {
    auto it = owner_.changing_.find(path);
    if (--it->second == 0) owner_.changing_.erase(it);
  }
}

bool OwnChanges::Explains(const std::string& path) {
  State recorded;
  {
    absl::MutexLock lock(&mu_);
    if (changing_.contains(path)) return true;
    auto it = records_.find(path);
    if (it == records_.end() || it->second.until <= absl::Now()) return false;
    recorded = it->second.state;
  }
  State now;
  return StateOf(path, &now) && now == recorded;
}

}  // namespace examples
}  // namespace fusehost
