// Write-behind's early answers (write_behind.h): what the daemon replies in
// the backend's stead, from its cache and its clock, and the default-ACL
// question that lets a create be answered early.

#include "daemon/pipeline/write_behind.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>

#include "common/paths.h"

namespace fusehost {
namespace {

constexpr const char* kDefaultAcl = MetadataCache::kDefaultAclXattr;

v1::Timespec ProtoTime(absl::Time t) {
  v1::Timespec ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_sec(ns / 1000000000);
  ts.set_nsec(static_cast<uint32_t>(ns % 1000000000));
  return ts;
}

void ApplyTimeSet(const v1::TimeSet& set, const v1::Timespec& now,
                  v1::Timespec* out) {
  switch (set.kind()) {
    case v1::TimeSet::NOW:
      *out = now;
      break;
    case v1::TimeSet::SET:
      *out = set.time();
      break;
    default:
      break;
  }
}

}  // namespace

namespace {

// A file with several names: each is a node of its own in the kernel and a
// path of its own here, so a change queued under one name would not hold
// back an op under another (getattr, a write, a truncate) that must see it.
bool HasOtherNames(const v1::Attr& attr) {
  return !S_ISDIR(attr.mode()) && attr.nlink() > 1;
}

// The cached attributes of directory `dir` as a change of a name in it
// leaves them: new mtime and ctime from `now`. False if they are not
// cached.
bool ChangedDirectory(MetadataCache* cache, const std::string& dir,
                      const v1::Timespec& now, v1::Attr* attr) {
  if (cache->GetAttr(dir, attr) != MetadataCache::AttrLookup::kHit ||
      !S_ISDIR(attr->mode())) {
    return false;
  }
  *attr->mutable_mtime() = now;
  *attr->mutable_ctime() = now;
  attr->set_ttl_ms(0);
  return true;
}

}  // namespace

bool WriteBehind::AnswerCreate(const v1::Op& op, v1::OpResult* result) {
  MetadataCache* cache = options_.cache;
  const v1::CreateRequest& c = op.create();
  const std::string& path = c.path();
  // Which set-id bits survive a create is the backend's to decide.
  if (options_.handles == nullptr || path.empty() || path == "/" ||
      ((c.mode() & S_IFMT) != 0 && !S_ISREG(c.mode())) ||
      (c.mode() & (S_ISUID | S_ISGID)) != 0) {
    return false;
  }
  const std::string parent = ParentPath(path);
  const v1::Timespec now = ProtoTime(options_.now());
  v1::Attr dir;
  if (!ChangedDirectory(cache, parent, now, &dir)) return false;
  if (options_.posix_acl) {
    // No default ACL: the umask the kernel applied decides.
    int negative = 0;
    std::string value;
    const MetadataCache::AttrLookup acl =
        cache->GetXattr(parent, kDefaultAcl, &value, &negative);
    if (acl != MetadataCache::AttrLookup::kNegative || negative != ENODATA) {
      if (acl == MetadataCache::AttrLookup::kMiss)
        AskDefaultAclLaterLocked(parent);
      return false;
    }
  }
  // The name is known absent: the parent's listing is fresh (kept whole,
  // and edited by every change through the daemon) and lacks it.
  bool present = true;
  if (!cache->ListingKnows(parent, BaseName(path), &present) || present) {
    return false;
  }
  v1::Attr attr;
  // ino 0: the kernel's node id stands for it until the backend's
  // attributes replace these.
  attr.set_mode(S_IFREG | (c.mode() & 07777));
  attr.set_nlink(1);
  attr.set_uid(op.caller().uid());
  attr.set_gid((dir.mode() & S_ISGID) != 0 ? dir.gid() : op.caller().gid());
  attr.set_blksize(dir.blksize());
  *attr.mutable_atime() = now;
  *attr.mutable_mtime() = now;
  *attr.mutable_ctime() = now;
  const uint64_t token =
      options_.handles->IssueUnopened(c.flags(), op.caller());
  created_.insert(token);
  result->mutable_create()->mutable_open()->set_fh(token);
  result->mutable_create()->mutable_open()->set_noflush(options_.noflush);
  *result->mutable_create()->mutable_attr() = std::move(attr);
  *result->mutable_parent_attr() = std::move(dir);
  return true;
}

bool WriteBehind::AnswerRename(const v1::Op& op, v1::OpResult* result) {
  MetadataCache* cache = options_.cache;
  const v1::RenameRequest& r = op.rename();
  const std::string& from = r.old_path();
  const std::string& to = r.new_path();
  // RENAME_EXCHANGE and RENAME_WHITEOUT are the backend's; so is a move of
  // a name onto itself, below itself or onto a directory above it.
  if ((r.flags() & ~static_cast<uint32_t>(RENAME_NOREPLACE)) != 0 ||
      from.empty() || to.empty() || from == "/" || to == "/" || from == to ||
      IsBelow(to, from) || IsBelow(from, to)) {
    return false;
  }
  // A file of one name: a directory moves a subtree (and links), and the
  // other names of a hard-linked file would not wait for the rename.
  v1::Attr moved;
  if (cache->GetAttr(from, &moved) != MetadataCache::AttrLookup::kHit ||
      S_ISDIR(moved.mode()) || HasOtherNames(moved)) {
    return false;
  }
  // The target is known absent (its directory's fresh listing lacks it), or
  // it is a cached file of one name, which the rename replaces (a directory
  // there would make it fail, a hard link keep its other names' counts).
  bool present = true;
  if (!cache->ListingKnows(ParentPath(to), BaseName(to), &present) || present) {
    v1::Attr replaced;
    if ((r.flags() & RENAME_NOREPLACE) != 0 ||
        cache->GetAttr(to, &replaced) != MetadataCache::AttrLookup::kHit ||
        S_ISDIR(replaced.mode()) || HasOtherNames(replaced)) {
      return false;
    }
  }
  // Both directories get new times; a file moved between them changes
  // neither's link count.
  const v1::Timespec now = ProtoTime(options_.now());
  v1::Attr new_dir, old_dir;
  if (!ChangedDirectory(cache, ParentPath(to), now, &new_dir) ||
      !ChangedDirectory(cache, ParentPath(from), now, &old_dir)) {
    return false;
  }
  if (ParentPath(from) != ParentPath(to)) {
    *result->mutable_old_parent_attr() = std::move(old_dir);
  }
  *result->mutable_parent_attr() = std::move(new_dir);
  result->mutable_empty();
  return true;
}

bool WriteBehind::AnswerOnCreated(const v1::Op& op, v1::OpResult* result) {
  const uint64_t fh = op.has_write()   ? op.write().fh()
                      : op.has_flush() ? op.flush().fh()
                                       : op.release().fh();
  if (!created_.contains(fh)) return false;
  if (op.has_flush()) {
    result->mutable_empty();
    return true;
  }
  if (op.has_release()) {
    created_.erase(fh);
    result->mutable_empty();
    return true;
  }
  const v1::WriteRequest& w = op.write();
  if (deferred_bytes_ + w.data().size() > options_.max_queued_bytes) {
    return false;
  }
  // The file's size and times after the write, for the cache and the
  // kernel (a later early answer replies with them).
  v1::Attr attr;
  if (w.path().empty() ||
      options_.cache->GetAttr(w.path(), &attr) !=
          MetadataCache::AttrLookup::kHit ||
      !S_ISREG(attr.mode()) || HasOtherNames(attr) ||
      (attr.mode() & (S_ISUID | S_ISGID)) != 0) {
    return false;
  }
  const uint64_t end = w.offset() + w.data().size();
  if (end > attr.size()) attr.set_size(end);
  attr.set_blocks((attr.size() + 511) / 512);
  const v1::Timespec now = ProtoTime(options_.now());
  *attr.mutable_mtime() = now;
  *attr.mutable_ctime() = now;
  attr.set_ttl_ms(0);
  result->mutable_write()->set_size(w.data().size());
  *result->mutable_write()->mutable_attr() = std::move(attr);
  return true;
}

void WriteBehind::Created(uint64_t token, const v1::OpResult& result) {
  if (result.posix_errno() == 0 && result.has_create()) {
    options_.handles->Adopt(token, result.create().open().fh());
  } else {
    // Its writes, flushes and fsyncs fail so too; its release has nothing
    // to release.
    options_.handles->Lose(
        token, result.posix_errno() != 0 ? result.posix_errno() : EIO);
  }
}

void WriteBehind::AskDefaultAclLaterLocked(const std::string& dir) {
  if (acl_unknown_.empty() && acl_asked_.insert(dir).second) {
    acl_unknown_ = dir;
  }
}

void WriteBehind::AskDefaultAcl(const std::string& dir,
                                const v1::Caller& caller, int tries) {
  v1::Op op;
  *op.mutable_caller() = caller;
  op.mutable_getxattr()->set_path(dir);
  op.mutable_getxattr()->set_name(kDefaultAcl);
  // Kept only if nothing changed in the cache meanwhile.
  const uint64_t epoch = options_.cache->epoch();
  // Through this layer: behind any queued change of the directory.
  Send(std::move(op), [this, dir, caller, epoch,
                       tries](const v1::OpResult& result) {
    const int err = result.posix_errno();
    MetadataCache* cache = options_.cache;
    if (err == 0 && result.has_xattr()) {
      const std::string value = result.xattr().data();
      cache->PutXattr(dir, kDefaultAcl, &value, options_.acl_ttl, epoch);
    } else if (err == ENODATA) {
      cache->PutXattr(dir, kDefaultAcl, nullptr, options_.acl_ttl, epoch);
    }
    // Something else changed in the cache meanwhile (the create that asked
    // was answered, say): the answer was not kept, so ask again.
    if ((err == 0 || err == ENODATA) && cache->epoch() != epoch && tries > 1) {
      AskDefaultAcl(dir, caller, tries - 1);
      return;
    }
    absl::MutexLock lock(&mu_);
    acl_asked_.erase(dir);
  });
}

bool WriteBehind::Answer(const v1::Op& op, v1::OpResult* result) {
  MetadataCache* cache = options_.cache;
  if (cache == nullptr) return false;
  if (op.has_create()) return AnswerCreate(op, result);
  if (op.has_rename()) return AnswerRename(op, result);
  if (op.has_write() || op.has_flush() || op.has_release()) {
    return AnswerOnCreated(op, result);
  }
  const v1::Timespec now = ProtoTime(options_.now());
  if (op.has_unlink() || op.has_rmdir()) {
    const std::string& path =
        op.has_unlink() ? op.unlink().path() : op.rmdir().path();
    if (path.empty() || path == "/") return false;
    if (op.has_unlink()) {
      v1::Attr file;
      if (cache->GetAttr(path, &file) != MetadataCache::AttrLookup::kHit ||
          S_ISDIR(file.mode()) || HasOtherNames(file)) {
        return false;
      }
    } else if (!cache->ListingEmpty(path)) {
      // A directory is known empty only from its listing, whole when it
      // was fetched (or the directory made) and edited by every change
      // through the daemon since, the unlinks answered early included.
      // Without one, or with a name left in it, the backend decides
      // (ENOTEMPTY).
      return false;
    }
    v1::Attr dir;
    if (!ChangedDirectory(cache, ParentPath(path), now, &dir)) return false;
    // The removed directory's ".." no longer links to its parent, where
    // the filesystem counts those (two links and one per subdirectory).
    if (op.has_rmdir() && dir.nlink() > 2) dir.set_nlink(dir.nlink() - 1);
    *result->mutable_parent_attr() = std::move(dir);
    result->mutable_empty();
    return true;
  }
  const std::string& path = op.has_chmod()   ? op.chmod().path()
                            : op.has_chown() ? op.chown().path()
                                             : op.utimens().path();
  v1::Attr attr;
  if (path.empty() ||
      cache->GetAttr(path, &attr) != MetadataCache::AttrLookup::kHit ||
      HasOtherNames(attr)) {
    return false;
  }
  if (op.has_chmod()) {
    attr.set_mode((attr.mode() & S_IFMT) | (op.chmod().mode() & 07777));
  } else if (op.has_chown()) {
    // Which set-id bits a chown drops is the backend's to decide.
    if (!S_ISDIR(attr.mode()) && (attr.mode() & (S_ISUID | S_ISGID))) {
      return false;
    }
    if (op.chown().has_uid()) attr.set_uid(op.chown().uid());
    if (op.chown().has_gid()) attr.set_gid(op.chown().gid());
  } else {
    ApplyTimeSet(op.utimens().atime(), now, attr.mutable_atime());
    ApplyTimeSet(op.utimens().mtime(), now, attr.mutable_mtime());
  }
  *attr.mutable_ctime() = now;
  attr.set_ttl_ms(0);
  *result->mutable_entry()->mutable_attr() = std::move(attr);
  return true;
}

}  // namespace fusehost
