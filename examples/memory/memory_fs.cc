// MemoryFs's construction, its inode table (path resolution, making and
// dropping inodes, sizes, handles, attributes; used by the operations in
// memory_fs_*.cc), init and statfs.

#include "examples/memory/memory_fs.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "examples/memory/inode.h"

namespace fusehost {
namespace examples {

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

InitResult MemoryFs::Init(const MountInfo& /*mount*/) {
  InitResult result;
  result.default_ttl_ms = options_.cache_ttl_ms;
  result.ioctl = true;
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

}  // namespace examples
}  // namespace fusehost
