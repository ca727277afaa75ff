// systemd's file descriptor store as a DescriptorStore: descriptors sent
// with FDSTORE=1 are kept by systemd while the service restarts (a crash, a
// watchdog kill, a hand-over's exit status 75, all with Restart=), and
// passed to the next run like socket-activation sockets, by name. The unit
// must allow them (FileDescriptorStoreMax=); the daemon uses the store when
// started with --systemd_fd_store.
//
// Each descriptor is stored as "KEY.INDEX.SEQ": a descriptor put again
// under the same key and index (a compacted journal) is stored under a new
// SEQ before the old one is removed, so that a crash in between leaves
// one of the two, never none; the next daemon takes the highest SEQ and
// removes the others. systemd keeps one copy of a file however often it
// is sent, so a descriptor already stored (the same file) is not sent
// again.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_SYSTEMD_FD_STORE_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_SYSTEMD_FD_STORE_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/survival/descriptor_store.h"

namespace fusehost {

// A descriptor systemd passed, with its name (LISTEN_FDNAMES).
struct NamedFd {
  std::string name;
  int fd = -1;
};

// Every descriptor systemd passed this process (sd_listen_fds_with_names;
// the LISTEN_* variables are unset). Empty when none.
std::vector<NamedFd> TakeSystemdDescriptors();

class SystemdFdStore : public DescriptorStore {
 public:
  // Takes from `passed` the descriptors this store named; what is left is
  // the caller's (the control socket of socket activation).
  explicit SystemdFdStore(std::vector<NamedFd>* passed);
  ~SystemdFdStore() override;

  absl::Status Put(const std::string& key,
                   const std::vector<int>& fds) override;
  absl::Status Remove(const std::string& key) override;
  // What systemd passed at start, once.
  absl::StatusOr<std::vector<Entry>> TakeAll() override;

  // The name a descriptor is stored under; false for a name this store
  // never makes.
  static bool ParseName(const std::string& name, std::string* key,
                        size_t* index, uint64_t* seq);

 private:
  struct Stored {
    std::string name;
    dev_t dev = 0;
    ino_t ino = 0;
  };
  // sd_pid_notify_with_fds: `fd` < 0 sends no descriptor.
  static absl::Status Notify(const std::string& state, int fd);
  absl::Status RemoveNamed(const std::string& name);

  absl::Mutex mu_;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Stored>> stored_ ABSL_GUARDED_BY(mu_);
  // Passed at start, until TakeAll.
  std::vector<Entry> passed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_SYSTEMD_FD_STORE_H_
