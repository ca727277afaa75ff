#include "daemon/pipeline/caching_transport.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <memory>
#include <utility>

#include "common/paths.h"

namespace fusehost {
namespace {

uint32_t ToMillis(absl::Duration d) {
  int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, UINT32_MAX));
}

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

// While SendAll runs on this thread: where ops the cache cannot answer are
// collected, to go on together instead of one by one.
thread_local std::vector<PendingOp>* collecting = nullptr;

}  // namespace

CachingTransport::CachingTransport(Options options)
    : options_(std::move(options)) {
  if (options_.cache != nullptr && options_.prefetch_listings > 0) {
    ListingPrefetcher::Options p;
    p.next = options_.next;
    p.cache = options_.cache;
    p.per_listing = options_.prefetch_listings;
    p.send_readdir = [this](v1::Op op, Done done) {
      SendReaddir(std::move(op), std::move(done), /*prefetched=*/true);
    };
    prefetcher_ = std::make_unique<ListingPrefetcher>(std::move(p));
  }
}

void CachingTransport::CancelAll() {
  if (prefetcher_ != nullptr) prefetcher_->Stop();
  options_.next->CancelAll();
}

absl::Duration CachingTransport::AttrTtl(const v1::Attr& attr) const {
  return attr.ttl_ms() != 0 ? absl::Milliseconds(attr.ttl_ms())
                            : options_.policy.attr_ttl;
}

void CachingTransport::Record(CacheKind kind, bool hit) {
  if (options_.stats != nullptr) options_.stats->RecordCacheLookup(kind, hit);
}

void CachingTransport::Forward(v1::Op op, Done done) {
  if (collecting != nullptr) {
    collecting->push_back(PendingOp{std::move(op), std::move(done), nullptr});
    return;
  }
  options_.next->Send(std::move(op), std::move(done));
}

void CachingTransport::SendAll(std::vector<PendingOp> ops) {
  std::vector<PendingOp> misses;
  std::vector<PendingOp>* outer = collecting;
  collecting = &misses;
  // Each op takes its usual way; hits are answered here and now.
  for (PendingOp& p : ops) Send(std::move(p.op), std::move(p.done));
  collecting = outer;
  if (!misses.empty()) options_.next->SendAll(std::move(misses));
}

void CachingTransport::Send(v1::Op op, Done done) {
  if (options_.cache == nullptr) {
    Forward(std::move(op), std::move(done));
    return;
  }
  switch (op.op_case()) {
    case v1::Op::kGetattr:
      return SendGetattr(std::move(op), std::move(done));
    case v1::Op::kReadlink:
      return SendReadlink(std::move(op), std::move(done));
    case v1::Op::kReaddir:
      return SendReaddir(std::move(op), std::move(done));
    case v1::Op::kGetxattr:
    case v1::Op::kListxattr:
      return SendXattrRead(std::move(op), std::move(done));
    case v1::Op::kMknod:
    case v1::Op::kMkdir:
    case v1::Op::kSymlink:
    case v1::Op::kLink:
    case v1::Op::kCreate:
    case v1::Op::kUnlink:
    case v1::Op::kRmdir:
    case v1::Op::kRename:
    case v1::Op::kChmod:
    case v1::Op::kChown:
    case v1::Op::kTruncate:
    case v1::Op::kUtimens:
    case v1::Op::kWrite:
    case v1::Op::kFallocate:
    case v1::Op::kCopyFileRange:
    case v1::Op::kSetxattr:
    case v1::Op::kRemovexattr:
    case v1::Op::kIoctl:  // a command may change anything about the file
      return SendMutation(std::move(op), std::move(done));
    case v1::Op::kOpen:
      if (op.open().flags() & O_TRUNC) {
        return SendMutation(std::move(op), std::move(done));
      }
      break;
    default:
      break;
  }
  Forward(std::move(op), std::move(done));
}

