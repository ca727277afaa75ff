#include "examples/loopback/loopback_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/paths.h"
#include "examples/loopback/caller_credentials.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {
namespace {

// The errno of a failed syscall (result < 0), else 0. Called right after the
// syscall, before any other call can overwrite errno.
int ErrnoOf(long result) { return result < 0 ? errno : 0; }

bool HasNul(absl::string_view s) {
  return s.find('\0') != absl::string_view::npos;
}

// Turns a path from the daemon ("/a/b") into one relative to the root
// ("a/b"; "." for "/"). The daemon sends canonical paths; anything else
// (".." above all, which could climb out of the root) is refused rather
// than interpreted.
int RelativePath(const std::string& path, std::string* rel) {
  // Empty means the file has no name any more; only handle-based calls may
  // see it.
  if (path.empty()) return ENOENT;
  if (path[0] != '/' || HasNul(path)) return EINVAL;
  if (path.size() == 1) {
    *rel = ".";
    return 0;
  }
  absl::string_view rest = absl::string_view(path).substr(1);
  for (absl::string_view component : absl::StrSplit(rest, '/')) {
    if (component.empty() || component == "." || component == "..") {
      return EINVAL;
    }
  }
  *rel = std::string(rest);
  return 0;
}

// open(2) flags for the host file, from the application's. Adds O_NOFOLLOW:
// the kernel resolved symlinks before asking, so a symlink here was swapped
// in on the host, and following it could leave the root. Drops O_DIRECT: it
// demands aligned buffers, which the SDK's strings are not (pread would fail
// with EINVAL), and the FUSE kernel module already sends the application's
// O_DIRECT I/O straight here, past its page cache.
int HostOpenFlags(int flags) {
  return (flags & ~O_DIRECT) | O_CLOEXEC | O_NOFOLLOW;
}

// Gives the calling thread a umask of its own and sets it to 0: the modes
// the daemon sends already have the caller's umask applied. Unsharing again
// on a thread that already has its own is a cheap no-op in the kernel.
void ClearThreadUmask() {
  if (unshare(CLONE_FS) == 0) umask(0);
}

// Runs `fetch(buffer, size)`, which behaves like getxattr/listxattr, first
// to learn the size and then to fill a buffer of it. Retries when the value
// grew in between (ERANGE). Appends the result to *out.
int FetchSized(absl::FunctionRef<ssize_t(char*, size_t)> fetch,
               std::string* out) {
  for (;;) {
    ssize_t size = fetch(nullptr, 0);
    if (size < 0) return errno;
    std::string buffer(static_cast<size_t>(size), '\0');
    ssize_t got = fetch(buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == ERANGE) continue;
      return errno;
    }
    out->append(buffer.data(), static_cast<size_t>(got));
    return 0;
  }
}

// The extended attribute names of `path` (not following a final symlink),
// or false if they cannot be listed. One llistxattr(2) for the usual file
// with few or no names.
bool ListXattrNames(const std::string& path, std::vector<std::string>* names) {
  char small[1024];
  std::string list;
  ssize_t got = llistxattr(path.c_str(), small, sizeof(small));
  if (got >= 0) {
    list.assign(small, static_cast<size_t>(got));
  } else if (errno != ERANGE || FetchSized(
                                    [&](char* buffer, size_t size) {
                                      return llistxattr(path.c_str(), buffer,
                                                        size);
                                    },
                                    &list) != 0) {
    return false;
  }
  for (absl::string_view name : absl::StrSplit(list, '\0', absl::SkipEmpty())) {
    names->emplace_back(name);
  }
  return true;
}

// Whether closing a descriptor of the filesystem holding `fd` does nothing
// beyond the close itself: true for local filesystems without a flush
// method, where Flush's close of a duplicate can report no error. Network
// filesystems (NFS, CIFS, FUSE) write back or release remote locks there.
bool FlushIsNoOp(int fd) {
  struct statfs st;
  if (fstatfs(fd, &st) != 0) return false;
  switch (static_cast<unsigned long>(st.f_type)) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

// Files up to this size go whole with their read-only open.
constexpr off_t kWholeFileMax = 64 << 10;

// Puts a small regular file whole into its open reply (FileInfo::contents),
// so that the kernel's first read costs no round trip. Nothing if it is
// larger, or grew while being read.
void ReadWhole(int fd, FileInfo* fi) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > kWholeFileMax) {
    return;
  }
  // One byte more than the size: reading it means the file grew.
  std::string data(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = pread(fd, &data[got], data.size() - got,
                      static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // e.g. O_DIRECT alignment: the reads will tell
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == data.size()) return;
  data.resize(got);
  fi->contents = std::move(data);
  fi->has_contents = true;
}

