// Tells the kernel to drop what it caches: dentries, attributes, pages.
//
// Notifications go out from a thread of their own, in order: an entry
// notification must never be sent from within the handling of a request on
// the same directory, or the two deadlock in the kernel (the kernel holds
// the directory's lock while it waits for our reply, and the notification
// waits for that lock). The one exception is DropAttrsNow(): dropping
// attributes takes no lock, so it may run before a reply.
//
// The queue is bounded, whatever a backend's notices ask for: a
// notification already waiting is not queued twice, and past kMaxQueued the
// queue gives way to one sweep over every node the kernel knows.
//
// Thread-safe. Start() once, Stop() once (both from the owner).

#ifndef FUSE_HOSTD_DAEMON_FUSE_KERNEL_INVALIDATOR_H_
#define FUSE_HOSTD_DAEMON_FUSE_KERNEL_INVALIDATOR_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "daemon/fuse/node_table.h"
#include "daemon/pipeline/cache_coherence.h"

namespace fusehost {

// The kernel's notification calls (libfuse's fuse_lowlevel_notify_inval_*),
// behind an interface so that tests can record them.
class KernelNotify {
 public:
  virtual ~KernelNotify() = default;
  // Drops node's attributes, and with `data` its cached pages/listing too.
  virtual void InvalidateNode(uint64_t node, bool data) = 0;
  // Drops the dentry `name` in directory node `parent`.
  virtual void InvalidateEntry(uint64_t parent, const std::string& name) = 0;
};

class KernelInvalidator : public KernelCacheNotifier {
 public:
  // Both must outlive the invalidator.
  KernelInvalidator(NodeTable* nodes, KernelNotify* notify);
  ~KernelInvalidator() override;  // Stop()s.

  void Start();
  // Stops the thread; notifications still queued are dropped (the session
  // is ending).
  void Stop();

  // KernelCacheNotifier: by backend path, queued.
  void PathChanged(const std::string& path) override;
  void SubtreeChanged(const std::string& path) override;
  void DirectoryChanged(const std::string& path) override;
  uint64_t HardLinkedFileAt(const std::string& path) override;
  void HardLinksChanged(const std::string& path) override;

  // By node, queued.
  void NodeChanged(uint64_t node, bool data);
  void EntryChanged(uint64_t parent, std::string name);

  // Drops the attributes of `nodes` at once (see above). Used to answer a
  // request only after the other names of a hard-linked file stopped
  // showing its old size and link count.
  void DropAttrsNow(const std::vector<uint64_t>& nodes);

  static constexpr size_t kMaxQueued = 1 << 16;

  // Notifications waiting, for tests.
  size_t queued() const;

 private:
  struct Item {
    uint64_t node;      // inode to invalidate, or the parent of `name`
    std::string name;   // empty: an inode; else: an entry
    bool data = false;  // inode: also cached data
  };
  void Enqueue(Item item);
  void Loop();

  // Everything the kernel knows, at once (after an overflow).
  void Sweep();

  NodeTable* const nodes_;
  KernelNotify* const notify_;
  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  // What is in queue_, to queue nothing twice: entries by (parent, name);
  // nodes with whether their data goes too.
  absl::flat_hash_set<std::pair<uint64_t, std::string>> queued_entries_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, bool> queued_nodes_ ABSL_GUARDED_BY(mu_);
  bool sweep_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_KERNEL_INVALIDATOR_H_
