// Where a kernel request enters the daemon: one FUSE session (one mount) on
// libfuse's multi-threaded low-level loop.
//
// This file and its .cc are, with dirent_buffer.cc, the only code that
// speaks libfuse. Each libfuse callback becomes a KernelRequest (which
// carries the op's statistics and answers exactly once) and a call to the
// matching RequestHandlers method; kernel cache notifications go out through
// the session's KernelInvalidator.
//
// Thread use: Create, Serve and Stop from one controlling thread; requests
// are handled on libfuse's worker threads and answered on the pipeline's.

#ifndef FUSE_HOSTD_DAEMON_FUSE_KERNEL_SESSION_H_
#define FUSE_HOSTD_DAEMON_FUSE_KERNEL_SESSION_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/fuse/caller_groups.h"
#include "daemon/fuse/kernel_invalidator.h"
#include "daemon/fuse/node_table.h"
#include "daemon/fuse/request_handlers.h"
#include "daemon/fuse/uring_queues.h"
#include "daemon/passthrough/backing_files.h"
#include "daemon/passthrough/descriptor_inbox.h"
#include "daemon/passthrough/reply_patcher.h"
#include "daemon/pipeline/cache_coherence.h"
#include "daemon/pipeline/op_transport.h"
#include "daemon/stats/mount_stats.h"
#include "daemon/survival/init_replay.h"

struct fuse_lowlevel_ops;
struct fuse_session;

namespace fusehost {

class KernelSession : private KernelNotify {
 public:
  struct Options {
    // All of these must outlive the session.
    NodeTable* nodes = nullptr;
    OpTransport* transport = nullptr;
    CacheCoherence* coherence = nullptr;
    MountStats* stats = nullptr;  // may be null
    KernelTimeouts timeouts;
    // The kernel checks permissions (default_permissions).
    bool kernel_checks_permissions = true;
    // Write-behind's settle (RequestHandlers::Options::settle), if any.
    std::function<void(std::function<void(int)>)> settle;
    // Write-behind's Touches (RequestHandlers::Options::queued_at), if any.
    std::function<bool(const std::string&)> queued_at;
    // RequestHandlers::Options::changes_below.
    bool changes_below = false;
    // Bounds what open directories' listings hold (may be null).
    MemoryBudget* listing_budget = nullptr;
    // The backend's time for each kernel request, from its arrival.
    absl::Duration op_timeout = absl::ZeroDuration();
    // Largest write the kernel may send; 0: libfuse's default.
    unsigned max_write = 0;
    // Capabilities the backend reported in Init: without them the kernel
    // emulates locks locally.
    bool posix_locks = false;
    bool flock_locks = false;
    // The backend implements ioctl; without it the daemon answers ENOTTY.
    bool ioctl = false;
    // See RequestHandlers::Options (must outlive the session; may be null).
    const std::atomic<bool>* lists_by_path = nullptr;
    // The backend asked the kernel to enforce the POSIX ACLs it stores
    // (InitReply.posix_acl); the kernel then checks permissions itself.
    bool posix_acl = false;
    // Extended attribute names the backend does not keep
    // (InitReply.unsupported_xattr_prefixes).
    std::vector<std::string> unsupported_xattr_prefixes;
    // The backend keeps no extended attributes (InitReply.no_xattrs).
    bool no_xattrs = false;
    // Ask the kernel for its writeback cache (mount option writeback_cache;
    // never with passthrough).
    bool writeback_cache = false;
    // Where log lines name the mount.
    std::string log_name;
    // The mounted /dev/fuse connection; the session takes ownership.
    int fuse_fd = -1;
    // Called on the loop thread when the session ends (unmounted, aborted).
    std::function<void()> on_session_end;
    // Called once, with the first request after INIT: the kernel has taken
    // the INIT reply by then. May be empty.
    std::function<void()> after_init;
    // Where the backend's descriptors arrive; non-null: offer the kernel
    // passthrough (the session then reads and writes /dev/fuse itself to
    // add it to the replies, see daemon/passthrough). Must outlive the
    // session.
    DescriptorInbox* passthrough_inbox = nullptr;
    // With passthrough: a loopback backend's root directory, beneath which
    // read-only opens are answered here, and the channel's handle tokens
    // (see RequestHandlers::Options). Both must outlive the session.
    RootDirectory* root_directory = nullptr;
    HandleMap* handles = nullptr;
    // Small files fetched ahead of their opens (RequestHandlers::Options);
    // without passthrough.
    size_t contents_ahead_files = 0;
    absl::Duration contents_ahead_max_age = absl::Seconds(1);
    // Called once with the kernel's INIT request as read, so that a later
    // daemon can resume the connection (daemon/survival). May be empty.
    std::function<void(std::string)> on_init_request;
    // Resuming a connection a previous daemon served: its INIT request,
    // which the session is fed first (its reply goes nowhere); then the
    // kernel is asked to send again what that daemon left unanswered.
    std::string resume_init;
    // Resuming, with passthrough: the backing id the previous daemon left
    // registered for each node (BackingFiles::Inherit).
    absl::flat_hash_map<uint64_t, int32_t> inherited_backing;
    // Told of each backing id registered for a node, and of each closed (id
    // 0), in order (BackingFiles::Options::on_change). May be empty.
    std::function<void(uint64_t node, int32_t id)> on_backing_change;
    // See RequestHandlers::Options.
    uint64_t first_dir_handle = 1;
    // Offer the kernel FUSE over io_uring (a queue per CPU, see
    // uring_queues.h), with this many entries per queue, if it offers it.
    bool uring = false;
    size_t uring_depth = 16;
  };