// The set-id bits of a file of mode `mode` that a write, truncate or
// fallocate by a caller without CAP_FSETID clears, as Linux and POSIX do:
// S_ISUID, and S_ISGID when the file is group-executable (without S_IXGRP
// the bit marks mandatory locking, not a privilege).
mode_t SetIdBitsClearedByWrites(mode_t mode) {
  const mode_t bits = (mode & S_IXGRP) ? (S_ISUID | S_ISGID) : S_ISUID;
  return mode & bits;
}

struct timespec ToKernelTime(const TimeSpec& t) {
  struct timespec ts = t.time;
  if (t.omit) {
    ts.tv_nsec = UTIME_OMIT;
  } else if (t.now) {
    ts.tv_nsec = UTIME_NOW;
  }
  return ts;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopbackFs>> LoopbackFs::New(
    const Options& options) {
  int root_fd = open(options.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot open directory ", options.root));
  }
  const bool act_as_caller =
      options.act_as_caller && CallerCredentials::ProcessCanSwitch();
  std::unique_ptr<LoopbackFs> fs(
      new LoopbackFs(root_fd, act_as_caller, Openat2Works(root_fd),
                     options.forward_flock, FlushIsNoOp(root_fd)));
  if (options.watch) {
    TreeWatcher::Options watch;
    // The directory root_fd refers to, even if the path changed meanwhile.
    watch.root = ProcFdPath(root_fd);
    LoopbackFs* self = fs.get();
    fs->own_changes_ = std::make_unique<OwnChanges>(root_fd);
    watch.sink = [self](const std::vector<TreeChange>& changes) {
      self->Announce(changes);
    };
    absl::StatusOr<std::unique_ptr<TreeWatcher>> watcher =
        TreeWatcher::Start(std::move(watch));
    if (!watcher.ok()) {
      return absl::Status(
          watcher.status().code(),
          absl::StrCat("cannot watch ", options.root,
                       " for changes: ", watcher.status().message()));
    }
    fs->watcher_ = *std::move(watcher);
  }
  return fs;
}

LoopbackFs::LoopbackFs(int root_fd, bool act_as_caller, bool have_openat2,
                       bool forward_flock, bool flush_is_no_op)
    : root_fd_(root_fd),
      act_as_caller_(act_as_caller),
      forward_flock_(forward_flock),
      have_openat2_(have_openat2),
      flush_is_no_op_(flush_is_no_op) {}

LoopbackFs::~LoopbackFs() {
  // Its thread calls Announce until stopped.
  watcher_.reset();
  close(root_fd_);
}

void LoopbackFs::Announce(const std::vector<TreeChange>& changes) {
  for (const TreeChange& change : changes) {
    // A change one mount's operation made is news to the other mounts only.
    const std::optional<uint64_t> own = own_changes_->ExplainedBy(change.path);
    switch (change.kind) {
      case TreeChange::Kind::kChanged:
        own ? NotifyChangedExcept(*own, change.path)
            : NotifyChanged(change.path);
        break;
      case TreeChange::Kind::kRemoved:
        own ? NotifyRemovedExcept(*own, change.path)
            : NotifyRemoved(change.path);
        break;
      case TreeChange::Kind::kSubtree:
        own ? NotifySubtreeChangedExcept(*own, change.path)
            : NotifySubtreeChanged(change.path);
        break;
    }
  }
}

int LoopbackFs::Changed(const Context& ctx,
                        std::initializer_list<std::string> paths,
                        absl::FunctionRef<int()> change) {
  if (own_changes_ == nullptr) return change();
  OwnChanges::Scope scope(*own_changes_, ctx.mount_id, paths);
  return change();
}

// Owns the parent's descriptor unless it is the root's.
class LoopbackFs::Parent {
 public:
  Parent() = default;
  ~Parent() {
    if (owned_) close(fd_);
  }
  Parent(const Parent&) = delete;
  Parent& operator=(const Parent&) = delete;

