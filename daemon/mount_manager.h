// The daemon's table of mounts: creates them, unmounts them, lists them, and
// reaps the ones whose kernel session ended (unmounted from outside, or a
// lazy unmount whose last open file closed).
//
// Thread-safe. Slow work (backend handshake, teardown) runs outside the lock.

#ifndef FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_
#define FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/mount.h"

namespace fusehost {

struct MountRequest {
  std::string backend;
  std::string mountpoint;  // absolute
  std::string options;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
};

struct MountStatus {
  uint64_t mount_id = 0;
  std::string mountpoint;
  std::string backend;
  std::string options;
  std::string backend_name;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::string state;  // "mounted" or "unmounting"
};

class MountManager {
 public:
  MountManager();
  ~MountManager();  // ShutdownAll()s.

  absl::StatusOr<uint64_t> Mount(const MountRequest& request);
  absl::Status Unmount(const std::string& mountpoint, bool lazy);
  std::vector<MountStatus> List() const;

  // Unmounts everything and stops the reaper. Idempotent.
  void ShutdownAll();

 private:
  void OnSessionEnd(uint64_t mount_id);
  void ReaperLoop();
  // The attached (not lazily detached) mount at `mountpoint`, or 0.
  uint64_t FindAttachedLocked(const std::string& mountpoint) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::unique_ptr<fusehost::Mount>> mounts_
      ABSL_GUARDED_BY(mu_);
  // Mountpoints with a Mount() in progress, so two requests cannot race.
  absl::flat_hash_set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> ended_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNT_MANAGER_H_
