#include "examples/memory/memory_fs.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <map>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fusehost {
namespace examples {
namespace {

// Longest name of a directory entry or an extended attribute (NAME_MAX,
// XATTR_NAME_MAX).
constexpr size_t kNameMax = 255;
// Largest extended attribute value Linux accepts (XATTR_SIZE_MAX).
constexpr size_t kXattrValueMax = 65536;
constexpr uint32_t kBlockSize = 4096;
constexpr mode_t kSetIdBits = S_ISUID | S_ISGID;
constexpr uint64_t kMaxOffset = std::numeric_limits<off_t>::max();

struct timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

bool IsRoot(const Context& ctx) { return ctx.uid == 0; }

// What a write, truncate, fallocate or chown by `ctx` does to a file's
// set-id bits, as Linux and POSIX do for callers without CAP_FSETID:
// S_ISUID goes, and S_ISGID of a group-executable file (without S_IXGRP it
// marks mandatory locking, not privilege). Root keeps them. The kernel asks
// for it too, by a chmod before a write, but not before every change (not
// before an O_TRUNC open, nor when its cached mode lacks the bits).
void ClearSetIdBits(const Context& ctx, mode_t* mode) {
  if (IsRoot(ctx)) return;
  *mode &= ~S_ISUID;
  if (*mode & S_IXGRP) *mode &= ~S_ISGID;
}

bool InGroup(const Context& ctx, gid_t gid) {
  return ctx.gid == gid || std::find(ctx.groups.begin(), ctx.groups.end(),
                                     gid) != ctx.groups.end();
}

// Whether `descendant` names something inside directory `ancestor`.
bool IsInside(const std::string& descendant, const std::string& ancestor) {
  return descendant.size() > ancestor.size() &&
         descendant.compare(0, ancestor.size(), ancestor) == 0 &&
         descendant[ancestor.size()] == '/';
}

}  // namespace

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

MemoryFs::MemoryFs(const Options& options) : options_(options) {
  absl::MutexLock lock(&mu_);
  root_ = std::make_shared<Inode>();
  root_->ino = next_ino_++;
  root_->mode = S_IFDIR | (options.root_mode & 07777);
  root_->links = 1;
  root_->uid = options.root_uid;
  root_->gid = options.root_gid;
  root_->atime = root_->mtime = root_->ctime = Now();
  used_inodes_ = 1;
}

MemoryFs::~MemoryFs() = default;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

template <typename Fn>
int MemoryFs::WithInode(const std::string& path, const FileInfo* fi, Fn fn) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  int rc = ResolveOpen(path, fi, &inode);
  return rc != 0 ? rc : fn(inode);
}

InitResult MemoryFs::Init(const MountInfo& /*mount*/) {
  InitResult result;
  result.default_ttl_ms = options_.cache_ttl_ms;
  return result;
}

int MemoryFs::Resolve(const std::string& path, InodePtr* out) {
  // An empty path is an unlinked open file; without its handle it is gone.
  if (path.empty() || path[0] != '/') return ENOENT;
  InodePtr node = root_;
  for (absl::string_view name : absl::StrSplit(
           absl::string_view(path).substr(1), '/', absl::SkipEmpty())) {
    if (name.size() > kNameMax) return ENAMETOOLONG;
    if (!node->IsDir()) return ENOTDIR;
    auto it = node->children.find(name);
    if (it == node->children.end()) return ENOENT;
    node = it->second;
  }
  *out = std::move(node);
  return 0;
}

int MemoryFs::ResolveParent(const std::string& path, InodePtr* parent,
                            std::string* name) {
  if (path.empty() || path[0] != '/') return ENOENT;
  size_t slash = path.rfind('/');
  *name = path.substr(slash + 1);
  // The root has no parent to take it away from or put it into.
  if (name->empty()) return EBUSY;
  if (name->size() > kNameMax) return ENAMETOOLONG;
  int rc = Resolve(slash == 0 ? "/" : path.substr(0, slash), parent);
  if (rc != 0) return rc;
  return (*parent)->IsDir() ? 0 : ENOTDIR;
}

int MemoryFs::ResolveOpen(const std::string& path, const FileInfo* fi,
                          InodePtr* out) {
  if (fi == nullptr) return Resolve(path, out);
  // A handle this filesystem did not give out, or released already: falling
  // back to the path would let a stale handle reach whatever file has that
  // name now.
  auto it = handles_.find(fi->fh);
  if (it == handles_.end()) return EBADF;
  *out = it->second;
  return 0;
}