  int fd() const { return fd_; }
  const char* name() const { return name_.c_str(); }

 private:
  friend class LoopbackFs;
  int fd_ = -1;
  bool owned_ = false;
  std::string name_;
};

int LoopbackFs::ResolveParent(const std::string& path, Parent* out) const {
  std::string rel;
  if (int err = RelativePath(path, &rel)) return err;
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) {
    out->fd_ = root_fd_;
    out->name_ = std::move(rel);
    return 0;
  }
  const int fd = OpenBeneath(root_fd_, rel.substr(0, slash),
                             O_PATH | O_DIRECTORY | O_CLOEXEC, have_openat2_);
  if (fd < 0) return errno;
  out->fd_ = fd;
  out->owned_ = true;
  out->name_ = rel.substr(slash + 1);
  return 0;
}

int LoopbackFs::AtPath(const Context& ctx, const std::string& path, AtOp op) {
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  // Resolved as the caller: search permission on the way down is theirs too.
  Parent at;
  if (int err = ResolveParent(path, &at)) return err;
  return op(at.fd(), at.name());
}

int LoopbackFs::AtPaths(
    const Context& ctx, const std::string& from, const std::string& to,
    absl::FunctionRef<int(int, const char*, int, const char*)> op) {
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  Parent from_at;
  if (int err = ResolveParent(from, &from_at)) return err;
  Parent to_at;
  if (int err = ResolveParent(to, &to_at)) return err;
  return op(from_at.fd(), from_at.name(), to_at.fd(), to_at.name());
}

int LoopbackFs::AtFd(const Context& ctx, const FileInfo& fi, FdOp op) {
  const HandleTable::Ref file = handles_.Find(fi.fh);
  if (file == nullptr) return EBADF;
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  return op(file->get());
}

int LoopbackFs::AtFdOrPath(const Context& ctx, const std::string& path,
                           const FileInfo* fi, FdOp fd_op, AtOp at_op) {
  return fi != nullptr ? AtFd(ctx, *fi, fd_op) : AtPath(ctx, path, at_op);
}

void LoopbackFs::ClearSetIdBits(const Context& ctx, int fd) const {
  // As the caller, the host kernel already cleared them: the thread lost
  // CAP_FSETID with its fsuid. As this process, it judged this process's
  // privilege instead, which a root backend has.
  if (act_as_caller_ || ctx.uid == 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  const mode_t bits = SetIdBitsClearedByWrites(st.st_mode);
  // Through /proc: `fd` may be an O_PATH descriptor, which fchmod refuses.
  // A failure leaves the bits as the host kernel left them; the write
  // itself happened and is not undone.
  if (bits != 0) chmod(ProcFdPath(fd).c_str(), (st.st_mode & 07777) & ~bits);
}

int LoopbackFs::DropSetIdBits(const Context& ctx, const std::string& path,
                              mode_t mode, const FileInfo* fi) {
  // The file, found as the caller, and whether the caller may write it: a
  // handle open for writing, or write permission as access(2) judges it.
  bool may_write = false;
  int file = -1;
  const int err = AtFdOrPath(
      ctx, path, fi,
      [&](int fd) {
        const int flags = fcntl(fd, F_GETFL);
        may_write = flags >= 0 && (flags & O_ACCMODE) != O_RDONLY;
        file = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        return file < 0 ? errno : 0;
      },
      [&](int dir, const char* name) {
        may_write =
            faccessat(dir, name, W_OK, AT_EACCESS | AT_SYMLINK_NOFOLLOW) == 0;
        file = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        return file < 0 ? errno : 0;
      });
  if (err != 0) return err;
  const ScopedFd owned(file);
  struct stat st;
  if (!may_write || fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
    return EPERM;
  }
  const mode_t have = st.st_mode & 07777;
  const mode_t want = mode & 07777;
  // Nothing added, and nothing taken but bits a write by the caller clears.
  const bool only_drops =
      (want & ~have) == 0 &&
      ((have & ~want) & ~SetIdBitsClearedByWrites(have)) == 0;
  if (!only_drops) return EPERM;
  // Already gone (the kernel's idea of the mode was older): nothing to do.
  if (want == have) return 0;
  // As this process: the caller is not the owner, whom chmod(2) demands.
  return ErrnoOf(chmod(ProcFdPath(file).c_str(), want));
}

InitResult LoopbackFs::Init(const MountInfo& /*mount*/) {
  InitResult result;
  result.flock_locks = forward_flock_;
  result.posix_locks = false;
  // Changes made on the host are pushed as invalidations when watching, so
  // metadata may be cached long; without watching, fuse-hostd's 1 s default.
  if (watcher_ != nullptr) result.default_ttl_ms = 60000;
  return result;
}

int LoopbackFs::Getattr(const Context& ctx, const std::string& path,
                        const FileInfo* fi, struct stat* st) {
  return AtFdOrPath(
      ctx, path, fi, [&](int fd) { return ErrnoOf(fstat(fd, st)); },
      [&](int dir, const char* name) {
        return ErrnoOf(fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW));
      });
}

