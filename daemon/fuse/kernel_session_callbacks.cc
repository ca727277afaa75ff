// libfuse's low-level callbacks: each turns the kernel's request into a
// KernelRequest (which starts its statistics) and hands it to its handler in
// RequestHandlers with the arguments in plain types.

#include <fuse3/fuse_lowlevel.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include "daemon/fuse/kernel_session.h"
#include "daemon/passthrough/session_io.h"

namespace fusehost {
namespace {

constexpr int kMaxGroups = 65536;

// Requests that may be answered EINTR when the kernel interrupts them: they
// change nothing, so abandoning them leaves nothing half done (the backend's
// answer, when it comes, is dropped). A killed process waiting on a hung
// backend is freed at once instead of at the deadline. Changes are not
// abandoned: the backend may be carrying them out, and a restarted system
// call would see them half done.
bool MayAbandon(KernelOp op) {
  switch (op) {
    case KernelOp::kLookup:
    case KernelOp::kGetattr:
    case KernelOp::kReadlink:
    case KernelOp::kOpen:
    case KernelOp::kRead:
    case KernelOp::kOpendir:
    case KernelOp::kReaddir:
    case KernelOp::kReaddirplus:
    case KernelOp::kStatfs:
    case KernelOp::kGetxattr:
    case KernelOp::kListxattr:
    case KernelOp::kAccess:
    case KernelOp::kGetlk:
    case KernelOp::kLseek:
    case KernelOp::kFsync:
    case KernelOp::kFsyncdir:
      return true;
    default:
      return false;
  }
}

// A request as libfuse delivered it; answers with fuse_reply_*.
class LibfuseRequest : public KernelRequest {
 public:
  LibfuseRequest(fuse_req_t req, KernelOp op, MountStats* stats,
                 CallerGroups* groups, std::atomic<int64_t>* live)
      : KernelRequest(op, stats), req_(req), groups_(groups), live_(live) {
    live_->fetch_add(1);
    if (MayAbandon(op)) {
      interruptible_ = true;
      // Runs OnInterrupt at once if the kernel interrupted it already.
      fuse_req_interrupt_func(req_, &LibfuseRequest::OnInterrupt, this);
    }
  }

  ~LibfuseRequest() override {
    {
      // An interrupt being answered still uses this object.
      std::lock_guard<std::mutex> lock(interrupt_mu_);
    }
    live_->fetch_sub(1);
  }

  void FillCaller(v1::Caller* caller) override {
    const struct fuse_ctx* ctx = fuse_req_ctx(req_);
    caller->set_uid(ctx->uid);
    caller->set_gid(ctx->gid);
    caller->set_pid(ctx->pid);
    caller->set_umask(ctx->umask);
    if (ctx->pid == 0) return;  // the kernel's own request (writeback)
    fuse_req_t req = req_;
    auto groups = groups_->Get(
        ctx->pid, ctx->uid, ctx->gid, [req](CallerGroups::Groups* out) {
          out->resize(64);
          int n = fuse_req_getgroups(req, out->size(), out->data());
          if (n > static_cast<int>(out->size()) && n <= kMaxGroups) {
            out->resize(n);
            n = fuse_req_getgroups(req, out->size(), out->data());
          }
          if (n < 0) return false;
          out->resize(std::min<size_t>(n, out->size()));
          return true;
        });
    for (gid_t g : *groups) caller->add_groups(g);
  }