int MemoryFs::MakeNode(const Context& ctx, const std::string& path, mode_t mode,
                       dev_t rdev, const std::string& symlink_target,
                       InodePtr* out) {
  InodePtr parent;
  std::string name;
  int rc = ResolveParent(path, &parent, &name);
  if (rc == EBUSY) return EEXIST;  // the root exists
  if (rc != 0) return rc;
  if (parent->children.count(name) != 0) return EEXIST;
  if (used_inodes_ >= options_.max_inodes ||
      symlink_target.size() > options_.capacity_bytes - used_bytes_) {
    return ENOSPC;
  }
  auto inode = std::make_shared<Inode>();
  inode->ino = next_ino_++;
  inode->mode = mode;
  inode->links = 1;
  inode->uid = ctx.uid;
  // BSD group semantics under a setgid directory, as Linux does: the group
  // is inherited, and so is the setgid bit by subdirectories.
  if (parent->mode & S_ISGID) {
    inode->gid = parent->gid;
    if (inode->IsDir()) inode->mode |= S_ISGID;
  } else {
    inode->gid = ctx.gid;
  }
  if (S_ISCHR(mode) || S_ISBLK(mode)) inode->rdev = rdev;
  inode->data = symlink_target;
  inode->atime = inode->mtime = inode->ctime = Now();
  used_bytes_ += symlink_target.size();
  ++used_inodes_;
  parent->children.emplace(std::move(name), inode);
  parent->Touch(/*modified=*/true);
  *out = std::move(inode);
  return 0;
}

void MemoryFs::DropLink(const InodePtr& inode) {
  --inode->links;
  inode->Touch(/*modified=*/false);
  ReleaseIfUnused(*inode);
}

void MemoryFs::ReleaseIfUnused(Inode& inode) {
  if (inode.links != 0 || inode.open_count != 0) return;
  // Reached once per inode: without a name or a handle nothing can reach it
  // again, so neither count can rise afterwards.
  used_bytes_ -= inode.data.size();
  --used_inodes_;
  std::string().swap(inode.data);
}

int MemoryFs::SetSize(Inode& inode, uint64_t size) {
  uint64_t old_size = inode.data.size();
  if (size > old_size) {
    if (size > options_.capacity_bytes) return EFBIG;
    if (size - old_size > options_.capacity_bytes - used_bytes_) return ENOSPC;
  }
  inode.data.resize(size);  // zero fill: the hole reads as zeros
  used_bytes_ = used_bytes_ - old_size + size;
  return 0;
}

int MemoryFs::WriteAt(Inode& inode, const char* bytes, size_t length,
                      uint64_t offset) {
  if (offset > kMaxOffset - length) return EFBIG;
  uint64_t end = offset + length;
  if (end > inode.data.size()) {
    int rc = SetSize(inode, end);
    if (rc != 0) return rc;
  }
  if (length != 0) std::memcpy(&inode.data[offset], bytes, length);
  inode.Touch(/*modified=*/true);
  return 0;
}

uint64_t MemoryFs::OpenHandle(const InodePtr& inode) {
  uint64_t fh = next_handle_++;
  handles_.emplace(fh, inode);
  ++inode->open_count;
  return fh;
}

void MemoryFs::CloseHandle(uint64_t fh) {
  auto it = handles_.find(fh);
  if (it == handles_.end()) return;
  InodePtr inode = std::move(it->second);
  handles_.erase(it);
  --inode->open_count;
  ReleaseIfUnused(*inode);
}

void MemoryFs::FillStat(const Inode& inode, struct stat* st) const {
  *st = {};
  st->st_ino = inode.ino;
  st->st_mode = inode.mode;
  if (inode.IsDir()) {
    nlink_t subdirs = 0;
    for (const auto& entry : inode.children) {
      if (entry.second->IsDir()) ++subdirs;
    }
    st->st_nlink = inode.links == 0 ? 0 : 2 + subdirs;
    st->st_size = kBlockSize;
  } else {
    st->st_nlink = inode.links;
    st->st_size = static_cast<off_t>(inode.data.size());
  }
  st->st_uid = inode.uid;
  st->st_gid = inode.gid;
  st->st_rdev = inode.rdev;
  st->st_blksize = kBlockSize;
  st->st_blocks = (st->st_size + 511) / 512;
  st->st_atim = inode.atime;
  st->st_mtim = inode.mtime;
  st->st_ctim = inode.ctime;
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

int MemoryFs::Getattr(const Context& /*ctx*/, const std::string& path,
                      const FileInfo* fi, struct stat* st) {
  return WithInode(path, fi, [&](const InodePtr& inode) {
    FillStat(*inode, st);
    return 0;
  });
}

int MemoryFs::Readlink(const Context& /*ctx*/, const std::string& path,
                       std::string* target) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    if (!S_ISLNK(inode->mode)) return EINVAL;
    *target = inode->data;
    return 0;
  });
}