int LoopbackFs::Readlink(const Context& ctx, const std::string& path,
                         std::string* target) {
  return AtPath(ctx, path, [&](int dir, const char* name) {
    char buffer[PATH_MAX];
    ssize_t n = readlinkat(dir, name, buffer, sizeof(buffer));
    if (n < 0) return errno;
    target->assign(buffer, static_cast<size_t>(n));
    return 0;
  });
}

int LoopbackFs::Mknod(const Context& ctx, const std::string& path, mode_t mode,
                      dev_t rdev) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      ClearThreadUmask();
      return ErrnoOf(mknodat(dir, name, mode, rdev));
    });
  });
}

int LoopbackFs::Mkdir(const Context& ctx, const std::string& path,
                      mode_t mode) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      ClearThreadUmask();
      return ErrnoOf(mkdirat(dir, name, mode));
    });
  });
}

int LoopbackFs::Unlink(const Context& ctx, const std::string& path) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(unlinkat(dir, name, 0));
    });
  });
}

int LoopbackFs::Rmdir(const Context& ctx, const std::string& path) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(unlinkat(dir, name, AT_REMOVEDIR));
    });
  });
}

int LoopbackFs::Symlink(const Context& ctx, const std::string& target,
                        const std::string& path) {
  if (HasNul(target)) return EINVAL;
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(symlinkat(target.c_str(), dir, name));
    });
  });
}

int LoopbackFs::Rename(const Context& ctx, const std::string& from,
                       const std::string& to, unsigned int flags) {
  // Flags go to the kernel unchanged: it answers EINVAL for those the
  // underlying filesystem cannot honour, as the protocol asks.
  return Changed(ctx, {from, ParentPath(from), to, ParentPath(to)}, [&] {
    return AtPaths(ctx, from, to,
                   [&](int from_dir, const char* from_name, int to_dir,
                       const char* to_name) {
                     return ErrnoOf(syscall(SYS_renameat2, from_dir, from_name,
                                            to_dir, to_name, flags));
                   });
  });
}

int LoopbackFs::Link(const Context& ctx, const std::string& from,
                     const std::string& to) {
  // No AT_SYMLINK_FOLLOW: link(2) on Linux links a symlink itself.
  return Changed(ctx, {from, to, ParentPath(to)}, [&] {
    return AtPaths(
        ctx, from, to,
        [&](int from_dir, const char* from_name, int to_dir,
            const char* to_name) {
          return ErrnoOf(linkat(from_dir, from_name, to_dir, to_name, 0));
        });
  });
}

int LoopbackFs::Chmod(const Context& ctx, const std::string& path, mode_t mode,
                      const FileInfo* fi) {
  return Changed(ctx, {path}, [&] {
    const int err = AtFdOrPath(
        ctx, path, fi, [&](int fd) { return ErrnoOf(fchmod(fd, mode)); },
        [&](int dir, const char* name) {
          // Linux cannot chmod a symlink itself: EOPNOTSUPP for one.
          return ErrnoOf(fchmodat(dir, name, mode, AT_SYMLINK_NOFOLLOW));
        });
    // Before a write or truncate by a caller without CAP_FSETID, the kernel
    // clears the file's set-id bits with this very request, in the name of
    // that caller, who need not own the file. Refused, the write would fail
    // and the bits stay (the mount leaves killpriv to the filesystem).
    return err == EPERM ? DropSetIdBits(ctx, path, mode, fi) : err;
  });
}