 protected:
  // Each Send* is called once this request is known to be answered here
  // (not EINTR by OnInterrupt), and first takes the interrupt callback
  // away: libfuse then waits out one that is running.
  int SendError(int posix_errno) override {
    return fuse_reply_err(Own(), posix_errno);
  }
  void SendNone() override { fuse_reply_none(Own()); }
  int SendEntry(const KernelEntry& entry) override {
    struct fuse_entry_param e = EntryParam(entry);
    return fuse_reply_entry(Own(), &e);
  }
  int SendAttr(const struct stat& attr, double timeout) override {
    return fuse_reply_attr(Own(), &attr, timeout);
  }
  int SendReadlink(const std::string& target) override {
    return fuse_reply_readlink(Own(), target.c_str());
  }
  int SendOpen(const KernelOpenReply& open) override {
    struct fuse_file_info fi = FileInfo(open);
    OpenPatchScope patch(open.backing_id);
    int result = fuse_reply_open(Own(), &fi);
    NoteRefusal(open, patch);
    return result;
  }
  int SendCreate(const KernelEntry& entry,
                 const KernelOpenReply& open) override {
    struct fuse_entry_param e = EntryParam(entry);
    struct fuse_file_info fi = FileInfo(open);
    OpenPatchScope patch(open.backing_id);
    int result = fuse_reply_create(Own(), &e, &fi);
    NoteRefusal(open, patch);
    return result;
  }
  int SendData(absl::string_view data) override {
    return fuse_reply_buf(Own(), data.data(), data.size());
  }
  int SendWritten(size_t count) override {
    return fuse_reply_write(Own(), count);
  }
  int SendStatfs(const struct statvfs& st) override {
    return fuse_reply_statfs(Own(), &st);
  }
  int SendXattrSize(size_t size) override {
    return fuse_reply_xattr(Own(), size);
  }
  int SendLock(const struct flock& lock) override {
    return fuse_reply_lock(Own(), &lock);
  }
  int SendLseek(off_t offset) override {
    return fuse_reply_lseek(Own(), offset);
  }
  int SendIoctl(int result, absl::string_view out) override {
    return fuse_reply_ioctl(Own(), result, out.data(), out.size());
  }

 private:
  fuse_req_t Own() {
    if (interruptible_) fuse_req_interrupt_func(req_, nullptr, nullptr);
    return req_;
  }

  // libfuse's interrupt callback, called with the request's lock held.
  // Once AnswerInterrupt() has said the request is answered, the owner may
  // drop the object; its destructor waits for interrupt_mu_ until this is
  // done with it.
  static void OnInterrupt(fuse_req_t req, void* data) {
    auto* self = static_cast<LibfuseRequest*>(data);
    std::lock_guard<std::mutex> lock(self->interrupt_mu_);
    if (self->AnswerInterrupt()) fuse_reply_err(req, EINTR);
  }

  // The reply was written by now (libfuse writes on the calling thread).
  static void NoteRefusal(const KernelOpenReply& open,
                          const OpenPatchScope& patch) {
    if (open.backing_id > 0 && open.backing_refused != nullptr &&
        patch.outcome() != ReplyPatcher::Outcome::kPatched) {
      *open.backing_refused = true;
    }
  }

  static struct fuse_entry_param EntryParam(const KernelEntry& entry) {
    struct fuse_entry_param e = {};
    e.ino = entry.node;
    e.attr = entry.attr;
    e.attr_timeout = entry.attr_timeout;
    e.entry_timeout = entry.entry_timeout;
    return e;
  }
  static struct fuse_file_info FileInfo(const KernelOpenReply& open) {
    struct fuse_file_info fi = {};
    fi.fh = open.fh;
    fi.direct_io = open.direct_io;
    fi.keep_cache = open.keep_cache;
    fi.nonseekable = open.nonseekable;
    fi.noflush = open.noflush;
    fi.cache_readdir = open.cache_readdir;
    return fi;
  }

