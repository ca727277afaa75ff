// The contract between the two caches of a mount: the kernel's (dentries,
// attributes and pages, per node) and the daemon's (MetadataCache, per
// path). One object owns the coherence of both: the CachingTransport. It
// sees every mutation's result and every backend notice, updates the
// daemon's cache, and tells the kernel what to drop through a
// KernelCacheNotifier. The kernel layer reaches the daemon's cache only
// through CacheCoherence, never around it.
//
//   kernel layer ──OpTransport──► CachingTransport ──► batcher ─► ...
//        │  ▲                        │ owns MetadataCache
//        │  └──KernelCacheNotifier───┘ (what the kernel must drop)
//        └──CacheCoherence──────────►  (listings for opendir, hard links)
//   InvalidationListener ──CacheCoherence::ApplyNotice──► CachingTransport
//
// Both interfaces are thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_CACHE_COHERENCE_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_CACHE_COHERENCE_H_

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/pipeline/listing.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// What the kernel caches, addressed by backend path. Implemented by the
// kernel layer (KernelInvalidator); calls only queue work and never block on
// the kernel, so they are safe from any thread, inside a request or not.
class KernelCacheNotifier {
 public:
  virtual ~KernelCacheNotifier() = default;
  // The attributes and data of `path`, and its name in its parent (it may
  // be gone, or exist now where the kernel cached its absence). Paths the
  // kernel does not know are skipped.
  virtual void PathChanged(const std::string& path) = 0;
  // Everything the kernel knows at or below `path`.
  virtual void SubtreeChanged(const std::string& path) = 0;
  // Directory `path`'s attributes and listing (a name in it changed).
  virtual void DirectoryChanged(const std::string& path) = 0;
  // The backend's inode number of the file the kernel knows at `path`, if
  // it is known to have several names; else 0. The daemon's cache may have
  // dropped that name, where the kernel still holds it.
  virtual uint64_t HardLinkedFileAt(const std::string& path) { return 0; }
  // The attributes and data of the file's other names (hard links, each a
  // node of its own in the kernel), if the kernel knows `path` as one.
  virtual void HardLinksChanged(const std::string& path) {}
};

// What the rest of the daemon may ask of, or tell, the daemon's cache.
class CacheCoherence {
 public:
  virtual ~CacheCoherence() = default;
  // A fresh whole listing of directory `path`, shared (an open directory
  // keeps it without copying it), or null (then the backend is asked).
  // Attributes of its entries: CachedAttr() of each child path.
  virtual std::shared_ptr<const Listing> CachedListing(
      const std::string& path) = 0;
  // The attributes the daemon's cache holds for `path`, if fresh. Never
  // asks the backend.
  virtual std::optional<v1::Attr> CachedAttr(const std::string& path) = 0;
  // What the cache last held for `path`, fresh or past its lifetime: hints
  // of what a caller may ask for next (what to fetch ahead), never answers.
  // Without an override, only fresh ones.
  virtual std::shared_ptr<const Listing> LastListing(const std::string& path) {
    return CachedListing(path);
  }
  // The attributes' ttl_ms is the time they have left (1 at least), 0 once
  // past their lifetime.
  virtual std::optional<v1::Attr> LastAttr(const std::string& path) {
    return CachedAttr(path);
  }
  // The same into *out, false on a miss: a caller that asks for many paths
  // in a row reuses one message (its time fields are messages of their own)
  // instead of building and copying one per path.
  virtual bool CachedAttrInto(const std::string& path, v1::Attr* out) {
    std::optional<v1::Attr> attr = CachedAttr(path);
    if (!attr) return false;
    *out = *std::move(attr);
    return true;
  }
  // The kernel layer learned that these names of one hard-linked file (each
  // a node of its own in the kernel) no longer show its current attributes.
  virtual void OtherNamesChanged(const std::vector<std::string>& paths) = 0;
  // The link count, contents or extended attributes of the file numbered
  // `backend_ino` changed: every name of it the daemon's cache holds, but
  // `except`, no longer shows its attributes. The kernel layer knows only the names the kernel
  // holds; the cache may hold others (the kernel forgot them), and cannot
  // always tell which file a name was (an unlink of a name whose
  // attributes it had dropped).
  virtual void NamesOfFileChanged(uint64_t backend_ino,
                                  const std::string& except) {}
  // The file at `path` was written where the daemon does not see it (a
  // passthrough open). `backing`, if known, is its backing file's fstat:
  // its size, blocks and times replace the cached ones; without it they
  // are dropped.
  virtual void WrittenAround(const std::string& path,
                             const struct stat* backing) {
    OtherNamesChanged({path});
  }
  // The same once such writes are over (the open is released or fsynced).
  // A write may also have removed what the daemon does not see change:
  // set-id bits (then the attributes are dropped all the same) and
  // security.capability (its extended attribute answers are dropped).
  virtual void WritesAroundDone(const std::string& path,
                                const struct stat* backing) {
    OtherNamesChanged({path});
  }
  // A backend notice (already validated): drops what both caches hold.
  virtual void ApplyNotice(const v1::Invalidation& notice) = 0;
  // The notice stream (re)opened: notices may have been lost while it was
  // down, so nothing cached before can be trusted.
  virtual void NoticesMayHaveBeenLost() = 0;
  // Whether DirectoryOpened does anything: the caller (whose groups are
  // looked up) is only made for it then.
  virtual bool FetchesListingsAhead() const { return false; }
  // Directory `path` was opened by `caller`: the listings of its siblings
  // fetched ahead move on, and if its own listing came from the cache, its
  // subdirectories' listings may be fetched ahead.
  virtual void DirectoryOpened(const std::string& path,
                               const v1::Caller& caller) {}
  // If `path`'s listing is being fetched ahead, runs `then` once that is
  // over and returns true (look in the cache again then); else false.
  virtual bool AwaitListing(const std::string& path,
                            std::function<void()> then) {
    return false;
  }
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_CACHE_COHERENCE_H_
