#include "daemon/fuse/kernel_session.h"

#include <fuse3/fuse_lowlevel.h>
#include <pthread.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

RequestHandlers::Options HandlerOptions(
    const KernelSession::Options& o, KernelInvalidator* invalidator,
    BackingFiles* backing, const std::atomic<bool>* writeback_cache) {
  RequestHandlers::Options h;
  h.nodes = o.nodes;
  h.transport = o.transport;
  h.coherence = o.coherence;
  h.invalidator = invalidator;
  h.timeouts = o.timeouts;
  h.op_timeout = o.op_timeout;
  h.kernel_checks_permissions = o.kernel_checks_permissions;
  h.settle = o.settle;
  h.queued_at = o.queued_at;
  h.changes_below = o.changes_below;
  h.listing_budget = o.listing_budget;
  h.backend_ioctl = o.ioctl;
  h.backend_posix_locks = o.posix_locks;
  h.unsupported_xattrs = XattrExclusions(o.unsupported_xattr_prefixes);
  h.no_xattrs = o.no_xattrs;
  h.lists_by_path = o.lists_by_path;
  h.handles = o.handles;
  h.contents_ahead_files = o.contents_ahead_files;
  h.contents_ahead_max_age = o.contents_ahead_max_age;
  if (backing != nullptr) {
    h.inbox = o.passthrough_inbox;
    h.backing = backing;
    h.root = o.root_directory;
  }
  h.first_dir_handle = o.first_dir_handle;
  h.writeback_cache = writeback_cache;
  return h;
}

}  // namespace

KernelSession::KernelSession(Options options)
    : options_(std::move(options)),
      replay_(options_.resume_init.empty()
                  ? nullptr
                  : std::make_unique<InitReplay>(options_.resume_init)),
      patcher_(MakePassthroughPatcher(options_)),
      backing_(MakeBackingFiles(options_, patcher_.get())),
      invalidator_(options_.nodes, this),
      handlers_(HandlerOptions(options_, &invalidator_, backing_.get(),
                               &writeback_cache_)) {}

absl::StatusOr<std::unique_ptr<KernelSession>> KernelSession::Create(
    Options options) {
  std::unique_ptr<KernelSession> s(new KernelSession(std::move(options)));
  struct fuse_lowlevel_ops ops =
      CallbackTable(s->options_.posix_locks, s->options_.flock_locks);
  char arg0[] = "fuse-hostd";
  char* argv[] = {arg0, nullptr};
  struct fuse_args args = FUSE_ARGS_INIT(1, argv);
  s->session_ = fuse_session_new(&args, &ops, sizeof(ops), s.get());
  if (s->session_ == nullptr) {
    close(s->options_.fuse_fd);
    return absl::InternalError("cannot create a FUSE session");
  }
  // "/dev/fd/N" makes libfuse use the connection mounted by the daemon.
  std::string fd_path = absl::StrCat("/dev/fd/", s->options_.fuse_fd);
  if (fuse_session_mount(s->session_, fd_path.c_str()) != 0) {
    fuse_session_destroy(s->session_);
    s->session_ = nullptr;
    close(s->options_.fuse_fd);
    return absl::InternalError("cannot attach the FUSE session");
  }
  s->TakeOverDeviceIo();
  return s;
}

void KernelSession::Serve() {
  serving_ = true;
  invalidator_.Start();
  loop_thread_ = std::thread([this] {
    // libfuse's worker threads inherit the name.
    pthread_setname_np(pthread_self(), "fuse-worker");
    struct fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, 4);
    fuse_session_loop_mt(session_, config);
    fuse_loop_cfg_destroy(config);
    session_ended_.store(true);
    if (options_.on_session_end) options_.on_session_end();
  });
}

void KernelSession::InvalidateNode(uint64_t node, bool data) {
  // A negative offset drops the attributes only, not cached data. Errors
  // (ENOENT: the kernel already forgot the node) need no action.
  fuse_lowlevel_notify_inval_inode(session_, node, data ? 0 : -1, 0);
}

void KernelSession::InvalidateEntry(uint64_t parent, const std::string& name) {
  fuse_lowlevel_notify_inval_entry(session_, parent, name.data(), name.size());
}

void KernelSession::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (session_ != nullptr) fuse_session_exit(session_);
  if (loop_thread_.joinable()) loop_thread_.join();
  invalidator_.Stop();
  // Requests still waiting for the backend hold fuse_req pointers into the
  // session: fail them fast and wait until every reply has been sent.
  handlers_.StopSending();
  options_.transport->CancelAll();
  options_.transport->WaitIdle();
  // Backing ids go while the connection is still open (the kernel would
  // drop them with it anyway).
  if (backing_ != nullptr) backing_->CloseAll();
  // Every reply is written: the rings may go.
  uring_live_.store(nullptr);
  uring_.reset();
  if (session_ != nullptr) {
    fuse_session_destroy(session_);  // closes the /dev/fuse fd
    session_ = nullptr;
  }
}

KernelSession::~KernelSession() { Stop(); }

}  // namespace fusehost
