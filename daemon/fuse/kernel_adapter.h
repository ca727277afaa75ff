// The kernel adapter: the only code that speaks libfuse's low-level API.
//
// It runs one FUSE session (one mount) on libfuse's multi-threaded loop, turns
// each kernel request into a path operation for the backend (through the
// NodeTable), and answers the kernel when the backend's result arrives.
// libfuse worker threads never wait for the network: every reply is sent from
// the transport's completion callback, and each request is answered exactly
// once.
//
// Thread use: Start() and Stop() from one controlling thread; everything else
// happens on libfuse's and the transport's threads.

#ifndef FUSE_HOSTD_DAEMON_FUSE_KERNEL_ADAPTER_H_
#define FUSE_HOSTD_DAEMON_FUSE_KERNEL_ADAPTER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "absl/status/statusor.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "daemon/pipeline/caching_transport.h"
#include "daemon/fuse/caller_groups.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/mounting/mount_options.h"
#include "daemon/stats/mount_stats.h"
#include "daemon/fuse/node_table.h"
#include "daemon/fuse/open_contents.h"
#include "daemon/pipeline/op_transport.h"

struct fuse_session;

namespace fusehost {

class KernelAdapter {
 public:
  struct Options {
    uint64_t mount_id = 0;
    // All of these must outlive the adapter.
    NodeTable* nodes = nullptr;
    OpTransport* transport = nullptr;
    const MountOptions* mount_options = nullptr;
    // Directory listings are taken from here at opendir when present, so a
    // cached directory costs the backend nothing. May be null.
    MetadataCache* cache = nullptr;
    MountStats* stats = nullptr;  // may be null
    // Lifetimes for replies that carry none (negative lookups).
    CachePolicy policy;
    // Capabilities the backend reported in Init.
    bool posix_locks = false;
    bool flock_locks = false;
    // The mounted /dev/fuse connection; the adapter takes ownership.
    int fuse_fd = -1;
    // Called on the loop thread when the session ends (unmounted, aborted).
    std::function<void()> on_session_end;
    // Called once, with the first request after INIT: the kernel has
    // taken the INIT reply by then. May be empty.
    std::function<void()> after_init;
  };

  // Creates the session and starts serving the kernel.
  static absl::StatusOr<std::unique_ptr<KernelAdapter>> Start(Options options);

  ~KernelAdapter();  // Stop()s.

  // Stops accepting requests, waits for the loop to end (the caller must have
  // unmounted or aborted the connection, which wakes it) and destroys the
  // session. Idempotent.
  void Stop();

  bool session_ended() const { return session_ended_.load(); }

  // Kernel cache invalidations. Queued and sent from a thread of their own:
  // a notification must never be sent from within the handling of a request
  // on the same inode, or the two deadlock in the kernel.
  //
  // Drops the kernel's attributes of `node`, and its cached data (file pages,
  // directory listing) too when `data`.
  void InvalidateInode(uint64_t node, bool data);
  // Drops the kernel's dentry `name` in directory `parent`.
  void InvalidateEntry(uint64_t parent, std::string name);
  // By backend path: what the kernel caches about `path` (its attributes and
  // data, its name in its parent). Paths the kernel does not know are
  // skipped.
  void InvalidatePath(const std::string& path);
  // Everything the kernel knows at or below `path`.
  void InvalidateSubtree(const std::string& path);
  // Drops the kernel's attributes of `nodes` right away (attributes only:
  // that takes no kernel lock, so it is safe while a request is pending),
  // then runs `then`. Used to answer a request only once the other names of
  // a hard-linked file stopped showing stale sizes and link counts.
  void InvalidateThen(const std::vector<uint64_t>& nodes,
                      std::function<void()> then);

  // Request bookkeeping for statistics (see kernel_adapter.cc).
  void BeginRequest(const void* req, KernelOp op);
  void EndRequest(const void* req, int posix_errno);

  // Callbacks from libfuse need the whole class; they are implemented as
  // members of this nested type in kernel_adapter.cc.
  struct Ops;

 private:
  explicit KernelAdapter(Options options);
  void InvalidationLoop();

  Options options_;
  struct fuse_session* session_ = nullptr;
  std::thread loop_thread_;
  std::atomic<bool> session_ended_{false};
  std::atomic<bool> after_init_done_{false};
  OpenContents open_contents_;
  // Set by Stop(): new backend calls fail at once with ECANCELED so that the
  // in-flight set drains.
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;

  struct Invalidation {
    uint64_t node;      // inode to invalidate, or the parent of `name`
    std::string name;   // empty: an inode; else: an entry
    bool data = false;  // inode: also cached data
  };
  void Enqueue(Invalidation inv);

  absl::Mutex inval_mu_;
  std::deque<Invalidation> inval_queue_ ABSL_GUARDED_BY(inval_mu_);
  bool inval_stop_ ABSL_GUARDED_BY(inval_mu_) = false;
  std::thread inval_thread_;

  CallerGroups groups_;

  struct Pending {
    KernelOp op;
    absl::Time start;
  };
  absl::Mutex requests_mu_;
  absl::flat_hash_map<const void*, Pending> requests_
      ABSL_GUARDED_BY(requests_mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_KERNEL_ADAPTER_H_