int MemoryFs::Mknod(const Context& ctx, const std::string& path, mode_t mode,
                    dev_t rdev) {
  mode_t type = mode & S_IFMT;
  switch (type) {
    case 0:  // mknod(2): a zero type means a regular file
      type = S_IFREG;
      break;
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      break;
    case S_IFDIR:  // what Linux answers; directories come from mkdir
      return EPERM;
    default:
      return EINVAL;
  }
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  return MakeNode(ctx, path, type | (mode & 07777), rdev, "", &inode);
}

int MemoryFs::Mkdir(const Context& ctx, const std::string& path, mode_t mode) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  return MakeNode(ctx, path, S_IFDIR | (mode & 07777), 0, "", &inode);
}

int MemoryFs::Symlink(const Context& ctx, const std::string& target,
                      const std::string& path) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  return MakeNode(ctx, path, S_IFLNK | 0777, 0, target, &inode);
}

int MemoryFs::Unlink(const Context& /*ctx*/, const std::string& path) {
  return RemoveName(path, /*directory=*/false);
}

int MemoryFs::Rmdir(const Context& /*ctx*/, const std::string& path) {
  return RemoveName(path, /*directory=*/true);
}

int MemoryFs::RemoveName(const std::string& path, bool directory) {
  absl::MutexLock lock(&mu_);
  InodePtr parent;
  std::string name;
  int rc = ResolveParent(path, &parent, &name);
  if (rc != 0) return rc;
  auto it = parent->children.find(name);
  if (it == parent->children.end()) return ENOENT;
  const Inode& victim = *it->second;
  if (victim.IsDir() != directory) return directory ? ENOTDIR : EISDIR;
  if (directory && !victim.children.empty()) return ENOTEMPTY;
  InodePtr inode = std::move(it->second);
  parent->children.erase(it);
  parent->Touch(/*modified=*/true);
  DropLink(inode);
  return 0;
}

// The checks run in the order Linux's renameat2 runs them, so that a request
// with several problems gets the errno a local filesystem would give.
int MemoryFs::Rename(const Context& /*ctx*/, const std::string& from,
                     const std::string& to, unsigned int flags) {
  const unsigned int kKnownFlags = RENAME_NOREPLACE | RENAME_EXCHANGE;
  if ((flags & ~kKnownFlags) != 0 || flags == kKnownFlags) return EINVAL;
  const bool exchange = flags & RENAME_EXCHANGE;

  absl::MutexLock lock(&mu_);
  InodePtr old_parent, new_parent;
  std::string old_name, new_name;
  int rc = ResolveParent(from, &old_parent, &old_name);
  if (rc == 0) rc = ResolveParent(to, &new_parent, &new_name);
  if (rc != 0) return rc;
  auto old_it = old_parent->children.find(old_name);
  if (old_it == old_parent->children.end()) return ENOENT;
  auto new_it = new_parent->children.find(new_name);
  const bool target_exists = new_it != new_parent->children.end();
  if (exchange && !target_exists) return ENOENT;
  if ((flags & RENAME_NOREPLACE) && target_exists) return EEXIST;
  // A directory cannot move below itself; nor, when exchanging, above.
  if (IsInside(to, from)) return EINVAL;
  if (IsInside(from, to)) return exchange ? EINVAL : ENOTEMPTY;

  InodePtr source = old_it->second;
  InodePtr target = target_exists ? new_it->second : nullptr;
  if (source == target) return 0;  // two names of one file: nothing to do
  if (exchange) {
    std::swap(old_it->second, new_it->second);
    source->Touch(/*modified=*/false);
    target->Touch(/*modified=*/false);
  } else {
    if (target != nullptr) {
      if (source->IsDir() && !target->IsDir()) return ENOTDIR;
      if (!source->IsDir() && target->IsDir()) return EISDIR;
      if (target->IsDir() && !target->children.empty()) return ENOTEMPTY;
    }
    // Erase before insert: the two entries may be in the same map.
    old_parent->children.erase(old_it);
    new_parent->children[new_name] = source;
    if (target != nullptr) DropLink(target);
    source->Touch(/*modified=*/false);
  }
  old_parent->Touch(/*modified=*/true);
  new_parent->Touch(/*modified=*/true);
  return 0;
}

