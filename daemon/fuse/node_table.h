// The daemon's inode <-> path table.
//
// The kernel names files by node id (its "inode number"); backends name them
// by path. Every node the kernel knows about is an entry here, attached to a
// (parent node, name) pair until it is unlinked or renamed over. A node stays
// in the table while the kernel holds lookup references on it (FUSE lookup
// count), so that an open file whose name is gone can still be served through
// its file handle.
//
// Thread-safe: every method takes the table's mutex; no method calls out
// while holding it.

#ifndef FUSE_HOSTD_DAEMON_FUSE_NODE_TABLE_H_
#define FUSE_HOSTD_DAEMON_FUSE_NODE_TABLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/compact_string.h"

namespace fusehost {

class NodeTable {
 public:
  // The root directory's node id (FUSE_ROOT_ID).
  static constexpr uint64_t kRootId = 1;

  NodeTable();
  NodeTable(const NodeTable&) = delete;
  NodeTable& operator=(const NodeTable&) = delete;

  // The backend path of `id`: "/" for the root, "/a/b" for others, "" when
  // the node (or an ancestor) no longer has a name. nullopt when `id` is not
  // in the table (a kernel bug or a forgotten node).
  std::optional<std::string> PathOf(uint64_t id) const;

  // The path of `name` inside directory `parent`; nullopt as for PathOf, or
  // "" when the parent no longer has a name.
  std::optional<std::string> ChildPath(uint64_t parent,
                                       const std::string& name) const;

  // The node currently named `path` ("/a/b"), or 0 if the kernel knows no
  // node by that name.
  uint64_t Find(const std::string& path) const;

  // Every named node strictly below `id`, with its parent and name: what the
  // kernel must forget when a backend says a whole subtree changed.
  struct Link {
    uint64_t id;
    uint64_t parent;
    std::string name;
  };
  std::vector<Link> LinksBelow(uint64_t id) const;

  // Records that the kernel got a reference to (parent, name): returns its
  // node id, creating the node if needed, and adds one lookup reference.
  // Returns 0 when `parent` is unknown.
  uint64_t AddLookup(uint64_t parent, const std::string& name);

  // Drops `count` lookup references (FUSE forget). The node is erased when
  // none remain. Aborts on a count underflow: that is a broken invariant.
  void Forget(uint64_t id, uint64_t count);

  // (parent, name) was unlinked or removed: its node loses the name but lives
  // on while the kernel references it.
  void Remove(uint64_t parent, const std::string& name);

  // Applies a successful rename. With `exchange` the two names swap nodes;
  // otherwise a node at the destination loses its name.
  void Rename(uint64_t old_parent, const std::string& old_name,
              uint64_t new_parent, const std::string& new_name, bool exchange);

  // Hard links. Every name is a node of its own (paths are what backends
  // know), so the kernel caches attributes and pages per name. To keep the
  // names of one file coherent the table remembers which nodes share a
  // backend inode number: NoteInode() after every reply that carries
  // attributes, Siblings() when one of them changed. Only files with more
  // than one link are tracked.
  void NoteInode(uint64_t id, uint64_t backend_ino, bool multi_link);
  std::vector<uint64_t> Siblings(uint64_t id) const;
  // The backend inode number NoteInode() tracks `id` by; 0 if untracked.
  uint64_t BackendIno(uint64_t id) const;

  // Open file handles per node, so that attribute requests on a file whose
  // name is gone (fstat after unlink: the kernel sends no handle) can still
  // be answered through a handle.
  void AddOpenHandle(uint64_t id, uint64_t fh);
  void RemoveOpenHandle(uint64_t id, uint64_t fh);
  std::optional<uint64_t> AnyOpenHandle(uint64_t id) const;
  std::vector<uint64_t> OpenHandles(uint64_t id) const;

  // Number of nodes, root included.
  size_t size() const;

