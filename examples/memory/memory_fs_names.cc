// MemoryFs's operations on names and directories: making, removing,
// renaming and linking entries, symlinks, listing directories, and access.

#include <fcntl.h>
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "examples/memory/inode.h"
#include "examples/memory/memory_fs.h"

namespace fusehost {
namespace examples {
namespace {

// Whether `descendant` names something inside directory `ancestor`.
bool IsInside(const std::string& descendant, const std::string& ancestor) {
  return descendant.size() > ancestor.size() &&
         descendant.compare(0, ancestor.size(), ancestor) == 0 &&
         descendant[ancestor.size()] == '/';
}

}  // namespace

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

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