int MemoryFs::Link(const Context& /*ctx*/, const std::string& from,
                   const std::string& to) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  int rc = Resolve(from, &inode);
  if (rc != 0) return rc;
  if (inode->IsDir()) return EPERM;
  InodePtr parent;
  std::string name;
  rc = ResolveParent(to, &parent, &name);
  if (rc == EBUSY) return EEXIST;
  if (rc != 0) return rc;
  if (parent->children.count(name) != 0) return EEXIST;
  parent->children.emplace(std::move(name), inode);
  parent->Touch(/*modified=*/true);
  ++inode->links;
  inode->Touch(/*modified=*/false);
  return 0;
}

// ---------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------

int MemoryFs::Chmod(const Context& ctx, const std::string& path, mode_t mode,
                    const FileInfo* fi) {
  return WithInode(path, fi, [&](const InodePtr& inode) {
    const mode_t old_perms = inode->mode & 07777;
    mode_t perms = mode & 07777;
    if (!IsRoot(ctx) && ctx.uid != inode->uid) {
      // A non-owner may only drop set-id bits: the kernel asks for exactly
      // that, in the name of whoever writes or truncates such a file, when the
      // mount does not handle killpriv itself.
      bool drops_set_id_only = perms != old_perms &&
                               (perms & ~old_perms) == 0 &&
                               (perms | kSetIdBits) == (old_perms | kSetIdBits);
      if (!drops_set_id_only) return EPERM;
    }
    // chmod(2): setgid is cleared when the caller is not in the file's group.
    if (!IsRoot(ctx) && !InGroup(ctx, inode->gid)) perms &= ~S_ISGID;
    inode->mode = (inode->mode & S_IFMT) | perms;
    inode->Touch(/*modified=*/false);
    return 0;
  });
}

int MemoryFs::Chown(const Context& ctx, const std::string& path, uid_t uid,
                    gid_t gid, const FileInfo* fi) {
  return WithInode(path, fi, [&](const InodePtr& inode) {
    const bool uid_given = uid != static_cast<uid_t>(-1);
    const bool gid_given = gid != static_cast<gid_t>(-1);
    if (!uid_given && !gid_given) return 0;
    if (!IsRoot(ctx)) {
      // POSIX chown(2) rules: only root gives files away; the owner may move
      // a file to a group of their own.
      if (ctx.uid != inode->uid) return EPERM;
      if (uid_given && uid != inode->uid) return EPERM;
      if (gid_given && gid != inode->gid && !InGroup(ctx, gid)) return EPERM;
    }
    if (uid_given) inode->uid = uid;
    if (gid_given) inode->gid = gid;
    if (!inode->IsDir()) ClearSetIdBits(ctx, &inode->mode);
    inode->Touch(/*modified=*/false);
    return 0;
  });
}

int MemoryFs::Truncate(const Context& ctx, const std::string& path, off_t size,
                       const FileInfo* fi) {
  if (size < 0) return EINVAL;
  return WithInode(path, fi, [&](const InodePtr& inode) {
    if (!inode->IsRegular()) return inode->NotRegularError();
    int rc = SetSize(*inode, static_cast<uint64_t>(size));
    if (rc != 0) return rc;
    ClearSetIdBits(ctx, &inode->mode);
    inode->Touch(/*modified=*/true);
    return 0;
  });
}

int MemoryFs::Utimens(const Context& ctx, const std::string& path,
                      const TimeSpec& atime, const TimeSpec& mtime,
                      const FileInfo* fi) {
  return WithInode(path, fi, [&](const InodePtr& inode) {
    if (atime.omit && mtime.omit) return 0;  // utimensat changes nothing
    // Setting "now" needs only write access (the kernel's check); setting a
    // chosen time needs ownership.
    bool explicit_time =
        (!atime.omit && !atime.now) || (!mtime.omit && !mtime.now);
    if (explicit_time && !IsRoot(ctx) && ctx.uid != inode->uid) return EPERM;
    struct timespec now = Now();
    if (!atime.omit) inode->atime = atime.now ? now : atime.time;
    if (!mtime.omit) inode->mtime = mtime.now ? now : mtime.time;
    inode->ctime = now;
    return 0;
  });
}

