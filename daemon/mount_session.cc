// Mount's kernel side: the session that serves /dev/fuse through the op
// pipeline (mount_pipeline.cc), its state kept for a successor daemon, and
// the listener that applies the backend's change notices.

#include "daemon/mount.h"

#include <string>
#include <utility>

#include "common/log_line.h"
#include "daemon/mounting/kernel_mount.h"
#include "daemon/mounting/read_ahead.h"

namespace fusehost {
namespace {

// Small files fetched ahead per window (at most 1 MiB of them): one
// message; the next window goes out when the reader is half-way through
// this one.
constexpr size_t kContentsAheadFiles = 64;

}  // namespace

absl::Status Mount::StartSession(const v1::InitReply& reply,
                                 const KernelMount& km,
                                 const JournalHead& head) {
  KernelSession::Options session;
  session.nodes = nodes_.get();
  session.transport = caching_.get();
  session.coherence = caching_.get();
  session.changes_below = changes_by_daemon_ != nullptr;
  session.stats = &stats_;
  session.timeouts.attr = policy_.attr_ttl;
  session.timeouts.negative = policy_.negative_ttl;
  session.timeouts.entry = options_.entry_timeout;
  session.timeouts.cache_listings = policy_.listing_ttl > absl::ZeroDuration();
  session.op_timeout = options_.call_timeout;
  // With POSIX ACLs the kernel checks permissions whatever the mount's
  // options say.
  session.kernel_checks_permissions =
      options_.default_permissions || reply.posix_acl();
  session.posix_acl = reply.posix_acl();
  session.no_xattrs = reply.no_xattrs();
  session.writeback_cache = options_.writeback_cache.value_or(OverTcp());
  session.unsupported_xattr_prefixes.assign(
      reply.unsupported_xattr_prefixes().begin(),
      reply.unsupported_xattr_prefixes().end());
  if (write_behind_ != nullptr) {
    session.settle = [wb = write_behind_.get()](
                         std::function<void(int)> then) {
      wb->Settle(std::move(then));
    };
    session.queued_at = [wb = write_behind_.get()](const std::string& p) {
      return wb->Touches(p);
    };
  }
  session.log_name = spec_.mountpoint;
  listing_budget_ = std::make_unique<MemoryBudget>(kListingBytesPerMount,
                                                      spec_.listing_budget);
  session.listing_budget = listing_budget_.get();
  session.max_write = options_.max_write;
  session.posix_locks = reply.posix_locks();
  session.flock_locks = reply.flock_locks();
  session.ioctl = reply.ioctl();
  session.lists_by_path = &lists_by_path_;
  if (options_.read_ahead_kb != 0) {
    session.after_init = [this] {
      absl::Status st = SetReadAhead(identity_.device, options_.read_ahead_kb);
      if (!st.ok()) {
        Log("%s: read-ahead left as it is: %s", spec_.mountpoint.c_str(),
            std::string(st.message()).c_str());
      }
    };
  }
  session.fuse_fd = km.fuse_fd;
  session.passthrough_inbox = inbox_.get();
  session.root_directory = root_.get();
  session.handles = channel_->handles();
  // Ahead of the reader wherever an open is a message: a local backend's
  // open costs a few hundred microseconds too, against a few for an open
  // answered here. Where the kernel reads a backend's files itself
  // (passthrough), the request handlers leave it off.
  session.contents_ahead_files =
      options_.prefetch_contents.value_or(kContentsAheadFiles);
  session.contents_ahead_max_age = policy_.attr_ttl;
  if (spec_.store != nullptr && options_.uring) {
    // A request the daemon took from an io_uring queue cannot be sent
    // again to its successor (FUSE_NOTIFY_RESEND covers /dev/fuse only):
    // it would wait forever. Such a mount ends with its daemon instead.
    Log("%s: uring: the mount ends with this daemon (requests held in "
        "io_uring queues cannot be handed to a successor)",
        spec_.mountpoint.c_str());
  } else if (spec_.store != nullptr) {
    KeepState(km.fuse_fd, head.kernel_init);
  }
  session.on_init_request = [this](std::string request) {
    absl::MutexLock lock(&state_mu_);
    if (state_ != nullptr) state_->KernelInitRead(std::move(request));
  };
  session.resume_init = head.kernel_init;
  session.inherited_backing = std::move(inherited_backing_);
  session.on_backing_change = [this](uint64_t node, int32_t id) {
    absl::MutexLock lock(&state_mu_);
    if (state_ != nullptr) state_->BackingChanged(node, id);
  };
  session.first_dir_handle = (generation_ << 40) + 1;
  session.uring = options_.uring;
  session.on_session_end = [this] {
    if (spec_.on_session_end) spec_.on_session_end(spec_.mount_id);
  };
  absl::StatusOr<std::unique_ptr<KernelSession>> created =
      KernelSession::Create(std::move(session));
  if (!created.ok()) {
    if (state_ != nullptr) state_->Release();
    state_.reset();
    UnmountFuse(identity_, /*lazy=*/true).IgnoreError();
    channel_->Destroy();
    return created.status();
  }
  session_ = *std::move(created);
  caching_->AttachKernel(session_->kernel_cache());
  session_->Serve();

  InvalidationListener::Options listener;
  listener.channel = channel_.get();
  listener.mount_id = spec_.mount_id;
  listener.on_open = [this] { caching_->NoticesMayHaveBeenLost(); };
  listener.on_notice = [this](const v1::Invalidation& notice) {
    if (!validator_->AcceptNotice(notice)) return;
    const auto apply = [this](const v1::Invalidation& news) {
      caching_->ApplyNotice(news);
    };
    // Unless the backend saw a change the daemon made itself and knows.
    if (changes_by_daemon_ != nullptr) {
      changes_by_daemon_->Filter(notice, apply);
    } else {
      apply(notice);
    }
  };
  listener_ = std::make_unique<InvalidationListener>(std::move(listener));
  listener_->Start();
  // A backend that answers its Init answers this at once; one that is slow
  // to do so still gets its mount, with notices that start later.
  if (!listener_->AwaitFirstAttempt(absl::Seconds(2))) {
    Log("%s: the backend's change notices are not open yet",
        spec_.mountpoint.c_str());
  }
  return absl::OkStatus();
}

}  // namespace fusehost
