#include "daemon/mount_manager.h"
#include "common/log_line.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/mounting/kernel_mount.h"
#include "daemon/mounting/mount_record.h"
#include "daemon/survival/mount_journal.h"
#include "daemon/survival/mount_state.h"

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

MountManager::MountManager(Options options)
    : options_(std::move(options)), reaper_([this] { ReaperLoop(); }) {}

MountManager::~MountManager() { ShutdownAll(); }

std::string MountManager::RecordPath() const {
  return options_.runtime_dir.empty() ? "" : options_.runtime_dir + "/mounts";
}

std::vector<std::string> MountManager::DetachStaleMounts() {
  if (RecordPath().empty()) return {};
  std::vector<RecordedMount> stale = ReadMountRecord(RecordPath());
  {
    absl::MutexLock lock(&mu_);
    stale.erase(std::remove_if(stale.begin(), stale.end(),
                               [this](const RecordedMount& r)
                                   ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                     return mounts_.count(r.mount_id) != 0;
                                   }),
                stale.end());
  }
  std::vector<std::string> detached = fusehost::DetachStaleMounts(stale);
  absl::MutexLock lock(&mu_);
  WriteRecordLocked();
  return detached;
}

std::shared_ptr<BackendDialer> MountManager::DialerFor(
    const std::string& backend, const std::string& socket,
    std::optional<UserIdentity> connect_as, std::optional<uid_t> backend_uid) {
  if (socket.empty()) return nullptr;
  BackendDialer::Options dial;
  dial.socket_path = socket;
  dial.backend_name = backend;
  dial.connect_as = std::move(connect_as);
  dial.backend_uid = backend_uid;
  return std::make_shared<BackendDialer>(std::move(dial));
}

std::vector<std::string> MountManager::ResumeKeptMounts() {
  if (options_.store == nullptr) return {};
  absl::StatusOr<std::vector<DescriptorStore::Entry>> kept =
      options_.store->TakeAll();
  if (!kept.ok()) {
    Log("cannot ask the descriptor store for the mounts it holds: %s",
        std::string(kept.status().message()).c_str());
    return {};
  }
  std::vector<std::string> resumed;
  for (DescriptorStore::Entry& entry : *kept) {
    const std::string key = entry.key;
    absl::StatusOr<std::unique_ptr<fusehost::Mount>> m =
        ResumeOne(std::move(entry));
    if (!m.ok()) {
      Log("cannot resume the mount kept as %s: %s", key.c_str(),
          std::string(m.status().message()).c_str());
      options_.store->Remove(key).IgnoreError();
      continue;
    }
    const uint64_t id = (*m)->spec().mount_id;
    resumed.push_back((*m)->spec().mountpoint);
    absl::MutexLock lock(&mu_);
    next_id_ = std::max(next_id_, id + 1);
    mounts_[id].mount = *std::move(m);
  }
  absl::MutexLock lock(&mu_);
  WriteRecordLocked();
  return resumed;
}

absl::StatusOr<std::unique_ptr<fusehost::Mount>> MountManager::ResumeOne(
    DescriptorStore::Entry kept) {
  const uint64_t id = MountIdOfKey(kept.key);
  if (id == 0 || kept.fds.size() != 2) {
    return absl::InvalidArgumentError("not a mount the daemon keeps");
  }
  absl::StatusOr<std::vector<state::Record>> journal =
      MountJournal::Read(kept.fds[1].get());
  if (!journal.ok()) return journal.status();
  const state::SavedMount& saved = journal->front().mount();
  if (saved.mount_id() != id) {
    return absl::DataLossError("the journal is another mount's");
  }
  MountSpec spec = SpecOfSaved(saved);
  if (saved.dialed()) {
    std::optional<UserIdentity> connect_as;
    if (saved.has_connect_as()) {
      const state::User& u = saved.connect_as();
      connect_as = UserIdentity{u.uid(), u.gid(),
                                {u.groups().begin(), u.groups().end()}};
    }
    std::optional<uid_t> backend_uid;
    if (saved.has_backend_uid()) backend_uid = saved.backend_uid();
    spec.dialer = DialerFor(saved.backend(), saved.socket_path(),
                            std::move(connect_as), backend_uid);
  }
  spec.listing_budget = ListingBudgetOf(spec.owner_uid);
  spec.on_session_end = [this](uint64_t mount_id) { OnSessionEnd(mount_id); };
  spec.store = options_.store;
  KeptMount mount;
  mount.fuse_fd = std::move(kept.fds[0]);
  mount.journal = *std::move(journal);
  absl::StatusOr<std::unique_ptr<fusehost::Mount>> m =
      fusehost::Mount::Resume(std::move(spec), std::move(mount));
  if (m.ok()) {
    Log("resumed %s at %s for uid %u (mount %llu)", (*m)->spec().backend.c_str(),
        (*m)->spec().mountpoint.c_str(), (*m)->spec().owner_uid,
        static_cast<unsigned long long>(id));
  }
  return m;
}

