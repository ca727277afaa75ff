#include "daemon/pipeline/caching_transport.h"

// The read side: answers from the cache, and what fills it. Mutations are in
// caching_transport_mutations.cc, the CacheCoherence side in
// caching_transport_coherence.cc.

#include <fcntl.h>

#include <cerrno>
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "common/paths.h"

namespace fusehost {
namespace {

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
    p.max_in_flight = options_.prefetch_in_flight;
    p.lists_by_path = options_.lists_by_path;
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

uint32_t CachingTransport::ToMillis(absl::Duration d) {
  int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, UINT32_MAX));
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
        walk_.Hit(path);
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
  MetadataCache* cache = options_.cache;
  const LookupWalk::Ahead how =
      walk_.Miss(path, [cache](absl::string_view dir, absl::string_view from,
                               absl::string_view to) {
        return cache->ListingDistance(dir, from, to, kWidestStride);
      });
  if (!how.fetch) return false;  // a lone lookup fetches nothing ahead
  std::vector<std::string> ahead = cache->UncachedPathsIn(
      ParentPath(path), BaseName(path), kFetchAhead, how.step);
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
        // Passed on as it came: an attribute without a lifetime of its own
        // gets the mount's, here (AttrTtl) as in the kernel layer, so the
        // listing need not be copied to say so.
        const v1::ReaddirReply& reply = result.readdir();
        bool whole = from_start && reply.eof();
        Listing listing;
        std::vector<std::string> subdirs;  // in the order the caller gets them
        for (const v1::DirEntry& e : reply.entries()) {
          if (e.offset() != 0) whole = false;
          if (e.name() == "." || e.name() == "..") continue;
          ListingEntry le;
          le.type = e.has_attr() ? (e.attr().mode() & S_IFMT) : e.type();
          le.ino = e.has_attr() ? e.attr().ino() : 0;
          listing.emplace(e.name(), le);
          if (prefetcher != nullptr && le.type == S_IFDIR) {
            subdirs.push_back(e.name());
          }
          if (e.has_attr()) {
            cache->PutAttr(ChildPathOf(path, e.name()), e.attr(),
                           AttrTtl(e.attr()), epoch);
          }
        }
        if (whole) {
          // Before the caller walks into the subdirectories.
          if (prefetcher != nullptr) prefetcher->Listed(path, subdirs, caller);
          uint32_t ms = reply.ttl_ms();
          cache->PutListing(path, std::move(listing),
                            ms ? absl::Milliseconds(ms)
                               : options_.policy.listing_ttl,
                            epoch);
        }
        done(result);
      });
}

}  // namespace fusehost
