// LoopbackFs's operations on attributes: getattr, chmod, chown, truncate,
// utimens and access, and the set-user-ID and set-group-ID bits that writes
// by other users clear (see "Set-user-ID and set-group-ID bits" in the
// header).

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "examples/loopback/host_calls.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {
namespace {

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

int LoopbackFs::Getattr(const Context& ctx, const std::string& path,
                        const FileInfo* fi, struct stat* st) {
  return AtFdOrPath(
      ctx, path, fi, [&](int fd) { return ErrnoOf(fstat(fd, st)); },
      [&](int dir, const char* name) {
        return ErrnoOf(fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW));
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

int LoopbackFs::Access(const Context& ctx, const std::string& path, int mask) {
  // AT_EACCESS: without it the kernel checks the thread's real uid, not the
  // fsuid/groups CallerCredentials set.
  return AtPath(ctx, path, [&](int dir, const char* name) {
    return ErrnoOf(
        faccessat(dir, name, mask, AT_EACCESS | AT_SYMLINK_NOFOLLOW));
  });
}

}  // namespace examples
}  // namespace fusehost