uint64_t MountManager::FindAttachedLocked(const std::string& mountpoint) const {
  for (const auto& [id, e] : mounts_) {
    if (e.mount->spec().mountpoint == mountpoint && !e.mount->detached() &&
        !e.mount->session_ended()) {
      return id;
    }
  }
  return 0;
}

uint64_t MountManager::FindByKernelIdLocked(int kernel_id) const {
  if (kernel_id <= 0) return 0;
  for (const auto& [id, e] : mounts_) {
    if (e.mount->identity().mount_id == kernel_id && !e.mount->detached() &&
        !e.mount->session_ended()) {
      return id;
    }
  }
  return 0;
}

absl::Status MountManager::CheckLimitsLocked(const MountGrant& grant) const {
  if (grant.max_mounts_for_owner == 0 && grant.max_mounts_total < 0) {
    return absl::OkStatus();
  }
  // Mounts of users other than root, attached or being made.
  size_t owner_count = 0, total = 0;
  auto count = [&](uid_t owner) {
    if (owner == 0) return;
    ++total;
    if (owner == grant.owner_uid) ++owner_count;
  };
  for (const auto& [id, e] : mounts_) {
    if (!e.mount->detached()) count(e.mount->spec().owner_uid);
  }
  for (const auto& [path, p] : pending_) count(p.owner);
  if (grant.max_mounts_for_owner > 0 &&
      owner_count >= grant.max_mounts_for_owner) {
    return absl::ResourceExhaustedError(
        absl::StrCat("you already have ", owner_count,
                     " mounts, the most fuse-hostd allows one user"));
  }
  if (grant.max_mounts_total >= 0 &&
      total >= static_cast<size_t>(grant.max_mounts_total)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many user mounts (", total,
                     "); the limit is mount_max in fuse.conf or "
                     "users.max_mounts in the fuse-hostd configuration"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MountManager::Mount(const std::string& backend,
                                             MountGrant grant) {
  if (backend.empty()) {
    return absl::InvalidArgumentError("no backend address given");
  }
  std::string mountpoint = grant.mountpoint;
  if (!grant.mountpoint_fd.valid()) {
    absl::StatusOr<std::string> canonical = CanonicalMountpoint(mountpoint);
    if (!canonical.ok()) return canonical.status();
    mountpoint = *std::move(canonical);
  }
  MountSpec spec;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("fuse-hostd is shutting down");
    if (FindAttachedLocked(mountpoint) != 0 || pending_.contains(mountpoint)) {
      return absl::AlreadyExistsError(
          absl::StrCat(mountpoint, " is already a fuse-hostd mount"));
    }
    absl::Status limits = CheckLimitsLocked(grant);
    if (!limits.ok()) return limits;
    pending_[mountpoint] = Pending{grant.owner_uid};
    spec.mount_id = next_id_++;
  }
  Entry entry;
  // Unix-socket backends: every connection made and checked by the daemon,
  // root's mounts' too (see backend_dialer.h).
  const std::string socket = grant.backend_socket.empty()
                                 ? UnixSocketPathOf(backend)
                                 : grant.backend_socket;
  if (!grant.backend_socket.empty()) {
    spec.dialer =
        DialerFor(backend, socket, grant.backend_user, grant.owner_uid);
  } else {
    spec.dialer = DialerFor(backend, socket, std::nullopt, std::nullopt);
  }
  spec.backend = backend;
  spec.tls_reader = grant.tls_reader;
  spec.listing_budget = ListingBudgetOf(grant.owner_uid);
  spec.mountpoint = mountpoint;
  spec.mountpoint_fd = grant.mountpoint_fd.get();
  spec.options_text = options_.default_options.empty()
                          ? grant.options
                          : absl::StrCat(options_.default_options, ",",
                                         grant.options);
  if (!options_.runtime_dir.empty()) {
    spec.passthrough_dir = options_.runtime_dir + "/passthrough";
  }
  spec.owner_uid = grant.owner_uid;
  spec.owner_gid = grant.owner_gid;
  spec.on_session_end = [this](uint64_t id) { OnSessionEnd(id); };
  spec.store = options_.store;
  absl::StatusOr<std::unique_ptr<fusehost::Mount>> m =
      fusehost::Mount::Create(std::move(spec));
  // The descriptor only served mount(2).
  grant.mountpoint_fd.reset();
  absl::MutexLock lock(&mu_);
  pending_.erase(mountpoint);
  if (!m.ok()) return m.status();
  uint64_t id = (*m)->spec().mount_id;
  Log("mounted %s at %s for uid %u (mount %llu)",
          backend.c_str(), mountpoint.c_str(), grant.owner_uid,
          static_cast<unsigned long long>(id));
  entry.mount = *std::move(m);
  mounts_[id] = std::move(entry);
  WriteRecordLocked();
  return id;
}

absl::Status MountManager::Unmount(const std::string& mountpoint, bool lazy,
                                   std::optional<uid_t> owner) {
  fusehost::Mount* m = nullptr;
  uint64_t id;
  {
    // The mount the path holds now, by the kernel's mount id: never a mount
    // found by its old path, which may have been moved away and replaced
    // (a symlink to someone else's mount finds that mount, and the owner
    // check below refuses it).
    const int kernel_id = MountIdAt(mountpoint);
    absl::MutexLock lock(&mu_);
    id = FindByKernelIdLocked(kernel_id);
    if (id == 0) {
      return absl::NotFoundError(
          absl::StrCat(mountpoint, " is not mounted by fuse-hostd"));
    }
    m = mounts_[id].mount.get();
    if (owner.has_value() && m->spec().owner_uid != *owner) {
      return absl::PermissionDeniedError(absl::StrCat(
          mountpoint, " is not your mount (it belongs to uid ",
          m->spec().owner_uid, ")"));
    }
    ++mounts_[id].in_use;
  }
  const absl::Duration shutdown_wait = m->ShutdownWait();
  // The session may end (and the reaper take the entry) as soon as umount2
  // returns, before Mount::Unmount does: in_use keeps the Mount alive.
  absl::Status st = m->Unmount(lazy);
  {
    absl::MutexLock lock(&mu_);
    --mounts_[id].in_use;
  }
  if (!st.ok()) return st;
  Log("unmounted %s%s", mountpoint.c_str(),
          lazy ? " (lazy)" : "");
  if (!lazy) {
    // Without open files the session ends at once; wait until the mount is
    // shut down, so that a following `list` no longer shows it and the
    // changes answered early (write_behind) reached the backend.
    absl::MutexLock lock(&mu_);
    auto reaped = [this, id]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return mounts_.count(id) == 0 && !shutting_down_.contains(id);
    };
    mu_.AwaitWithTimeout(absl::Condition(&reaped),
                         absl::Seconds(5) + shutdown_wait);
  }
  return absl::OkStatus();
}

MountStatus MountManager::StatusOf(uint64_t id, const Entry& e) const {
  const fusehost::Mount& m = *e.mount;
  MountStatus s;
  s.mount_id = id;
  s.mountpoint = m.CurrentMountpoint();
  s.backend = m.spec().backend;
  s.options = m.spec().options_text;
  s.backend_name = m.backend_name();
  s.owner_uid = m.spec().owner_uid;
  s.owner_gid = m.spec().owner_gid;
  s.state = m.detached() ? "unmounting" : "mounted";
  s.backend_identity = m.BackendIdentity();
  return s;
}

std::vector<MountStatus> MountManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<MountStatus> out;
  for (const auto& [id, e] : mounts_) out.push_back(StatusOf(id, e));
  return out;
}