void CachingTransport::SendGetattr(v1::Op op, Done done) {
  MetadataCache* cache = options_.cache;
  const std::string path = op.getattr().path();
  if (path.empty()) {  // a nameless open file: nothing to key on
    Forward(std::move(op), std::move(done));
    return;
  }
  if (!op.getattr().has_fh()) {
    v1::OpResult hit;
    hit.set_id(op.id());
    switch (cache->GetAttr(path, hit.mutable_getattr()->mutable_attr())) {
      case MetadataCache::AttrLookup::kHit:
        Record(CacheKind::kAttr, true);
        done(hit);
        return;
      case MetadataCache::AttrLookup::kNegative:
        Record(CacheKind::kNegative, true);
        done(ErrorResult(op.id(), ENOENT));
        return;
      case MetadataCache::AttrLookup::kMiss:
        break;
    }
    // Not cached itself, but its directory's listing may say it is absent:
    // the common case of creating new files.
    bool present = true;
    // (A name too long to exist is the backend's to refuse: ENAMETOOLONG.)
    if (path != "/" && IsValidName(BaseName(path)) &&
        cache->ListingKnows(ParentPath(path), BaseName(path), &present) &&
        !present) {
      Record(CacheKind::kNegative, true);
      done(ErrorResult(op.id(), ENOENT));
      return;
    }
    Record(CacheKind::kAttr, false);
    if (FetchAhead(op, path, done)) return;
  }
  Forward(std::move(op), CachingGetattr(path, std::move(done)));
}

OpTransport::Done CachingTransport::CachingGetattr(const std::string& path,
                                                  Done done) {
  MetadataCache* cache = options_.cache;
  uint64_t epoch = cache->epoch();
  return [this, cache, path, epoch, done = std::move(done)](
             const v1::OpResult& result) {
    if (result.posix_errno() == ENOENT) {
      cache->PutNegative(path, options_.policy.negative_ttl, epoch);
      done(result);
      return;
    }
    if (result.posix_errno() != 0) {
      done(result);
      return;
    }
    v1::OpResult r = result;
    v1::Attr* attr = r.mutable_getattr()->mutable_attr();
    absl::Duration ttl = AttrTtl(*attr);
    attr->set_ttl_ms(ToMillis(ttl));
    cache->PutAttr(path, *attr, ttl, epoch);
    done(r);
  };
}

bool CachingTransport::FetchAhead(v1::Op& op, const std::string& path,
                                  Done& done) {
  // Ops of a SendAll go together already (readdirplus fetching ahead).
  if (collecting != nullptr || path == "/") return false;
  std::string dir = ParentPath(path);
  {
    absl::MutexLock lock(&walk_mu_);
    const bool walking = last_miss_dir_ == dir;
    last_miss_dir_ = dir;
    if (!walking) return false;  // a lone lookup fetches nothing ahead
  }
  std::vector<std::string> ahead =
      options_.cache->UncachedPathsIn(dir, BaseName(path), kFetchAhead);
  if (ahead.empty()) return false;
  std::vector<PendingOp> ops;
  ops.reserve(ahead.size() + 1);
  for (std::string& next : ahead) {
    // As the same caller, with the same deadline.
    v1::Op fetch = op;
    fetch.mutable_getattr()->set_path(next);
    ops.push_back(PendingOp{std::move(fetch),
                            CachingGetattr(next, [](const v1::OpResult&) {}),
                            nullptr});
  }
  // The asked name last: its reply lets the kernel ask for the next name,
  // which is then cached already (the backend answers a message in order).
  ops.push_back(
      PendingOp{std::move(op), CachingGetattr(path, std::move(done)), nullptr});
  options_.next->SendAll(std::move(ops));
  return true;
}

void CachingTransport::SendReadlink(v1::Op op, Done done) {
  MetadataCache* cache = options_.cache;
  const std::string path = op.readlink().path();
  if (std::optional<std::string> target = cache->GetSymlink(path)) {
    Record(CacheKind::kSymlink, true);
    v1::OpResult r;
    r.set_id(op.id());
    r.mutable_readlink()->set_target(*target);
    done(r);
    return;
  }
  Record(CacheKind::kSymlink, false);
  uint64_t epoch = cache->epoch();
  Forward(
      std::move(op), [this, cache, path, epoch, done = std::move(done)](
                         const v1::OpResult& result) {
        if (result.posix_errno() == 0) {
          uint32_t ms = result.readlink().ttl_ms();
          cache->PutSymlink(path, result.readlink().target(),
                            ms ? absl::Milliseconds(ms) : options_.policy.attr_ttl,
                            epoch);
        }
        done(result);
      });
}