  const fuse_req_t req_;
  CallerGroups* const groups_;
  std::atomic<int64_t>* const live_;
  bool interruptible_ = false;
  // Held while an interrupt is answered; plain std::mutex, which may be
  // destroyed right after the unlock that let the destructor in.
  std::mutex interrupt_mu_;
};

KernelFile FileOf(const struct fuse_file_info* fi) {
  KernelFile f;
  f.fh = fi->fh;
  f.flags = fi->flags;
  f.lock_owner = fi->lock_owner;
  return f;
}

std::optional<uint64_t> HandleOf(const struct fuse_file_info* fi) {
  if (fi == nullptr) return std::nullopt;
  return fi->fh;
}

int SetattrFields(int to_set) {
  static constexpr std::pair<int, int> kMap[] = {
      {FUSE_SET_ATTR_MODE, kSetMode},
      {FUSE_SET_ATTR_UID, kSetUid},
      {FUSE_SET_ATTR_GID, kSetGid},
      {FUSE_SET_ATTR_SIZE, kSetSize},
      {FUSE_SET_ATTR_ATIME, kSetAtime},
      {FUSE_SET_ATTR_MTIME, kSetMtime},
      {FUSE_SET_ATTR_ATIME_NOW, kSetAtimeNow},
      {FUSE_SET_ATTR_MTIME_NOW, kSetMtimeNow},
  };
  int fields = 0;
  for (const auto& [fuse, ours] : kMap) {
    if (to_set & fuse) fields |= ours;
  }
  return fields;
}

}  // namespace

// libfuse's callbacks: each makes the request (which starts its statistics)
// and hands it to its handler with the arguments in plain types.
struct KernelSession::Ops {
  static KernelSession* Self(fuse_req_t req) {
    return static_cast<KernelSession*>(fuse_req_userdata(req));
  }
  static RequestHandlers& H(fuse_req_t req) { return Self(req)->handlers_; }

  static Request New(fuse_req_t req, KernelOp op) {
    KernelSession* self = Self(req);
    if (!self->after_init_done_.load(std::memory_order_relaxed) &&
        !self->after_init_done_.exchange(true)) {
      self->ReportPassthrough();
      if (self->options_.after_init) self->options_.after_init();
    }
    return std::make_shared<LibfuseRequest>(
        req, op, self->options_.stats, &self->groups_, &self->live_requests_);
  }

