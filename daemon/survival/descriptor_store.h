// Where the daemon keeps descriptors across its own restarts, so that its
// mounts outlive it: its keeper process (keeper_client.h), or systemd's
// file descriptor store (systemd_fd_store.h). Each mount keeps its
// /dev/fuse connection and its state journal under one key
// (mount_state.h).
//
// Thread-safe implementations.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_DESCRIPTOR_STORE_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_DESCRIPTOR_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace fusehost {

class DescriptorStore {
 public:
  virtual ~DescriptorStore() = default;

  // Keeps 1..8 descriptors under `key` (1..64 characters of
  // [A-Za-z0-9._-]), replacing what was kept there. The caller keeps its
  // `fds`: the store gets copies.
  virtual absl::Status Put(const std::string& key,
                           const std::vector<int>& fds) = 0;

  // Drops what is kept under `key` (OK if nothing).
  virtual absl::Status Remove(const std::string& key) = 0;

  struct Entry {
    std::string key;
    std::vector<UniqueFd> fds;  // in the order they were put
  };
  // Everything kept for this daemon's predecessors, in key order, as
  // copies: the store keeps its own until they are replaced or removed.
  virtual absl::StatusOr<std::vector<Entry>> TakeAll() = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_DESCRIPTOR_STORE_H_
