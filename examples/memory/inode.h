// MemoryFs's inode, and what the files implementing MemoryFs
// (memory_fs*.cc) share: limits, the clock, the caller's privileges and the
// set-id rules, and WithInode. Private to //examples/memory:memory_fs_lib.

#ifndef FUSE_HOSTD_EXAMPLES_MEMORY_INODE_H_
#define FUSE_HOSTD_EXAMPLES_MEMORY_INODE_H_

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>

#include "examples/memory/memory_fs.h"

namespace fusehost {
namespace examples {

// Longest name of a directory entry or an extended attribute (NAME_MAX,
// XATTR_NAME_MAX).
constexpr size_t kNameMax = 255;
constexpr uint32_t kBlockSize = 4096;
constexpr uint64_t kMaxOffset = std::numeric_limits<off_t>::max();

inline struct timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

inline bool IsRoot(const Context& ctx) { return ctx.uid == 0; }

// What a write, truncate, fallocate or chown by `ctx` does to a file's
// set-id bits, as Linux and POSIX do for callers without CAP_FSETID:
// S_ISUID goes, and S_ISGID of a group-executable file (without S_IXGRP it
// marks mandatory locking, not privilege). Root keeps them. The kernel asks
// for it too, by a chmod before a write, but not before every change (not
// before an O_TRUNC open, nor when its cached mode lacks the bits).
inline void ClearSetIdBits(const Context& ctx, mode_t* mode) {
  if (IsRoot(ctx)) return;
  *mode &= ~S_ISUID;
  if (*mode & S_IXGRP) *mode &= ~S_ISGID;
}

inline bool InGroup(const Context& ctx, gid_t gid) {
  return ctx.gid == gid || std::find(ctx.groups.begin(), ctx.groups.end(),
                                     gid) != ctx.groups.end();
}

struct MemoryFs::Inode {
  bool IsDir() const { return S_ISDIR(mode); }
  bool IsRegular() const { return S_ISREG(mode); }

  // The errno for reading or writing contents of a file that is not regular.
  int NotRegularError() const { return IsDir() ? EISDIR : EINVAL; }

  void Touch(bool modified) {
    struct timespec now = Now();
    ctime = now;
    if (modified) mtime = now;
  }

  uint64_t ino = 0;
  mode_t mode = 0;
  // Directory entries naming this inode. A directory has at most one; its
  // st_nlink also counts "." and its subdirectories' "..".
  uint32_t links = 0;
  // Handles from Open/Create/Opendir not yet released.
  int open_count = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t rdev = 0;
  struct timespec atime = {};
  struct timespec mtime = {};
  struct timespec ctime = {};
  // Contents of a regular file (holes are zeros) or a symlink's target.
  std::string data;
  // Entries of a directory. std::less<> allows lookups by string_view.
  std::map<std::string, InodePtr, std::less<>> children;
  std::map<std::string, std::string> xattrs;
};

template <typename Fn>
int MemoryFs::WithInode(const std::string& path, const FileInfo* fi, Fn fn) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  int rc = ResolveOpen(path, fi, &inode);
  return rc != 0 ? rc : fn(inode);
}

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_MEMORY_INODE_H_