std::vector<MountStatsEntry> MountManager::Stats() const {
  absl::MutexLock lock(&mu_);
  std::vector<MountStatsEntry> out;
  for (const auto& [id, e] : mounts_) {
    out.push_back(MountStatsEntry{StatusOf(id, e), e.mount->Snap()});
  }
  return out;
}

void MountManager::WriteRecordLocked() const {
  if (RecordPath().empty()) return;
  std::vector<RecordedMount> record;
  for (const auto& [id, e] : mounts_) {
    const MountIdentity& identity = e.mount->identity();
    record.push_back(RecordedMount{id, identity.device,
                                   e.mount->CurrentMountpoint(),
                                   identity.mount_id});
  }
  absl::Status st = WriteMountRecord(RecordPath(), record);
  if (!st.ok()) {
    Log("warning: cannot record mounts: %s",
            std::string(st.message()).c_str());
  }
}

void MountManager::AwaitUnusedLocked(uint64_t id) {
  auto unused = [this, id]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto it = mounts_.find(id);
    return it == mounts_.end() || it->second.in_use == 0;
  };
  mu_.Await(absl::Condition(&unused));
}

MemoryBudget* MountManager::ListingBudgetOf(uid_t owner) {
  if (owner == 0) return &listing_budget_;
  absl::MutexLock lock(&mu_);
  std::unique_ptr<MemoryBudget>& budget = user_listing_budgets_[owner];
  if (budget == nullptr) {
    budget = std::make_unique<MemoryBudget>(kListingBytesPerUser,
                                            &listing_budget_);
  }
  return budget.get();
}

