// CachingTransport's write side: mutations are forwarded, and their results
// keep the cache coherent (the rules are in caching_transport.h), hard links
// included.

#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/paths.h"
#include "daemon/pipeline/caching_transport.h"

namespace fusehost {
namespace {

// Errnos after which the operation may or may not have happened.
bool OutcomeUnknown(int posix_errno) {
  return posix_errno == ETIMEDOUT || posix_errno == ENOTCONN ||
         posix_errno == ECANCELED || posix_errno == EIO;
}

// The attributes a mutation's result carries, or null.
const v1::Attr* ResultAttr(const v1::OpResult& r) {
  if (r.has_entry() && r.entry().has_attr()) return &r.entry().attr();
  if (r.has_create() && r.create().has_attr()) return &r.create().attr();
  if (r.has_write() && r.write().has_attr()) return &r.write().attr();
  return nullptr;
}

}  // namespace

// A change that alters extended attribute `name` of `path` (and no other)
// where it exists: what is cached of them stays when `name` is known absent
// (the kernel asks for the ACL after each chmod, and for the capabilities
// after each chown, of a file it may have just been told about).
void CachingTransport::DropXattrsUnlessAbsent(const std::string& path,
                                              absl::string_view name) {
  std::string value;
  if (options_.cache->GetXattr(path, name, &value) !=
      MetadataCache::AttrLookup::kNegative) {
    options_.cache->DropXattrs(path);
  }
}

void CachingTransport::SendMutation(v1::Op op, Done done) {
  // What a rename or unlink replaces may be one of several hard links; its
  // inode number is only known before the name goes away.
  NamesBefore before;
  if (op.has_unlink()) {
    options_.cache->GetIno(op.unlink().path(), &before.replaced_ino,
                           &before.replaced_nlink);
  } else if (op.has_rename()) {
    options_.cache->GetIno(op.rename().new_path(), &before.replaced_ino,
                           &before.replaced_nlink);
    // Only a file with several names can be renamed onto another of its
    // names, and only if the target exists (or may).
    v1::Attr source, target;
    const auto source_known = options_.cache->GetAttr(op.rename().old_path(),
                                                      &source);
    const auto target_known = options_.cache->GetAttr(op.rename().new_path(),
                                                      &target);
    const bool source_single =
        source_known == MetadataCache::AttrLookup::kHit &&
        (S_ISDIR(source.mode()) || source.nlink() == 1);
    const bool different =
        target_known == MetadataCache::AttrLookup::kNegative ||
        (source_known == MetadataCache::AttrLookup::kHit &&
         target_known == MetadataCache::AttrLookup::kHit &&
         source.ino() != 0 && source.ino() != target.ino());
    before.maybe_same_file = !source_single && !different;
  } else if (op.has_link()) {
    options_.cache->GetIno(op.link().old_path(), &before.replaced_ino,
                           &before.replaced_nlink);
  }
  auto shared_op = std::make_shared<v1::Op>(std::move(op));
  v1::Op to_send = *shared_op;
  Forward(
      std::move(to_send),
      [this, shared_op, before,
       done = std::move(done)](const v1::OpResult& result) {
        if (result.posix_errno() == 0 || OutcomeUnknown(result.posix_errno()) ||
            result.posix_errno() == ENOENT) {
          ApplyMutation(*shared_op, result, before);
        }
        const v1::Attr* attr = ResultAttr(result);
        if (attr == nullptr || attr->ttl_ms() != 0) {
          done(result);
          return;
        }
        v1::OpResult r = result;
        v1::Attr* out = r.has_entry()    ? r.mutable_entry()->mutable_attr()
                        : r.has_create() ? r.mutable_create()->mutable_attr()
                                         : r.mutable_write()->mutable_attr();
        out->set_ttl_ms(ToMillis(AttrTtl(*attr)));
        done(r);
      });
}

void CachingTransport::NoCapabilities(const std::string& path) {
  // The kernel asks for security.capability before every write (to drop
  // file capabilities). A file just created has none: only setxattr, which
  // comes through here, can add them.
  if (options_.no_xattrs) return;
  options_.cache->PutXattr(path, "security.capability", nullptr,
                           options_.policy.attr_ttl, options_.cache->epoch());
}

void CachingTransport::NoDefaultAclIfParentHasNone(const std::string& dir) {
  // A new directory's default ACL is its parent's, inherited (POSIX ACLs),
  // or none: it can have none where the parent is known to have none (or
  // cannot have one at all). Write-behind answers a create early only in a
  // directory known to have none, and asks the backend otherwise: without
  // this, each directory an untar makes cost that question, and its first
  // create and write a round trip each (over a link with 10 ms of latency,
  // a third of a second for 20 directories).
  if (options_.no_xattrs) return;
  MetadataCache* cache = options_.cache;
  const uint64_t epoch = cache->epoch();
  std::string value;
  int negative = 0;
  if (cache->GetXattr(ParentPath(dir), MetadataCache::kDefaultAclXattr, &value,
                      &negative) != MetadataCache::AttrLookup::kNegative) {
    return;
  }
  cache->PutXattr(dir, MetadataCache::kDefaultAclXattr, nullptr,
                  options_.policy.attr_ttl, epoch, negative);
}

void CachingTransport::UpdateLinks(uint64_t ino, const std::string& except,
                                   const v1::Attr* attr) {
  MetadataCache* cache = options_.cache;
  std::vector<std::string> others = cache->PathsWithIno(ino, except);
  if (others.empty()) return;
  KernelCacheNotifier* kernel = kernel_.load();
  for (const std::string& p : others) {
    if (attr != nullptr) {
      cache->UpdateAttr(p, *attr, AttrTtl(*attr));
    } else {
      cache->DropAttr(p);
    }
    // Extended attributes are cached per name too, and a change may have
    // been one of them (setxattr, the ACL that chmod rewrites, an ioctl, a
    // backend's CHANGED notice). Other names of a file are rare enough to
    // drop theirs whatever the change was.
    cache->DropXattrs(p);
    // The kernel caches attributes per name.
    if (kernel != nullptr) kernel->PathChanged(p);
  }
}

void CachingTransport::ParentChanged(const std::string& dir,
                                     const v1::Attr& attr) {
  // An Attr with no mode is the empty default: the backend sent none.
  if (attr.mode() != 0) {
    options_.cache->UpdateAttr(dir, attr, AttrTtl(attr));
  } else {
    options_.cache->DropAttr(dir);
  }
}

void CachingTransport::ApplyMutation(const v1::Op& op,
                                     const v1::OpResult& result,
                                     const NamesBefore& before) {
  const uint64_t replaced_ino = before.replaced_ino;
  const uint32_t replaced_nlink = before.replaced_nlink;
  MetadataCache* cache = options_.cache;
  const bool ok = result.posix_errno() == 0;
  const absl::Duration negative = options_.policy.negative_ttl;
  const v1::Attr* attr = ok ? ResultAttr(result) : nullptr;
  // A new name of type `type`: its attributes (if returned), and its
  // parent's listing and times changed.
  auto created = [&](const std::string& path, uint32_t type) {
    const std::string parent = ParentPath(path);
    if (attr != nullptr) {
      cache->UpdateAttr(path, *attr, AttrTtl(*attr));
    } else {
      cache->DropAttr(path);
    }
    if (ok) {
      ListingEntry entry;
      entry.type = attr != nullptr ? (attr->mode() & S_IFMT) : (type & S_IFMT);
      entry.ino = attr != nullptr ? attr->ino() : 0;
      cache->ListingAdd(parent, BaseName(path), entry);
    } else {
      cache->DropListing(parent);
    }
    ParentChanged(parent, result.parent_attr());
  };
  // A name went away (or may have).
  auto removed = [&](const std::string& path) {
    const std::string parent = ParentPath(path);
    if (ok) {
      cache->MarkRemoved(path, negative);
      cache->ListingRemove(parent, BaseName(path));
    } else {
      cache->DropSubtree(path);
      cache->DropListing(parent);
    }
    ParentChanged(parent, result.parent_attr());
  };
  // Attributes of an existing file changed.
  auto changed = [&](const std::string& path) {
    if (path.empty()) return;
    if (attr != nullptr) {
      cache->UpdateAttr(path, *attr, AttrTtl(*attr));
      if (attr->nlink() > 1) UpdateLinks(attr->ino(), path, attr);
      return;
    }
    uint64_t ino = 0;
    uint32_t nlink = 0;
    bool known = cache->GetIno(path, &ino, &nlink);
    cache->DropAttr(path);
    if (known && nlink > 1) UpdateLinks(ino, path, nullptr);
  };

  switch (op.op_case()) {
    case v1::Op::kMknod:
      created(op.mknod().path(), op.mknod().mode());
      if (ok) NoCapabilities(op.mknod().path());
      return;
    case v1::Op::kMkdir:
      created(op.mkdir().path(), S_IFDIR);
      if (ok) {
        cache->PutNewDirectory(op.mkdir().path(), options_.policy.listing_ttl);
        NoDefaultAclIfParentHasNone(op.mkdir().path());
      }
      return;
    case v1::Op::kSymlink:
      return created(op.symlink().path(), S_IFLNK);
    case v1::Op::kCreate:
      created(op.create().path(), S_IFREG);
      if (ok) NoCapabilities(op.create().path());
      return;
    case v1::Op::kLink:
      created(op.link().new_path(), 0);
      // The link count of every name of the file changed. The new name's
      // attributes say which file it is, where the old name may no longer
      // be cached.
      if (attr != nullptr && attr->ino() != 0) {
        UpdateLinks(attr->ino(), op.link().new_path(), attr);
      } else if (replaced_ino != 0) {
        UpdateLinks(replaced_ino, op.link().new_path(), attr);
      }
      // The old name's attributes go. Its extended attribute answers too:
      // cached while the file had one name, it is outside the cache's index
      // of hard links, where a later change through the new name would not
      // find them.
      cache->DropAttr(op.link().old_path());
      cache->DropXattrs(op.link().old_path());
      return;
    case v1::Op::kUnlink:
      removed(op.unlink().path());
      if (replaced_nlink > 1) UpdateLinks(replaced_ino, "", nullptr);
      return;
    case v1::Op::kRmdir:
      return removed(op.rmdir().path());
    case v1::Op::kRename: {
      const std::string& from = op.rename().old_path();
      const std::string& to = op.rename().new_path();
      if (ok) {
        bool exchange = op.rename().flags() & RENAME_EXCHANGE;
        cache->Rename(from, to, exchange);
        // A rename onto another name of the same file changes nothing
        // (rename(2) succeeds and both names stay). Each name is a node of
        // its own in the kernel, so the kernel cannot tell: `from` is
        // remembered as absent only when it cannot be such a rename.
        if (!exchange && !before.maybe_same_file &&
            negative > absl::ZeroDuration()) {
          cache->MarkRemoved(from, negative);
        } else if (!exchange) {
          cache->DropSubtree(from);
        }
      } else {
        cache->DropSubtree(from);
        cache->DropSubtree(to);
      }
      // The renamed file's ctime changed; with an exchange, so did the
      // other file's, now at `from`.
      cache->DropAttr(to);
      if (!ok || (op.rename().flags() & RENAME_EXCHANGE)) cache->DropAttr(from);
      for (const std::string& p : {from, to}) cache->DropListing(ParentPath(p));
      if (ParentPath(from) != ParentPath(to)) {
        ParentChanged(ParentPath(from), result.old_parent_attr());
      }
      ParentChanged(ParentPath(to), result.parent_attr());
      if (replaced_nlink > 1) UpdateLinks(replaced_ino, "", nullptr);
      return;
    }
    case v1::Op::kChmod:
      // The access ACL mirrors the mode bits.
      DropXattrsUnlessAbsent(op.chmod().path(), "system.posix_acl_access");
      return changed(op.chmod().path());
    case v1::Op::kChown:
      // A change of owner removes a file's capabilities.
      DropXattrsUnlessAbsent(op.chown().path(), "security.capability");
      return changed(op.chown().path());
    case v1::Op::kTruncate:
      return changed(op.truncate().path());
    case v1::Op::kUtimens:
      return changed(op.utimens().path());
    case v1::Op::kWrite:
      return changed(op.write().path());
    case v1::Op::kFallocate:
      return changed(op.fallocate().path());
    case v1::Op::kCopyFileRange:
      return changed(op.copy_file_range().path_out());
    case v1::Op::kIoctl:
      cache->DropXattrs(op.ioctl().path());
      return changed(op.ioctl().path());
    case v1::Op::kSetxattr:
      if (ok) cache->XattrSupported(op.setxattr().name());
      cache->DropXattrs(op.setxattr().path());
      return changed(op.setxattr().path());
    case v1::Op::kRemovexattr:
      cache->DropXattrs(op.removexattr().path());
      return changed(op.removexattr().path());
    case v1::Op::kOpen:
      return changed(op.open().path());
    default:
      return;
  }
}

}  // namespace fusehost