  // Creates the session on the connection; nothing is served yet.
  static absl::StatusOr<std::unique_ptr<KernelSession>> Create(Options options);

  ~KernelSession() override;  // Stop()s.

  // What the kernel caches, for the cache layer to invalidate. Valid from
  // Create() until destruction.
  KernelCacheNotifier* kernel_cache() { return &invalidator_; }

  // Starts serving the kernel.
  void Serve();

  // Stops accepting requests, waits for the loop to end (the caller must
  // have unmounted or aborted the connection, which wakes it), answers what
  // is still in flight and destroys the session. Idempotent.
  void Stop();

  bool session_ended() const { return session_ended_.load(); }

  // A hand-over to a new daemon (daemon/survival): no request is read from
  // now on (one read meanwhile is left unanswered, for the kernel to send
  // the next daemon again), and this waits until every request read before
  // is answered, or `deadline`. False if some were not.
  bool Quiesce(absl::Time deadline);

  // Opens answered with passthrough so far, descriptors refused, and
  // backing ids held now (all 0 without passthrough).
  uint64_t passthrough_opens() const;
  uint64_t passthrough_refused() const;
  size_t backing_ids() const;
  // The file at `path` is open for writing through a backing file: writes
  // to it never pass the daemon.
  bool WritesThrough(const std::string& path) const;
  // Requests taken from the io_uring queues (0 without them).
  uint64_t uring_requests() const;
  // Small files fetched ahead of their opens, and opens answered with them.
  uint64_t contents_fetched_ahead() const {
    return handlers_.contents_fetched_ahead();
  }
  uint64_t opens_answered_ahead() const {
    return handlers_.opens_answered_ahead();
  }

  // libfuse's callbacks need the class; they are members of this nested
  // type in kernel_session_callbacks.cc.
  struct Ops;

 private:
  explicit KernelSession(Options options);

  // KernelNotify, for the invalidator.
  void InvalidateNode(uint64_t node, bool data) override;
  void InvalidateEntry(uint64_t parent, const std::string& name) override;

  // libfuse's table of Ops' callbacks (kernel_session_callbacks.cc); the
  // lock callbacks only where the backend locks itself.
  static struct fuse_lowlevel_ops CallbackTable(bool posix_locks,
                                                bool flock_locks);

  // Passthrough (kernel_session_device.cc). Null without an inbox.
  static std::unique_ptr<ReplyPatcher> MakePassthroughPatcher(const Options& o);
  static std::unique_ptr<BackingFiles> MakeBackingFiles(const Options& o,
                                                        ReplyPatcher* patcher);
  // Resuming: the opens the kernel holds from the previous daemon.
  static void InheritOpens(const Options& o, BackingFiles* backing);
  // libfuse reads and writes the device through these
  // (fuse_session_custom_io passes the session as userdata): the patcher
  // sees every request and reply, INIT is recorded or replayed.
  void TakeOverDeviceIo();
  static ssize_t ReadDevice(int fd, void* buf, size_t len, void* userdata);
  static ssize_t WriteDevice(int fd, struct iovec* iov, int count,
                             void* userdata);
  // libfuse's reply to a replayed INIT: shown to the patcher, never
  // written; the kernel is asked to resend what is unanswered instead.
  ssize_t DropInitReply(int fd, const struct iovec* iov, int count);
  [[noreturn]] static void ParkForHandOver();
  // FUSE over io_uring (kernel_session_uring.cc): the INIT reply offers
  // the rings if the kernel did and they could be made; once the kernel
  // has the reply, they are registered.
  void SawInitForUring(const void* request, size_t size);
  bool IsInitReply(const struct iovec* iov, int count) const;
  ssize_t WriteInitReply(int fd, struct iovec* iov, int count);
  void ProcessRingRequest(char* request, size_t size);
  // Logs, once, whether the kernel took passthrough.
  void ReportPassthrough();

  Options options_;
  // Resuming only (Options::resume_init).
  std::unique_ptr<InitReplay> replay_;
  std::atomic<bool> init_read_{false};
  // Requests made and not yet destroyed; no reads once quiescing.
  std::atomic<int64_t> live_requests_{0};
  std::atomic<bool> quiescing_{false};
  // Both null without passthrough. Declared before the handlers, which
  // use them.
  std::unique_ptr<ReplyPatcher> patcher_;
  std::unique_ptr<BackingFiles> backing_;
  // The io_uring queues, once registered (null before and without them);
  // replies to their requests are committed there.
  std::unique_ptr<UringQueues> uring_;
  std::atomic<UringQueues*> uring_live_{nullptr};
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> uring_offered_{false};
  std::atomic<bool> init_replied_{false};
  // The kernel took the writeback cache at INIT. Declared before the
  // handlers, which read it.
  std::atomic<bool> writeback_cache_{false};
  KernelInvalidator invalidator_;
  RequestHandlers handlers_;
  CallerGroups groups_;
  struct fuse_session* session_ = nullptr;
  std::thread loop_thread_;
  std::atomic<bool> session_ended_{false};
  std::atomic<bool> after_init_done_{false};
  bool serving_ = false;
  bool stopped_ = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_KERNEL_SESSION_H_
