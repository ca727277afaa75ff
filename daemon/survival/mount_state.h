// Keeps one mount's kernel-visible state outside the daemon: every change
// of its node table and handle tokens goes into its journal
// (mount_journal.h), whose memfd the descriptor store (the keeper, or systemd) holds with the
// mount's /dev/fuse descriptor. A daemon started after a crash takes both
// back (MountManager::AdoptKept), replays the journal into new tables
// (ReplayJournal) and serves the same kernel connection on.
//
// Thread-safe. The change callbacks run under the tables' locks; the
// journal is compacted on the state's own thread, which takes the node
// table's lock, then the handle map's, then the journal's: the only order
// in which those locks are ever nested.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_STATE_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_STATE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/fuse/node_table.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/survival/descriptor_store.h"
#include "daemon/survival/mount_journal.h"
#include "proto/mount_state.pb.h"

namespace fusehost {

// The store key of mount `mount_id`.
std::string KeptMountKey(uint64_t mount_id);
// The mount id of a store key, or 0 if it names no mount.
uint64_t MountIdOfKey(const std::string& key);

// What a journal says the mount is, and the kernel's INIT request ("" if
// the previous daemon died before reading it).
struct JournalHead {
  state::SavedMount mount;
  std::string kernel_init;
};
absl::StatusOr<JournalHead> HeadOf(const std::vector<state::Record>& records);

// The backing id registered for each node that has one (Backing records).
using BackingIds = absl::flat_hash_map<uint64_t, int32_t>;

// Applies a journal's changes to fresh tables, in order; `backing` (may be
// null) gets the backing ids still registered.
void ReplayJournal(const std::vector<state::Record>& records, NodeTable* nodes,
                   HandleMap* handles, BackingIds* backing = nullptr);

class MountState : private NodeTable::Changes, private HandleMap::Changes {
 public:
  struct Options {
    DescriptorStore* store = nullptr;  // must outlive the state
    int fuse_fd = -1;                // the store gets its own copy
    NodeTable* nodes = nullptr;      // both must outlive the state
    HandleMap* handles = nullptr;
    state::SavedMount mount;
    // Known already when resuming a mount.
    std::string kernel_init;
    // Resuming: the backing ids the previous daemon left registered.
    BackingIds backing;
  };

  // Writes the journal with what the tables hold now, hands it and the
  // connection to the store, and records every change from then on. Call
  // before anything else changes the tables (before the session serves).
  static absl::StatusOr<std::unique_ptr<MountState>> Start(Options options);

  // Stops recording. The store keeps what it holds: Release() gives it up.
  ~MountState() override;

  // The kernel's INIT request of a new mount, as read from /dev/fuse.
  void KernelInitRead(std::string request);

  // Node `node`'s passthrough opens use backing id `id` from now on (0:
  // none, the id was closed). Called in the order of the changes.
  void BackingChanged(uint64_t node, int32_t id);

  // The mount is over (or its journal stopped recording): the store
  // closes its descriptors, so that the connection ends with the daemon's.
  // Once.
  void Release();

  size_t journal_bytes() const { return journal_->size(); }
  uint64_t compactions() const;

 private:
  explicit MountState(Options options);

  // NodeTable::Changes
  void Referenced(uint64_t id, uint64_t parent,
                  const std::string& name) override;
  void Forgot(uint64_t id, uint64_t count) override;
  void Removed(uint64_t parent, const std::string& name) override;
  void Renamed(uint64_t old_parent, const std::string& old_name,
               uint64_t new_parent, const std::string& new_name,
               bool exchange) override;
  void HandleChanged(uint64_t id, uint64_t fh, bool open) override;
  // HandleMap::Changes
  void Issued(const HandleMap::Saved& token) override;
  void Retired(uint64_t token) override;
  void Reopened(uint64_t token, uint64_t fh, uint64_t instance) override;
  void Lost(uint64_t token, int posix_errno) override;
  void InstanceSeen(uint64_t instance) override;

  void Append(const state::Record& record);
  // Everything the tables hold, as records (called under their locks).
  std::vector<state::Record> SnapshotLocked(
      const std::vector<NodeTable::Saved>& nodes, uint64_t next_node,
      uint64_t instance, uint64_t next_token,
      const std::vector<HandleMap::Saved>& tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(backing_mu_);
  // Rewrites the journal from the tables and gives it to the store.
  absl::Status Compact();
  absl::Status Publish(int journal_fd);
  void CompactorLoop();

  Options options_;
  std::string key_;
  std::unique_ptr<MountJournal> journal_;
  // What BackingChanged recorded, for compactions; held while one is
  // recorded or a compaction writes them (taken under the tables' locks,
  // before the journal's).
  absl::Mutex backing_mu_;
  BackingIds backing_ ABSL_GUARDED_BY(backing_mu_);
  // Orders Publish and Release (a leaf lock, taken under the tables' and
  // the journal's).
  absl::Mutex store_mu_;
  bool released_ ABSL_GUARDED_BY(store_mu_) = false;
  mutable absl::Mutex mu_;
  std::string kernel_init_ ABSL_GUARDED_BY(mu_);
  bool compaction_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t compactions_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread compactor_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_STATE_H_
