#include "daemon/mount_manager.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// The canonical form of an existing directory, or a user-facing error.
absl::StatusOr<std::string> CanonicalMountpoint(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("mountpoint ", path, " is not an absolute path"));
  }
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("mountpoint ", path, " does not exist"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("mountpoint ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("mountpoint ", path, " is not a directory"));
  }
  return std::string(resolved);
}

}  // namespace

MountManager::MountManager() : reaper_([this] { ReaperLoop(); }) {}

MountManager::~MountManager() { ShutdownAll(); }

uint64_t MountManager::FindAttachedLocked(const std::string& mountpoint) const {
  for (const auto& [id, m] : mounts_) {
    if (m->spec().mountpoint == mountpoint && !m->detached() &&
        !m->session_ended()) {
      return id;
    }
  }
  return 0;
}

absl::StatusOr<uint64_t> MountManager::Mount(const MountRequest& request) {
  if (request.backend.empty()) {
    return absl::InvalidArgumentError("no backend address given");
  }
  absl::StatusOr<std::string> mountpoint = CanonicalMountpoint(request.mountpoint);
  if (!mountpoint.ok()) return mountpoint.status();
  MountSpec spec;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("fuse-hostd is shutting down");
    if (FindAttachedLocked(*mountpoint) != 0 || pending_.contains(*mountpoint)) {
      return absl::AlreadyExistsError(
          absl::StrCat(*mountpoint, " is already a fuse-hostd mount"));
    }
    pending_.insert(*mountpoint);
    spec.mount_id = next_id_++;
  }
  spec.backend = request.backend;
  spec.mountpoint = *mountpoint;
  spec.options_text = request.options;
  spec.owner_uid = request.owner_uid;
  spec.owner_gid = request.owner_gid;
  spec.on_session_end = [this](uint64_t id) { OnSessionEnd(id); };
  absl::StatusOr<std::unique_ptr<fusehost::Mount>> m =
      fusehost::Mount::Create(std::move(spec));
  absl::MutexLock lock(&mu_);
  pending_.erase(*mountpoint);
  if (!m.ok()) return m.status();
  uint64_t id = (*m)->spec().mount_id;
  fprintf(stderr, "fuse-hostd: mounted %s at %s (mount %llu)\n",
          request.backend.c_str(), mountpoint->c_str(),
          static_cast<unsigned long long>(id));
  mounts_[id] = *std::move(m);
  return id;
}

absl::Status MountManager::Unmount(const std::string& path, bool lazy) {
  std::string mountpoint = path;
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) != nullptr) mountpoint = resolved;
  fusehost::Mount* m = nullptr;
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = FindAttachedLocked(mountpoint);
    if (id == 0) {
      return absl::NotFoundError(
          absl::StrCat(path, " is not mounted by fuse-hostd"));
    }
    m = mounts_[id].get();
  }
  // The Mount stays in the table until the reaper removes it, and the reaper
  // only does so after the session ended, which needs this unmount first.
  absl::Status st = m->Unmount(lazy);
  if (!st.ok()) return st;
  fprintf(stderr, "fuse-hostd: unmounted %s%s\n", mountpoint.c_str(),
          lazy ? " (lazy)" : "");
  if (!lazy) {
    // Without open files the session ends at once; wait so that a following
    // `list` no longer shows the mount.
    absl::MutexLock lock(&mu_);
    auto reaped = [this, id]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return mounts_.count(id) == 0;
    };
    mu_.AwaitWithTimeout(absl::Condition(&reaped), absl::Seconds(5));
  }
  return absl::OkStatus();
}

std::vector<MountStatus> MountManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<MountStatus> out;
  for (const auto& [id, m] : mounts_) {
    MountStatus s;
    s.mount_id = id;
    s.mountpoint = m->spec().mountpoint;
    s.backend = m->spec().backend;
    s.options = m->spec().options_text;
    s.backend_name = m->backend_name();
    s.owner_uid = m->spec().owner_uid;
    s.owner_gid = m->spec().owner_gid;
    s.state = m->detached() ? "unmounting" : "mounted";
    out.push_back(std::move(s));
  }
  return out;
}

void MountManager::OnSessionEnd(uint64_t mount_id) {
  absl::MutexLock lock(&mu_);
  ended_.push_back(mount_id);
}

void MountManager::ReaperLoop() {
  for (;;) {
    std::unique_ptr<fusehost::Mount> m;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](MountManager* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stopping_ || !self->ended_.empty();
          },
          this));
      if (ended_.empty()) return;  // stopping, nothing left to reap
      uint64_t id = ended_.front();
      ended_.pop_front();
      auto it = mounts_.find(id);
      if (it == mounts_.end()) continue;
      m = std::move(it->second);
      mounts_.erase(it);
    }
    fprintf(stderr, "fuse-hostd: mount %s ended\n", m->spec().mountpoint.c_str());
    m->Shutdown();  // joins the session's loop thread; never under mu_
  }
}

void MountManager::ShutdownAll() {
  std::map<uint64_t, std::unique_ptr<fusehost::Mount>> mounts;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
  {
    absl::MutexLock lock(&mu_);
    mounts.swap(mounts_);
  }
  for (auto& [id, m] : mounts) {
    fprintf(stderr, "fuse-hostd: unmounting %s\n", m->spec().mountpoint.c_str());
    m->Shutdown();
  }
}

}  // namespace fusehost
