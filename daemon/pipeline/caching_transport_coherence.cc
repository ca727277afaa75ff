// CachingTransport as the one owner of cache coherence (cache_coherence.h):
// what the kernel layer asks of the cache, and backend notices, which reach
// both caches and a hard-linked file's other names.

#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/paths.h"
#include "daemon/pipeline/caching_transport.h"

namespace fusehost {

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
  prefetcher_->Visited(path);
  std::shared_ptr<const Listing> listing = options_.cache->ShareListing(path);
  if (listing != nullptr) prefetcher_->Listed(path, *listing, caller);
}

bool CachingTransport::AwaitListing(const std::string& path,
                                    std::function<void()> then) {
  return prefetcher_ != nullptr &&
         prefetcher_->AwaitInFlight(path, std::move(then));
}

std::optional<v1::Attr> CachingTransport::CachedAttr(const std::string& path) {
  v1::Attr attr;
  if (!CachedAttrInto(path, &attr)) return std::nullopt;
  return attr;
}

std::shared_ptr<const Listing> CachingTransport::LastListing(
    const std::string& path) {
  if (options_.cache == nullptr || path.empty()) return nullptr;
  return options_.cache->ShareLastListing(path);
}

std::optional<v1::Attr> CachingTransport::LastAttr(const std::string& path) {
  v1::Attr attr;
  if (options_.cache == nullptr || path.empty() ||
      !options_.cache->GetLastAttr(path, &attr)) {
    return std::nullopt;
  }
  return attr;
}

bool CachingTransport::CachedAttrInto(const std::string& path, v1::Attr* out) {
  if (options_.cache == nullptr || path.empty()) return false;
  // GetAttr sets every field but these (a reused message may hold them).
  out->clear_xattr_names();
  out->clear_xattr_names_known();
  return options_.cache->GetAttr(path, out) == MetadataCache::AttrLookup::kHit;
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

void CachingTransport::WritesAroundDone(const std::string& path,
                                        const struct stat* backing) {
  MetadataCache* cache = options_.cache;
  if (cache == nullptr || path.empty()) return;
  cache->DropXattrs(path);
  // Kept only if no set-id bit the cache shows is gone from the backing
  // file (a write drops them there).
  v1::Attr cached;
  const bool keep =
      backing != nullptr &&
      cache->GetAttr(path, &cached) == MetadataCache::AttrLookup::kHit &&
      (cached.mode() & ~backing->st_mode & (S_ISUID | S_ISGID)) == 0;
  if (!keep || !cache->UpdateWritten(path, *backing)) cache->DropAttr(path);
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