int LoopbackFs::Chown(const Context& ctx, const std::string& path, uid_t uid,
                      gid_t gid, const FileInfo* fi) {
  return Changed(ctx, {path}, [&] {
    return AtFdOrPath(
        ctx, path, fi, [&](int fd) { return ErrnoOf(fchown(fd, uid, gid)); },
        [&](int dir, const char* name) {
          return ErrnoOf(fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW));
        });
  });
}

int LoopbackFs::Truncate(const Context& ctx, const std::string& path,
                         off_t size, const FileInfo* fi) {
  return Changed(ctx, {path}, [&] {
    return AtFdOrPath(
        ctx, path, fi,
        [&](int fd) {
          if (ftruncate(fd, size) != 0) return errno;
          ClearSetIdBits(ctx, fd);
          return 0;
        },
        [&](int dir, const char* name) {
          // There is no truncateat(). Opening for writing would block on a
          // FIFO and has side effects on devices; truncate(2) through an
          // O_PATH descriptor checks the caller's write permission as
          // truncate(2) does, and cannot follow a symlink swapped in.
          ScopedFd file(openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
          if (file.get() < 0) return errno;
          if (truncate(ProcFdPath(file.get()).c_str(), size) != 0) {
            return errno;
          }
          ClearSetIdBits(ctx, file.get());
          return 0;
        });
  });
}

int LoopbackFs::Utimens(const Context& ctx, const std::string& path,
                        const TimeSpec& atime, const TimeSpec& mtime,
                        const FileInfo* fi) {
  const struct timespec times[2] = {ToKernelTime(atime), ToKernelTime(mtime)};
  return Changed(ctx, {path}, [&] {
    return AtFdOrPath(
        ctx, path, fi, [&](int fd) { return ErrnoOf(futimens(fd, times)); },
        [&](int dir, const char* name) {
          return ErrnoOf(utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW));
        });
  });
}

int LoopbackFs::Open(const Context& ctx, const std::string& path,
                     FileInfo* fi) {
  // O_CREAT and O_EXCL never belong here: creation goes through Create.
  const int flags = HostOpenFlags(fi->flags & ~(O_CREAT | O_EXCL));
  auto open = [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      int fd = openat(dir, name, flags);
      if (fd < 0) return errno;
      if (flags & O_TRUNC) ClearSetIdBits(ctx, fd);
      // Flush closes a duplicate, which for a read-only descriptor does
      // nothing (no write-back to report, and POSIX locks are the kernel's).
      fi->noflush = flush_is_no_op_ || (flags & O_ACCMODE) == O_RDONLY;
      if ((flags & O_ACCMODE) == O_RDONLY) ReadWhole(fd, fi);
      fi->fh = handles_.Add(fd);
      return 0;
    });
  };
  // O_TRUNC changes the file.
  return (fi->flags & O_TRUNC) ? Changed(ctx, {path}, open) : open();
}

int LoopbackFs::Create(const Context& ctx, const std::string& path, mode_t mode,
                       FileInfo* fi) {
  // O_EXCL only when the application asked for it: the kernel sends create
  // whenever it believes the name absent, and an entry created on the host
  // meanwhile must then simply be opened, as open(O_CREAT) would.
  const int flags = HostOpenFlags(fi->flags | O_CREAT);
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      ClearThreadUmask();
      int fd = openat(dir, name, flags, mode & 07777);
      if (fd < 0) return errno;
      // The name may have existed (see above), and O_TRUNC emptied it.
      if (flags & O_TRUNC) ClearSetIdBits(ctx, fd);
      fi->fh = handles_.Add(fd);
      fi->noflush = flush_is_no_op_;
      return 0;
    });
  });
}

