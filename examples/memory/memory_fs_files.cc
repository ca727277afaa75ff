// MemoryFs's operations on open files: open and create, reading and
// writing, release, fallocate, copy_file_range, lseek and ioctl.

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "examples/memory/inode.h"
#include "examples/memory/memory_fs.h"

namespace fusehost {
namespace examples {

int MemoryFs::Open(const Context& ctx, const std::string& path, FileInfo* fi) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    if (inode->IsDir() && (fi->flags & O_ACCMODE) != O_RDONLY) return EISDIR;
    if ((fi->flags & O_TRUNC) && inode->IsRegular()) {
      int rc = SetSize(*inode, 0);
      if (rc != 0) return rc;
      ClearSetIdBits(ctx, &inode->mode);
      inode->Touch(/*modified=*/true);
    }
    fi->fh = OpenHandle(inode);
    fi->noflush = true;  // writes land at once; close has nothing to do
    // Asked for a small file whole: the first read is then the daemon's.
    if (fi->contents_up_to != 0 && inode->IsRegular() &&
        (fi->flags & O_ACCMODE) == O_RDONLY &&
        inode->data.size() <= fi->contents_up_to) {
      fi->contents = inode->data;
      fi->has_contents = true;
      inode->atime = Now();  // as that read would
    }
    return 0;
  });
}

int MemoryFs::Create(const Context& ctx, const std::string& path, mode_t mode,
                     FileInfo* fi) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  int rc = MakeNode(ctx, path, S_IFREG | (mode & 07777), 0, "", &inode);
  if (rc == 0) {
    fi->fh = OpenHandle(inode);
    fi->noflush = true;
  }
  return rc;
}

int MemoryFs::Read(const Context& /*ctx*/, const std::string& path,
                   std::string* data, size_t size, off_t offset,
                   const FileInfo& fi) {
  if (offset < 0) return EINVAL;
  return WithInode(path, &fi, [&](const InodePtr& inode) {
    if (!inode->IsRegular()) return inode->NotRegularError();
    uint64_t start = static_cast<uint64_t>(offset);
    if (start < inode->data.size()) {
      data->append(inode->data, start,
                   std::min<uint64_t>(size, inode->data.size() - start));
    }
    inode->atime = Now();
    return 0;
  });
}

int MemoryFs::Write(const Context& ctx, const std::string& path,
                    const std::string& data, off_t offset, const FileInfo& fi,
                    size_t* written) {
  if (offset < 0) return EINVAL;
  return WithInode(path, &fi, [&](const InodePtr& inode) {
    if (!inode->IsRegular()) return inode->NotRegularError();
    uint64_t position = (fi.flags & O_APPEND) ? inode->data.size()
                                              : static_cast<uint64_t>(offset);
    int rc = WriteAt(*inode, data.data(), data.size(), position);
    if (rc != 0) return rc;
    *written = data.size();
    if (!data.empty()) ClearSetIdBits(ctx, &inode->mode);
    return 0;
  });
}

int MemoryFs::Release(const Context& /*ctx*/, const std::string& /*path*/,
                      const FileInfo& fi) {
  absl::MutexLock lock(&mu_);
  CloseHandle(fi.fh);
  return 0;
}

int MemoryFs::Fallocate(const Context& ctx, const std::string& path, int mode,
                        off_t offset, off_t length, const FileInfo& fi) {
  if (offset < 0 || length <= 0) return EINVAL;
  // Punching holes, zeroing and collapsing ranges are not implemented.
  if ((mode & ~FALLOC_FL_KEEP_SIZE) != 0) return EOPNOTSUPP;
  return WithInode(path, &fi, [&](const InodePtr& inode) {
    if (inode->IsDir()) return EISDIR;
    if (!inode->IsRegular()) return ENODEV;
    if (static_cast<uint64_t>(offset) > kMaxOffset - length) return EFBIG;
    uint64_t end = static_cast<uint64_t>(offset) + length;
    // Memory is not reserved ahead, so KEEP_SIZE has nothing to do.
    if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode->data.size()) {
      int rc = SetSize(*inode, end);
      if (rc != 0) return rc;
      inode->Touch(/*modified=*/true);
    }
    // As Linux: any successful fallocate counts as a change of the file.
    ClearSetIdBits(ctx, &inode->mode);
    return 0;
  });
}

int MemoryFs::CopyFileRange(const Context& ctx, const std::string& path_in,
                            const FileInfo& fi_in, off_t offset_in,
                            const std::string& path_out, const FileInfo& fi_out,
                            off_t offset_out, size_t length, int flags,
                            size_t* copied) {
  if (flags != 0 || offset_in < 0 || offset_out < 0) return EINVAL;
  absl::MutexLock lock(&mu_);
  InodePtr in, out;
  int rc = ResolveOpen(path_in, &fi_in, &in);
  if (rc == 0) rc = ResolveOpen(path_out, &fi_out, &out);
  if (rc != 0) return rc;
  if (!in->IsRegular()) return in->NotRegularError();
  if (!out->IsRegular()) return out->NotRegularError();
  uint64_t start = static_cast<uint64_t>(offset_in);
  uint64_t count = start < in->data.size()
                       ? std::min<uint64_t>(length, in->data.size() - start)
                       : 0;
  // copy_file_range(2) refuses overlapping ranges within one file.
  if (in == out && count != 0 &&
      start < static_cast<uint64_t>(offset_out) + count &&
      static_cast<uint64_t>(offset_out) < start + count) {
    return EINVAL;
  }
  if (count != 0) {
    // A copy, because growing `out` may move `in`'s bytes when they are the
    // same file.
    std::string bytes = in->data.substr(start, count);
    rc = WriteAt(*out, bytes.data(), bytes.size(),
                 static_cast<uint64_t>(offset_out));
    if (rc != 0) return rc;
    ClearSetIdBits(ctx, &out->mode);
  }
  in->atime = Now();
  *copied = count;
  return 0;
}

// The whole file is data: there are no holes to report but the one at EOF.
int MemoryFs::Lseek(const Context& /*ctx*/, const std::string& path,
                    off_t offset, int whence, const FileInfo& fi,
                    off_t* result) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return EINVAL;
  return WithInode(path, &fi, [&](const InodePtr& inode) {
    const off_t size = static_cast<off_t>(inode->data.size());
    if (offset < 0 || offset >= size) return ENXIO;
    *result = whence == SEEK_DATA ? offset : size;
    return 0;
  });
}

int MemoryFs::Ioctl(const Context& /*ctx*/, const std::string& path,
                    uint32_t cmd, uint64_t /*arg*/, const FileInfo* fi,
                    uint32_t /*flags*/, const std::string& in,
                    size_t out_size, std::string* out, int* result) {
  if (cmd != kIoctlAddOne) return ENOTTY;
  uint32_t number = 0;
  // The daemon sizes both from the command's encoding; a shorter buffer is
  // a caller's mistake, not a number.
  if (in.size() != sizeof(number) || out_size < sizeof(number)) return EINVAL;
  int rc = WithInode(path, fi, [](const InodePtr&) { return 0; });
  if (rc != 0) return rc;
  std::memcpy(&number, in.data(), sizeof(number));
  ++number;
  out->assign(reinterpret_cast<const char*>(&number), sizeof(number));
  *result = 0;
  return 0;
}

}  // namespace examples
}  // namespace fusehost
