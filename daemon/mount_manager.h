// The daemon's table of mounts: creates them, unmounts them, lists them, and
// reaps the ones whose kernel session ended (unmounted from outside, or a
// lazy unmount whose last open file closed).
//
// It also keeps what must hold across all mounts at once: the per-user and
// global mount limits (counted under one lock with mounts in progress, so
// concurrent requests cannot overshoot), the on-disk record of live mounts
// (mount_record.h) for crash recovery.
//
// Authorization is the caller's job (authorizer.h); the manager only
// enforces the limits and the owner check it is given.
//
// Thread-safe. Slow work (backend handshake, teardown) runs outside the lock.

#ifndef FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_
#define FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/authz/authorizer.h"
#include "daemon/mount.h"
#include "daemon/stats/mount_stats.h"

namespace fusehost {

struct MountStatus {
  uint64_t mount_id = 0;
  std::string mountpoint;
  std::string backend;
  std::string options;
  std::string backend_name;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::string state;  // "mounted" or "unmounting"
  std::string backend_identity;  // see control.proto's MountInfo
};

struct MountStatsEntry {
  MountStatus status;
  MountStats::Snapshot stats;
};

class MountManager {
 public:
  struct Options {
    // Where the record of live mounts lives. Empty: none (tests).
    std::string runtime_dir;
    // Put before every mount's own options.
    std::string default_options;
    // Holds every mount's connection and state while the daemon restarts
    // (daemon/survival); null: mounts end with the daemon.
    DescriptorStore* store = nullptr;
  };

  explicit MountManager(Options options);
  MountManager() : MountManager(Options()) {}
  ~MountManager();  // ShutdownAll()s.

  // Takes up the mounts the descriptor store held for a previous daemon (see
  // Mount::Resume); returns their mountpoints. A mount that cannot be
  // resumed is given up (DetachStaleMounts detaches it). Call first.
  std::vector<std::string> ResumeKeptMounts();

  // Detaches the mounts a crashed daemon recorded in runtime_dir and left
  // behind, but for those resumed; returns their mountpoints. Call before
  // the first Mount().
  std::vector<std::string> DetachStaleMounts();

  // Mounts `backend` as `grant` says (see authorizer.h).
  absl::StatusOr<uint64_t> Mount(const std::string& backend, MountGrant grant);
  // Unmounts the fuse-hostd mount at canonical path `mountpoint`. With
  // `owner`, only if the mount belongs to that uid (PERMISSION_DENIED).
  absl::Status Unmount(const std::string& mountpoint, bool lazy,
                       std::optional<uid_t> owner = std::nullopt);
  std::vector<MountStatus> List() const;
  std::vector<MountStatsEntry> Stats() const;

  // Unmounts everything and stops the reaper. Idempotent.
  void ShutdownAll();

  // Prepares a hand-over to a new daemon (Mount::Quiesce on every mount, in
  // parallel, until `deadline`); nothing may be done afterwards but exit.
  // Returns how many mounts will not be resumed as they are.
  int QuiesceAll(absl::Time deadline);

 private:
  struct Entry {
    // Declared first so that it is destroyed after the mount, whose channel
    // it carries.
    std::unique_ptr<fusehost::Mount> mount;
    // Calls using `mount` outside the lock (Unmount). The reaper and
    // ShutdownAll wait for zero before destroying it: an unmount can end the
    // session, and the reaper run, before Mount::Unmount has returned.
    int in_use = 0;
  };
  struct Pending {
    uid_t owner;
  };

  void OnSessionEnd(uint64_t mount_id);
  void ReaperLoop();
  // The attached (not lazily detached) mount at `mountpoint`, or 0.
  uint64_t FindAttachedLocked(const std::string& mountpoint) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The attached mount with this kernel mount id (0: none).
  uint64_t FindByKernelIdLocked(int kernel_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckLimitsLocked(const MountGrant& grant) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void WriteRecordLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Waits until no call uses the mount `id` (or it is gone).
  void AwaitUnusedLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  MountStatus StatusOf(uint64_t id, const Entry& e) const;
  // The dialer of a Unix-socket backend (null for TCP).
  static std::shared_ptr<BackendDialer> DialerFor(
      const std::string& backend, const std::string& socket,
      std::optional<UserIdentity> connect_as, std::optional<uid_t> backend_uid);
  absl::StatusOr<std::unique_ptr<fusehost::Mount>> ResumeOne(
      DescriptorStore::Entry kept);
  std::string RecordPath() const;

  const Options options_;
  // What all mounts' open directories may hold (mount.h). Declared before
  // the mounts, which draw on it, so that it outlives them.
  MemoryBudget listing_budget_{kListingBytesTotal};
  // Each user's share of it (kListingBytesPerUser), made at their first
  // mount and kept: as many as users who ever mounted, each a few words.
  std::map<uid_t, std::unique_ptr<MemoryBudget>> user_listing_budgets_
      ABSL_GUARDED_BY(mu_);
  // The budget a mount of `owner` draws on.
  MemoryBudget* ListingBudgetOf(uid_t owner) ABSL_LOCKS_EXCLUDED(mu_);
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Entry> mounts_ ABSL_GUARDED_BY(mu_);
  // Mountpoints with a Mount() in progress, so two requests cannot race.
  absl::flat_hash_map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> ended_ ABSL_GUARDED_BY(mu_);
  // Taken from mounts_ by the reaper and not yet shut down (queued changes
  // still being sent): an unmount waits for that too.
  absl::flat_hash_set<uint64_t> shutting_down_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_