  // Told of every change of what the kernel holds, under the table's lock
  // and so in the order the changes are made: a restarted daemon replays
  // them (daemon/survival). Never calls back into the table.
  class Changes {
   public:
    virtual ~Changes() = default;
    // One more lookup reference to `id`, named (parent, name).
    virtual void Referenced(uint64_t id, uint64_t parent,
                            const std::string& name) = 0;
    virtual void Forgot(uint64_t id, uint64_t count) = 0;
    virtual void Removed(uint64_t parent, const std::string& name) = 0;
    virtual void Renamed(uint64_t old_parent, const std::string& old_name,
                         uint64_t new_parent, const std::string& new_name,
                         bool exchange) = 0;
    virtual void HandleChanged(uint64_t id, uint64_t fh, bool open) = 0;
  };
  // From now on `changes` (may be null: none) hears of every change.
  void SetChanges(Changes* changes);

  // Replaying what a previous daemon recorded: adds `lookups` references
  // to node `id`, which is created as (parent, name) when new (parent 0: a
  // node without a name). Ids issued later are above every id seen.
  void Restore(uint64_t id, uint64_t parent, const std::string& name,
               uint64_t lookups);
  // Forget, for a replay: a count above what the node holds drops it all
  // (a journal is never trusted to the point of aborting the daemon).
  void RestoreForget(uint64_t id, uint64_t count);

  // Every node but the root, as Restore() would make it again.
  struct Saved {
    uint64_t id;
    uint64_t parent;
    std::string name;
    uint64_t lookups;
    std::vector<uint64_t> open_handles;
  };
  // Calls `with` with every node and the next id to issue while holding the
  // table's lock, so that no change is made (or reported) until it returns.
  void Snapshot(absl::FunctionRef<void(const std::vector<Saved>&,
                                       uint64_t next_id)>
                    with) const;
  // Replaying: ids issued from now on are at least `next_id`.
  void RestoreNextId(uint64_t next_id);

 private:
  // What every node costs: kept small, since a listed tree has one per file.
  // Open handles and hard-link inode numbers, which few nodes have, are kept
  // beside the table (open_handles_, backend_ino_).
  struct Node {
    uint64_t parent = 0;  // 0 when detached (no name)
    uint64_t lookups = 0;
    CompactString name;
  };
  using Nodes = absl::flat_hash_map<uint64_t, Node>;

  // children_ holds node ids only and finds them by (parent, name) through
  // nodes_, so that a name is stored once, in its node. Both functors accept
  // an id (hashed and compared by its node's parent and name) or a ChildKey.
  struct ChildKey {
    uint64_t parent;
    absl::string_view name;
  };
  struct ChildHash {
    using is_transparent = void;
    const Nodes* nodes;
    size_t operator()(const ChildKey& key) const;
    size_t operator()(uint64_t id) const;
  };
  struct ChildEq {
    using is_transparent = void;
    const Nodes* nodes;
    ChildKey KeyOf(uint64_t id) const;
    bool operator()(uint64_t a, uint64_t b) const { return a == b; }
    bool operator()(uint64_t id, const ChildKey& key) const;
    bool operator()(const ChildKey& key, uint64_t id) const {
      return (*this)(id, key);
    }
  };
  using Children = absl::flat_hash_set<uint64_t, ChildHash, ChildEq>;

  // The node named (parent, name), or 0.
  uint64_t ChildLocked(uint64_t parent, absl::string_view name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void UntrackLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Erases `id` with everything kept beside it.
  void EraseLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void DetachLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AttachLocked(uint64_t id, uint64_t parent, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether attaching `id` below `parent` would make it its own ancestor.
  bool WouldCycleLocked(uint64_t id, uint64_t parent) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::optional<std::string> PathOfLocked(uint64_t id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Changes* changes_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = kRootId + 1;
  Nodes nodes_ ABSL_GUARDED_BY(mu_);
  Children children_ ABSL_GUARDED_BY(mu_){0, ChildHash{&nodes_},
                                          ChildEq{&nodes_}};
  // Nodes with open handles: their handles, oldest first.
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> open_handles_
      ABSL_GUARDED_BY(mu_);
  // Hard links: node -> backend inode number, and back.
  absl::flat_hash_map<uint64_t, uint64_t> backend_ino_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> by_backend_ino_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_NODE_TABLE_H_