void CachingTransport::SendXattrRead(v1::Op op, Done done) {
  MetadataCache* cache = options_.cache;
  const bool list = op.has_listxattr();
  const std::string path = list ? op.listxattr().path() : op.getxattr().path();
  const std::string name = list ? "" : op.getxattr().name();
  if (path.empty() || (!list && name.empty())) {
    Forward(std::move(op), std::move(done));
    return;
  }
  v1::OpResult hit;
  hit.set_id(op.id());
  int negative_errno = ENODATA;
  switch (cache->GetXattr(path, name, hit.mutable_xattr()->mutable_data(),
                          &negative_errno)) {
    case MetadataCache::AttrLookup::kHit:
      Record(CacheKind::kXattr, true);
      done(hit);
      return;
    case MetadataCache::AttrLookup::kNegative:
      Record(CacheKind::kXattr, true);
      done(ErrorResult(op.id(), negative_errno));
      return;
    case MetadataCache::AttrLookup::kMiss:
      Record(CacheKind::kXattr, false);
      break;
  }
  uint64_t epoch = cache->epoch();
  Forward(
      std::move(op), [this, cache, path, name, epoch, done = std::move(done)](
                         const v1::OpResult& result) {
        if (result.posix_errno() == 0) {
          cache->PutXattr(path, name, &result.xattr().data(),
                          options_.policy.attr_ttl, epoch);
        } else if (result.posix_errno() == ENODATA) {
          cache->PutXattr(path, name, nullptr, options_.policy.attr_ttl, epoch);
        } else if (result.posix_errno() == EOPNOTSUPP && !name.empty()) {
          cache->PutUnsupportedXattr(name, options_.policy.attr_ttl);
        }
        done(result);
      });
}