  static void Init(void* userdata, struct fuse_conn_info* conn) {
    auto* self = static_cast<KernelSession*>(userdata);
    // The kernel refuses passthrough together with the writeback cache.
    if (self->patcher_ != nullptr) {
      conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    } else if (self->options_.writeback_cache) {
      if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
        self->writeback_cache_.store(true);
      } else {
        Log("%s: the kernel offers no writeback cache: each write is a "
            "request",
            self->options_.log_name.c_str());
      }
    }
    if (self->options_.max_write != 0)
      conn->max_write = self->options_.max_write;
    // The backend resolves O_TRUNC inside open, saving a setattr round trip.
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
      conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    }
    // Every readdir with attributes, not only a directory's first chunk (the
    // kernel's "auto" mode): the daemon answers all of them from one
    // listing, and each entry it hands out spares the kernel a LOOKUP when
    // find or ls -l stats the name.
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    // Lookups and listings in one directory run side by side (the handlers
    // are thread-safe): without this the kernel takes the directory's lock
    // for each, and one slow name holds up every other name beside it.
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) {
      conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    }
    // Kernel-side lock emulation unless the backend does locking itself.
    if (!self->options_.posix_locks) conn->want &= ~FUSE_CAP_POSIX_LOCKS;
    if (!self->options_.flock_locks) conn->want &= ~FUSE_CAP_FLOCK_LOCKS;
    conn->time_gran = 1;
    // ioctl on directories too, not only on files.
    if (conn->capable & FUSE_CAP_IOCTL_DIR) conn->want |= FUSE_CAP_IOCTL_DIR;
    // The kernel fetches each inode's ACLs once and keeps them with the
    // inode (dropped when the daemon invalidates it), so permission checks
    // and `ls -l`'s ACL queries stop reaching the daemon.
    if (self->options_.posix_acl) {
      if (conn->capable & FUSE_CAP_POSIX_ACL) {
        conn->want |= FUSE_CAP_POSIX_ACL;
      } else {
        Log("%s: the kernel cannot enforce POSIX ACLs; the backend's ACLs "
            "are only stored, permissions follow the mode bits",
            self->options_.log_name.c_str());
      }
    }
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    H(req).Lookup(New(req, KernelOp::kLookup), parent, name);
  }
  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    H(req).Forget(New(req, KernelOp::kForget), {{ino, nlookup}});
  }
  static void ForgetMulti(fuse_req_t req, size_t count,
                          struct fuse_forget_data* forgets) {
    std::vector<std::pair<uint64_t, uint64_t>> list(count);
    for (size_t i = 0; i < count; ++i) {
      list[i] = {forgets[i].ino, forgets[i].nlookup};
    }
    H(req).Forget(New(req, KernelOp::kForget), list);
  }
  static void Getattr(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    H(req).Getattr(New(req, KernelOp::kGetattr), ino, HandleOf(fi));
  }
  static void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr,
                      int to_set, struct fuse_file_info* fi) {
    H(req).Setattr(New(req, KernelOp::kSetattr), ino, *attr,
                   SetattrFields(to_set), HandleOf(fi));
  }
  static void Readlink(fuse_req_t req, fuse_ino_t ino) {
    H(req).Readlink(New(req, KernelOp::kReadlink), ino);
  }
  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name,
                    mode_t mode, dev_t rdev) {
    H(req).Mknod(New(req, KernelOp::kMknod), parent, name, mode, rdev);
  }
  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name,
                    mode_t mode) {
    H(req).Mkdir(New(req, KernelOp::kMkdir), parent, name, mode);
  }
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    H(req).Unlink(New(req, KernelOp::kUnlink), parent, name);
  }
  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    H(req).Rmdir(New(req, KernelOp::kRmdir), parent, name);
  }
  static void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent,
                      const char* name) {
    H(req).Symlink(New(req, KernelOp::kSymlink), target, parent, name);
  }
  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name,
                     fuse_ino_t newparent, const char* newname,
                     unsigned int flags) {
    H(req).Rename(New(req, KernelOp::kRename), parent, name, newparent, newname,
                  flags);
  }
  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                   const char* newname) {
    H(req).Link(New(req, KernelOp::kLink), ino, newparent, newname);
  }
  static void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    H(req).Open(New(req, KernelOp::kOpen), ino, fi->flags);
  }
  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info* fi) {
    H(req).Read(New(req, KernelOp::kRead), ino, FileOf(fi), size, off);
  }
  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf,
                    size_t size, off_t off, struct fuse_file_info* fi) {
    H(req).Write(New(req, KernelOp::kWrite), ino, FileOf(fi),
                 absl::string_view(buf, size), off);
  }
  static void Flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    H(req).Flush(New(req, KernelOp::kFlush), ino, FileOf(fi));
  }
  static void Release(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    H(req).Release(New(req, KernelOp::kRelease), ino, FileOf(fi));
  }
  static void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                    struct fuse_file_info* fi) {
    H(req).Fsync(New(req, KernelOp::kFsync), ino, FileOf(fi), datasync != 0);
  }
  static void Opendir(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    H(req).Opendir(New(req, KernelOp::kOpendir), ino, fi->flags);
  }
  static void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info* fi) {
    H(req).Readdir(New(req, KernelOp::kReaddir), ino, fi->fh, size, off,
                   /*plus=*/false);
  }
  static void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off, struct fuse_file_info* fi) {
    H(req).Readdir(New(req, KernelOp::kReaddirplus), ino, fi->fh, size, off,
                   /*plus=*/true);
  }
  static void Releasedir(fuse_req_t req, fuse_ino_t,
                         struct fuse_file_info* fi) {
    H(req).Releasedir(New(req, KernelOp::kReleasedir), fi->fh);
  }
  static void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                       struct fuse_file_info* fi) {
    H(req).Fsyncdir(New(req, KernelOp::kFsyncdir), ino, fi->fh, datasync != 0);
  }
  static void Statfs(fuse_req_t req, fuse_ino_t ino) {
    H(req).Statfs(New(req, KernelOp::kStatfs), ino);
  }
  static void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                       const char* value, size_t size, int flags) {
    H(req).Setxattr(New(req, KernelOp::kSetxattr), ino, name,
                    absl::string_view(value, size), flags);
  }
  static void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                       size_t size) {
    H(req).Getxattr(New(req, KernelOp::kGetxattr), ino, name, size);
  }
  static void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    H(req).Listxattr(New(req, KernelOp::kListxattr), ino, size);
  }
  static void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    H(req).Removexattr(New(req, KernelOp::kRemovexattr), ino, name);
  }
  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    H(req).Access(New(req, KernelOp::kAccess), ino, mask);
  }
  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name,
                     mode_t mode, struct fuse_file_info* fi) {
    H(req).Create(New(req, KernelOp::kCreate), parent, name, mode, fi->flags);
  }
  static void Getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    struct flock* lock) {
    H(req).Getlk(New(req, KernelOp::kGetlk), ino, FileOf(fi), *lock);
  }
  static void Setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    struct flock* lock, int sleep) {
    H(req).Setlk(New(req, KernelOp::kSetlk), ino, FileOf(fi), *lock,
                 sleep != 0);
  }
  static void Flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    int operation) {
    H(req).Flock(New(req, KernelOp::kFlock), ino, FileOf(fi), operation);
  }
  static void Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg,
                    struct fuse_file_info* fi, unsigned flags,
                    const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
    KernelIoctl ioctl;
    ioctl.cmd = cmd;
    ioctl.arg = reinterpret_cast<uintptr_t>(arg);
    ioctl.flags = flags;
    ioctl.in = absl::string_view(static_cast<const char*>(in_buf),
                                 in_buf == nullptr ? 0 : in_bufsz);
    ioctl.out_size = out_bufsz;
    ioctl.unrestricted = (flags & FUSE_IOCTL_UNRESTRICTED) != 0;
    ioctl.directory = (flags & FUSE_IOCTL_DIR) != 0;
    H(req).Ioctl(New(req, KernelOp::kIoctl), ino, fi->fh, ioctl);
  }
  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                        off_t length, struct fuse_file_info* fi) {
    H(req).Fallocate(New(req, KernelOp::kFallocate), ino, FileOf(fi), mode,
                     offset, length);
  }
  static void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                            struct fuse_file_info* fi_in, fuse_ino_t ino_out,
                            off_t off_out, struct fuse_file_info* fi_out,
                            size_t len, int flags) {
    H(req).CopyFileRange(New(req, KernelOp::kCopyFileRange), ino_in, off_in,
                         FileOf(fi_in), ino_out, off_out, FileOf(fi_out), len,
                         flags);
  }
  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                    struct fuse_file_info* fi) {
    H(req).Lseek(New(req, KernelOp::kLseek), ino, FileOf(fi), off, whence);
  }

  static struct fuse_lowlevel_ops Table(bool posix_locks, bool flock_locks) {
    struct fuse_lowlevel_ops ops = {};
    ops.init = Init;
    ops.lookup = Lookup;
    ops.forget = Forget;
    ops.forget_multi = ForgetMulti;
    ops.getattr = Getattr;
    ops.setattr = Setattr;
    ops.readlink = Readlink;
    ops.mknod = Mknod;
    ops.mkdir = Mkdir;
    ops.unlink = Unlink;
    ops.rmdir = Rmdir;
    ops.symlink = Symlink;
    ops.rename = Rename;
    ops.link = Link;
    ops.open = Open;
    ops.read = Read;
    ops.write = Write;
    ops.flush = Flush;
    ops.release = Release;
    ops.fsync = Fsync;
    ops.opendir = Opendir;
    ops.readdir = Readdir;
    ops.readdirplus = Readdirplus;
    ops.releasedir = Releasedir;
    ops.fsyncdir = Fsyncdir;
    ops.statfs = Statfs;
    ops.setxattr = Setxattr;
    ops.getxattr = Getxattr;
    ops.listxattr = Listxattr;
    ops.removexattr = Removexattr;
    ops.access = Access;
    ops.create = Create;
    // libfuse advertises lock support exactly when these are set.
    if (posix_locks) {
      ops.getlk = Getlk;
      ops.setlk = Setlk;
    }
    if (flock_locks) ops.flock = Flock;
    ops.ioctl = Ioctl;
    ops.fallocate = Fallocate;
    ops.copy_file_range = CopyFileRange;
    ops.lseek = Lseek;
    // poll and bmap stay unset: libfuse answers ENOSYS (see the .proto).
    return ops;
  }
};

struct fuse_lowlevel_ops KernelSession::CallbackTable(bool posix_locks,
                                                      bool flock_locks) {
  return Ops::Table(posix_locks, flock_locks);
}

}  // namespace fusehost