int LoopbackFs::Read(const Context& ctx, const std::string& /*path*/,
                     std::string* data, size_t size, off_t offset,
                     const FileInfo& fi) {
  return AtFd(ctx, fi, [&](int fd) {
    const size_t start = data->size();
    data->resize(start + size);
    size_t done = 0;
    // A short read means end of file to the kernel, so keep reading until
    // the file says so.
    while (done < size) {
      ssize_t n = pread(fd, &(*data)[start + done], size - done,
                        offset + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        data->resize(start);
        return err;
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    data->resize(start + done);
    return 0;
  });
}

int LoopbackFs::Write(const Context& ctx, const std::string& path,
                      const std::string& data, off_t offset, const FileInfo& fi,
                      size_t* written) {
  // As the caller: a write by a user without CAP_FSETID clears the file's
  // setuid/setgid bits, which a root backend would otherwise keep (and
  // ClearSetIdBits does where the write runs as this process).
  return Changed(ctx, {path}, [&] {
    return AtFd(ctx, fi, [&](int fd) {
      size_t done = 0;
      // On an O_APPEND descriptor Linux's pwrite appends and ignores the
      // offset, which is what the application asked for.
      while (done < data.size()) {
        ssize_t n = pwrite(fd, data.data() + done, data.size() - done,
                           offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          if (done > 0) break;  // report the partial write, as write(2) does
          return errno;
        }
        done += static_cast<size_t>(n);
      }
      *written = done;
      if (done > 0) ClearSetIdBits(ctx, fd);
      return 0;
    });
  });
}

int LoopbackFs::Statfs(const Context& /*ctx*/, const std::string& /*path*/,
                       struct statvfs* st) {
  return ErrnoOf(fstatvfs(root_fd_, st));
}

int LoopbackFs::Flush(const Context& ctx, const std::string& /*path*/,
                      const FileInfo& fi) {
  // close(2) of one of the application's descriptors: closing a duplicate
  // reports the errors close would (e.g. NFS write-back) and keeps ours.
  return AtFd(ctx, fi, [&](int fd) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return errno;
    return ErrnoOf(close(copy));
  });
}

int LoopbackFs::Release(const Context& /*ctx*/, const std::string& /*path*/,
                        const FileInfo& fi) {
  // The descriptor is closed once no operation uses it any more. Errors of
  // that close are lost, as the kernel ignores release's anyway; Flush
  // reports them for every close(2) that wants them.
  return handles_.Remove(fi.fh) ? 0 : EBADF;
}

int LoopbackFs::Fsync(const Context& ctx, const std::string& /*path*/,
                      bool datasync, const FileInfo& fi) {
  return AtFd(ctx, fi, [&](int fd) {
    return ErrnoOf(datasync ? fdatasync(fd) : fsync(fd));
  });
}

// Extended attributes have no *at() syscalls; the l*xattr calls on the
// directory descriptor's /proc path act on the last component itself, so a
// symlink's own attributes (trusted.*, security.*) are reachable and nothing
// is followed.
int LoopbackFs::Setxattr(const Context& ctx, const std::string& path,
                         const std::string& name, const std::string& value,
                         int flags) {
  if (HasNul(name)) return EINVAL;
  return Changed(ctx, {path}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* file) {
      return ErrnoOf(lsetxattr(ProcFdPath(dir, file).c_str(), name.c_str(),
                               value.data(), value.size(), flags));
    });
  });
}

int LoopbackFs::Getxattr(const Context& ctx, const std::string& path,
                         const std::string& name, std::string* value) {
  if (HasNul(name)) return EINVAL;
  return AtPath(ctx, path, [&](int dir, const char* file) {
    const std::string at = ProcFdPath(dir, file);
    value->clear();
    return FetchSized(
        [&](char* buffer, size_t size) {
          return lgetxattr(at.c_str(), name.c_str(), buffer, size);
        },
        value);
  });
}

int LoopbackFs::Listxattr(const Context& ctx, const std::string& path,
                          std::string* list) {
  return AtPath(ctx, path, [&](int dir, const char* file) {
    const std::string at = ProcFdPath(dir, file);
    return FetchSized(
        [&](char* buffer, size_t size) {
          return llistxattr(at.c_str(), buffer, size);
        },
        list);
  });
}

int LoopbackFs::Removexattr(const Context& ctx, const std::string& path,
                            const std::string& name) {
  if (HasNul(name)) return EINVAL;
  return Changed(ctx, {path}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* file) {
      return ErrnoOf(lremovexattr(ProcFdPath(dir, file).c_str(), name.c_str()));
    });
  });
}

int LoopbackFs::Opendir(const Context& ctx, const std::string& path,
                        FileInfo* fi) {
  // As opendir(3): read permission is checked now, as the caller, and the
  // handle stays readable even if the mode changes later.
  return AtPath(ctx, path, [&](int dir, const char* name) {
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno;
    fi->fh = handles_.Add(fd);
    return 0;
  });
}

