// LoopbackFs's operations on open files: open and create, reading and
// writing, flush, release and fsync, flock, fallocate, copy_file_range and
// lseek. Each open file is a host descriptor in the handle table.

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "common/paths.h"
#include "examples/loopback/host_calls.h"

namespace fusehost {
namespace examples {
namespace {

// open(2) flags for the host file, from the application's. Adds O_NOFOLLOW:
// the kernel resolved symlinks before asking, so a symlink here was swapped
// in on the host, and following it could leave the root. Drops O_DIRECT: it
// demands aligned buffers, which the SDK's strings are not (pread would fail
// with EINVAL), and the FUSE kernel module already sends the application's
// O_DIRECT I/O straight here, past its page cache.
int HostOpenFlags(int flags) {
  return (flags & ~O_DIRECT) | O_CLOEXEC | O_NOFOLLOW;
}

// Only regular files can back a passthrough open (fuse-hostd refuses
// others).
bool IsRegularFile(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// Files up to this size go whole with their read-only open, unless the
// daemon names its own bound (FileInfo::contents_up_to).
constexpr off_t kWholeFileMax = 64 << 10;

// Puts a small regular file whole into its open reply (FileInfo::contents),
// so that the kernel's first read costs no round trip. Nothing if it is
// larger, or grew while being read.
void ReadWhole(int fd, FileInfo* fi) {
  const off_t limit = fi->contents_up_to != 0
                          ? static_cast<off_t>(std::min<uint64_t>(
                                fi->contents_up_to, kWholeFileMax))
                          : kWholeFileMax;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > limit) {
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

}  // namespace

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
      // With passthrough the kernel reads the file itself: contents sent
      // ahead would go unused.
      const bool passes_through = passthrough_ && fi->passthrough_offered;
      if ((flags & O_ACCMODE) == O_RDONLY && !passes_through) {
        ReadWhole(fd, fi);
      }
      fi->fh = handles_.Add(fd);
      if (passthrough_ && IsRegularFile(fd)) {
        fi->passthrough_fd = fd;
        WritingThrough(ctx, path, flags, fi->fh);
      }
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
      if (passthrough_ && IsRegularFile(fd)) {
        fi->passthrough_fd = fd;
        WritingThrough(ctx, path, flags, fi->fh);
      }
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

void LoopbackFs::WritingThrough(const Context& ctx, const std::string& path,
                                int flags, uint64_t fh) {
  if (own_changes_ == nullptr || (flags & O_ACCMODE) == O_RDONLY) return;
  auto scope =
      std::make_unique<OwnChanges::Scope>(*own_changes_, ctx.mount_id,
                                          std::initializer_list<std::string>{path});
  absl::MutexLock lock(&writing_mu_);
  writing_[fh] = std::move(scope);
}

int LoopbackFs::Release(const Context& /*ctx*/, const std::string& /*path*/,
                        const FileInfo& fi) {
  std::unique_ptr<OwnChanges::Scope> writes;  // recorded once closed
  {
    absl::MutexLock lock(&writing_mu_);
    auto it = writing_.find(fi.fh);
    if (it != writing_.end()) {
      writes = std::move(it->second);
      writing_.erase(it);
    }
  }
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