void MountManager::OnSessionEnd(uint64_t mount_id) {
  absl::MutexLock lock(&mu_);
  ended_.push_back(mount_id);
}

void MountManager::ReaperLoop() {
  for (;;) {
    Entry e;
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](MountManager* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stopping_ || !self->ended_.empty();
          },
          this));
      if (ended_.empty()) return;  // stopping, nothing left to reap
      id = ended_.front();
      ended_.pop_front();
      AwaitUnusedLocked(id);
      auto it = mounts_.find(id);
      if (it == mounts_.end()) continue;
      e = std::move(it->second);
      mounts_.erase(it);
      shutting_down_.insert(id);
      WriteRecordLocked();
    }
    Log("mount %s ended",
            e.mount->spec().mountpoint.c_str());
    e.mount->Shutdown();  // joins the session's loop thread; never under mu_
    absl::MutexLock lock(&mu_);
    shutting_down_.erase(id);
  }
}

int MountManager::QuiesceAll(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  // No more mounts, unmounts or reaping: this daemon's work is done.
  stopping_ = true;
  std::vector<std::thread> threads;
  std::atomic<int> not_ready{0};
  for (auto& [id, e] : mounts_) {
    fusehost::Mount* m = e.mount.get();
    threads.emplace_back([m, deadline, &not_ready] {
      if (!m->Quiesce(deadline)) not_ready.fetch_add(1);
    });
  }
  for (std::thread& t : threads) t.join();
  return not_ready.load();
}

void MountManager::ShutdownAll() {
  std::map<uint64_t, Entry> mounts;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
  {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> ids;
    for (const auto& [id, e] : mounts_) ids.push_back(id);
    for (uint64_t id : ids) AwaitUnusedLocked(id);
    mounts.swap(mounts_);
  }
  for (auto& [id, e] : mounts) {
    Log("unmounting %s",
            e.mount->spec().mountpoint.c_str());
    e.mount->Shutdown();
  }
  mounts.clear();
  absl::MutexLock lock(&mu_);
  WriteRecordLocked();
}

}  // namespace fusehost