int LoopbackFs::Readdir(const Context& ctx, const std::string& /*path*/,
                        off_t offset, const FileInfo& fi,
                        std::vector<DirEntry>* entries, bool* eof) {
  *eof = true;
  // Every entry is handed out with offset 0, so a non-zero cookie can only
  // mean "after the end".
  if (offset != 0) return 0;
  return AtFd(ctx, fi, [&](int fd) {
    std::vector<RawEntry> raw;
    {
      absl::MutexLock lock(&dir_read_mu_[fi.fh % dir_read_mu_.size()]);
      if (int err = ReadAllEntries(fd, &raw)) return err;
    }
    entries->reserve(entries->size() + raw.size());
    for (RawEntry& r : raw) {
      DirEntry entry;
      if (fstatat(fd, r.name.c_str(), &entry.st, AT_SYMLINK_NOFOLLOW) == 0) {
        entry.has_attr = true;
        entry.xattr_names_known =
            ListXattrNames(ProcFdPath(fd, r.name.c_str()), &entry.xattr_names);
      } else if (errno == ENOENT) {
        continue;  // removed since the directory was read
      } else {
        // E.g. a directory the caller may read but not search: names and
        // types only, as ls shows them.
        entry.st = {};
        entry.st.st_mode = DTTOIF(r.type);
      }
      entry.name = std::move(r.name);
      entries->push_back(std::move(entry));
    }
    return 0;
  });
}

int LoopbackFs::Releasedir(const Context& ctx, const std::string& path,
                           const FileInfo& fi) {
  return Release(ctx, path, fi);
}

int LoopbackFs::Fsyncdir(const Context& ctx, const std::string& path,
                         bool datasync, const FileInfo& fi) {
  return Fsync(ctx, path, datasync, fi);
}

int LoopbackFs::Access(const Context& ctx, const std::string& path, int mask) {
  // AT_EACCESS: without it the kernel checks the thread's real uid, not the
  // fsuid/groups CallerCredentials set.
  return AtPath(ctx, path, [&](int dir, const char* name) {
    return ErrnoOf(
        faccessat(dir, name, mask, AT_EACCESS | AT_SYMLINK_NOFOLLOW));
  });
}

int LoopbackFs::Flock(const Context& ctx, const std::string& /*path*/,
                      const FileInfo& fi, int op) {
  return AtFd(ctx, fi, [&](int fd) { return ErrnoOf(flock(fd, op)); });
}

int LoopbackFs::Fallocate(const Context& ctx, const std::string& path, int mode,
                          off_t offset, off_t length, const FileInfo& fi) {
  return Changed(ctx, {path}, [&] {
    return AtFd(ctx, fi, [&](int fd) {
      if (fallocate(fd, mode, offset, length) != 0) return errno;
      ClearSetIdBits(ctx, fd);
      return 0;
    });
  });
}

int LoopbackFs::CopyFileRange(const Context& ctx,
                              const std::string& /*path_in*/,
                              const FileInfo& fi_in, off_t offset_in,
                              const std::string& path_out,
                              const FileInfo& fi_out, off_t offset_out,
                              size_t length, int flags, size_t* copied) {
  const HandleTable::Ref out_file = handles_.Find(fi_out.fh);
  if (out_file == nullptr) return EBADF;
  return Changed(ctx, {path_out}, [&] {
    return AtFd(ctx, fi_in, [&](int in_fd) {
      loff_t in = offset_in;
      loff_t out = offset_out;
      ssize_t n = copy_file_range(in_fd, &in, out_file->get(), &out, length,
                                  static_cast<unsigned int>(flags));
      if (n < 0) return errno;
      *copied = static_cast<size_t>(n);
      if (n > 0) ClearSetIdBits(ctx, out_file->get());
      return 0;
    });
  });
}

int LoopbackFs::Lseek(const Context& ctx, const std::string& /*path*/,
                      off_t offset, int whence, const FileInfo& fi,
                      off_t* result) {
  return AtFd(ctx, fi, [&](int fd) {
    off_t at = lseek(fd, offset, whence);
    if (at < 0) return errno;
    *result = at;
    return 0;
  });
}

}  // namespace examples
}  // namespace fusehost