// ---------------------------------------------------------------------------
// Open files
// ---------------------------------------------------------------------------

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

int MemoryFs::Statfs(const Context& /*ctx*/, const std::string& /*path*/,
                     struct statvfs* st) {
  absl::MutexLock lock(&mu_);
  *st = {};
  st->f_bsize = kBlockSize;
  st->f_frsize = kBlockSize;
  st->f_blocks = options_.capacity_bytes / kBlockSize;
  st->f_bfree = (options_.capacity_bytes - used_bytes_) / kBlockSize;
  st->f_bavail = st->f_bfree;
  st->f_files = options_.max_inodes;
  st->f_ffree = options_.max_inodes - used_inodes_;
  st->f_favail = st->f_ffree;
  st->f_namemax = kNameMax;
  return 0;
}

// ---------------------------------------------------------------------------
// Extended attributes
// ---------------------------------------------------------------------------

int MemoryFs::Setxattr(const Context& /*ctx*/, const std::string& path,
                       const std::string& name, const std::string& value,
                       int flags) {
  if (name.empty() || name.size() > kNameMax) return ERANGE;
  // POSIX ACLs are not stored as plain values: they would have to change the
  // mode bits with them. EOPNOTSUPP makes tools (cp -a, tar) fall back to
  // chmod, as on a filesystem mounted without ACL support.
  if (name.rfind("system.posix_acl_", 0) == 0) return EOPNOTSUPP;
  if (value.size() > kXattrValueMax) return E2BIG;
  if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0) return EINVAL;
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    auto it = inode->xattrs.find(name);
    const bool exists = it != inode->xattrs.end();
    if ((flags & XATTR_CREATE) && exists) return EEXIST;
    if ((flags & XATTR_REPLACE) && !exists) return ENODATA;
    if (exists) {
      it->second = value;
    } else {
      inode->xattrs.emplace(name, value);
    }
    inode->Touch(/*modified=*/false);
    return 0;
  });
}

int MemoryFs::Getxattr(const Context& /*ctx*/, const std::string& path,
                       const std::string& name, std::string* value) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    auto it = inode->xattrs.find(name);
    if (it == inode->xattrs.end()) return ENODATA;
    *value = it->second;
    return 0;
  });
}

int MemoryFs::Listxattr(const Context& /*ctx*/, const std::string& path,
                        std::string* list) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    for (const auto& entry : inode->xattrs) {
      list->append(entry.first);
      list->push_back('\0');
    }
    return 0;
  });
}

int MemoryFs::Removexattr(const Context& /*ctx*/, const std::string& path,
                          const std::string& name) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    if (inode->xattrs.erase(name) == 0) return ENODATA;
    inode->Touch(/*modified=*/false);
    return 0;
  });
}

// ---------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------

int MemoryFs::Opendir(const Context& /*ctx*/, const std::string& path,
                      FileInfo* fi) {
  return WithInode(path, nullptr, [&](const InodePtr& inode) {
    if (!inode->IsDir()) return ENOTDIR;
    fi->fh = OpenHandle(inode);
    return 0;
  });
}

// Always the whole listing with full attributes (offsets 0, eof): the daemon
// pages it to the kernel and can answer `ls -l` without further requests.
int MemoryFs::Readdir(const Context& /*ctx*/, const std::string& path,
                      off_t /*offset*/, const FileInfo& fi,
                      std::vector<DirEntry>* entries, bool* eof) {
  return WithInode(path, &fi, [&](const InodePtr& dir) {
    if (!dir->IsDir()) return ENOTDIR;
    entries->reserve(entries->size() + dir->children.size());
    for (const auto& child : dir->children) {
      DirEntry entry;
      entry.name = child.first;
      FillStat(*child.second, &entry.st);
      entry.has_attr = true;
      entries->push_back(std::move(entry));
    }
    dir->atime = Now();
    *eof = true;
    return 0;
  });
}

// Directory handles live in the same table as file handles.
int MemoryFs::Releasedir(const Context& ctx, const std::string& path,
                         const FileInfo& fi) {
  return Release(ctx, path, fi);
}

// Only asked on mounts without default_permissions. Permission bits are the
// kernel's business here (see the header); existence is ours.
int MemoryFs::Access(const Context& /*ctx*/, const std::string& path,
                     int /*mask*/) {
  absl::MutexLock lock(&mu_);
  InodePtr inode;
  return Resolve(path, &inode);
}

}  // namespace examples
}  // namespace fusehost
