// MemoryFs's operations on attributes: getattr, chmod and chown with the
// POSIX ownership rules, truncate, utimens, and extended attributes.

#include <sys/xattr.h>

#include <cerrno>
#include <string>

#include "examples/memory/inode.h"
#include "examples/memory/memory_fs.h"

namespace fusehost {
namespace examples {
namespace {

// Largest extended attribute value Linux accepts (XATTR_SIZE_MAX).
constexpr size_t kXattrValueMax = 65536;
constexpr mode_t kSetIdBits = S_ISUID | S_ISGID;

}  // namespace

int MemoryFs::Getattr(const Context& /*ctx*/, const std::string& path,
                      const FileInfo* fi, struct stat* st) {
  return WithInode(path, fi, [&](const InodePtr& inode) {
    FillStat(*inode, st);
    return 0;
  });
}

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

}  // namespace examples
}  // namespace fusehost