void CachingTransport::SendReaddir(v1::Op op, Done done, bool prefetched) {
  MetadataCache* cache = options_.cache;
  const std::string path = op.readdir().path();
  const bool from_start = op.readdir().offset() == 0;
  uint64_t epoch = cache->epoch();
  ListingPrefetcher* prefetcher = prefetched ? nullptr : prefetcher_.get();
  v1::Caller caller;
  if (prefetcher != nullptr) caller = op.caller();
  Forward(
      std::move(op), [this, cache, path, from_start, epoch, prefetcher,
                      caller = std::move(caller),
                      done = std::move(done)](const v1::OpResult& result) {
        if (result.posix_errno() != 0 || path.empty()) {
          done(result);
          return;
        }
        v1::OpResult r = result;
        v1::ReaddirReply* reply = r.mutable_readdir();
        bool whole = from_start && reply->eof();
        Listing listing;
        for (v1::DirEntry& e : *reply->mutable_entries()) {
          if (e.offset() != 0) whole = false;
          if (e.name() == "." || e.name() == "..") continue;
          ListingEntry le;
          le.type = e.has_attr() ? (e.attr().mode() & S_IFMT) : e.type();
          le.ino = e.has_attr() ? e.attr().ino() : 0;
          listing.emplace(e.name(), le);
          if (e.has_attr()) {
            absl::Duration ttl = AttrTtl(e.attr());
            e.mutable_attr()->set_ttl_ms(ToMillis(ttl));
            cache->PutAttr(ChildPathOf(path, e.name()), e.attr(), ttl, epoch);
          }
        }
        if (whole) {
          // Before the caller walks into the subdirectories.
          if (prefetcher != nullptr) prefetcher->Listed(path, listing, caller);
          uint32_t ms = reply->ttl_ms();
          cache->PutListing(path, std::move(listing),
                            ms ? absl::Milliseconds(ms)
                               : options_.policy.listing_ttl,
                            epoch);
        }
        done(r);
      });
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
  options_.cache->PutXattr(path, "security.capability", nullptr,
                           options_.policy.attr_ttl, options_.cache->epoch());
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
      if (ok) cache->PutNewDirectory(op.mkdir().path(), options_.policy.listing_ttl);
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
      cache->DropXattrs(op.chmod().path());
      return changed(op.chmod().path());
    case v1::Op::kChown:
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

// ---- CacheCoherence --------------------------------------------------------

std::shared_ptr<const Listing> CachingTransport::CachedListing(
    const std::string& path) {
  MetadataCache* cache = options_.cache;
  if (cache == nullptr || path.empty()) return nullptr;
  std::shared_ptr<const Listing> listing = cache->ShareListing(path);
  Record(CacheKind::kDir, listing != nullptr);
  return listing;
}

void CachingTransport::DirectoryOpened(const std::string& path,
                                       const v1::Caller& caller) {
  if (prefetcher_ == nullptr || path.empty()) return;
  std::shared_ptr<const Listing> listing = options_.cache->ShareListing(path);
  if (listing != nullptr) prefetcher_->Listed(path, *listing, caller);
}

bool CachingTransport::AwaitListing(const std::string& path,
                                    std::function<void()> then) {
  return prefetcher_ != nullptr &&
         prefetcher_->AwaitInFlight(path, std::move(then));
}

std::optional<v1::Attr> CachingTransport::CachedAttr(const std::string& path) {
  if (options_.cache == nullptr || path.empty()) return std::nullopt;
  v1::Attr attr;
  if (options_.cache->GetAttr(path, &attr) != MetadataCache::AttrLookup::kHit) {
    return std::nullopt;
  }
  return attr;
}

void CachingTransport::OtherNamesChanged(const std::vector<std::string>& paths) {
  if (options_.cache == nullptr) return;
  for (const std::string& p : paths) {
    options_.cache->DropAttr(p);
    // The change may have been an extended attribute, and a name outside
    // the cache's index of hard links (cached when the file had one name)
    // is reached only here.
    options_.cache->DropXattrs(p);
  }
}

void CachingTransport::NamesOfFileChanged(uint64_t backend_ino,
                                          const std::string& except) {
  if (options_.cache == nullptr || backend_ino == 0) return;
  UpdateLinks(backend_ino, except, nullptr);
}

void CachingTransport::WrittenAround(const std::string& path,
                                     const struct stat* backing) {
  MetadataCache* cache = options_.cache;
  if (cache == nullptr || path.empty()) return;
  // In place, under the cache's lock: a copy read, changed and stored back
  // could bring back what a concurrent change (an unlink of another name,
  // which changes the link count) dropped meanwhile.
  if (backing == nullptr || !cache->UpdateWritten(path, *backing)) {
    cache->DropAttr(path);
  }
}

void CachingTransport::ApplyNotice(const v1::Invalidation& notice) {
  const std::string& path = notice.path();
  const std::string parent = ParentPath(path);
  if (MetadataCache* cache = options_.cache) {
    // A hard-linked file changed, or lost a link, through this name: its
    // other names show the same inode. Which file it was is only known
    // before the name is dropped, from the cache or else from the kernel,
    // which may hold the name the cache dropped (after a link through it).
    uint64_t ino = 0;
    uint32_t nlink = 0;
    bool linked = cache->GetIno(path, &ino, &nlink) && nlink > 1;
    if (!linked) {
      KernelCacheNotifier* kernel = kernel_.load();
      ino = kernel != nullptr ? kernel->HardLinkedFileAt(path) : 0;
      linked = ino != 0;
    }
    if (notice.kind() == v1::Invalidation::CHANGED) {
      cache->DropAttr(path);
      cache->DropListing(path);
      cache->DropXattrs(path);  // xattr changes are reported as CHANGED too
    } else {
      cache->DropSubtree(path);
    }
    cache->DropAttr(parent);
    cache->DropListing(parent);
    if (linked) UpdateLinks(ino, path, nullptr);
  }
  KernelCacheNotifier* kernel = kernel_.load();
  if (kernel == nullptr) return;
  if (notice.kind() == v1::Invalidation::SUBTREE) {
    kernel->SubtreeChanged(path);
  } else {
    kernel->PathChanged(path);
    // The nodes of the file's other names the kernel holds, cached or not
    // in the daemon's cache (those that are were dropped above).
    kernel->HardLinksChanged(path);
  }
  // The parent's listing and times changed too.
  if (path != "/") kernel->DirectoryChanged(parent);
}

void CachingTransport::NoticesMayHaveBeenLost() {
  if (options_.cache != nullptr) options_.cache->Clear();
  if (KernelCacheNotifier* kernel = kernel_.load()) kernel->SubtreeChanged("/");
}

}  // namespace fusehost
