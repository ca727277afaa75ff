// The caching layer between the kernel adapter and the backend: answers
// getattr (and negative lookups), readlink, getxattr and listxattr from the
// MetadataCache, fills
// the cache from every reply that carries metadata (getattr, readdir with
// attributes, operations that return the new attributes), and keeps it
// coherent with every mutation that passes through it.
//
// Coherence rules, applied when a mutation's result arrives:
//   create/mknod/mkdir/symlink/link  new path: its attrs (or nothing), added
//                                    to the parent's listing; parent attrs
//                                    dropped; a new directory's listing is
//                                    known to be empty
//   unlink/rmdir                     path (and below) removed, remembered as
//                                    absent, removed from the parent's
//                                    listing; parent attrs dropped
//   rename                           subtree moved (or swapped); old name
//                                    absent; both parents dropped
//   chmod/chown/truncate/utimens     new attrs stored (or dropped)
//   write/fallocate/copy_file_range/
//   setxattr/removexattr/open+O_TRUNC attrs dropped (and extended attributes,
//                                    for setxattr/removexattr/chmod)
// Hard links: when a change affects a file with more than one link, every
// other cached path of the same inode is updated too (its extended
// attributes dropped), and the kernel is told to drop what it caches for
// those paths.
// Backend notices (ApplyNotice) drop the path in both caches, and a
// hard-linked file's other names in both.
// An operation that failed in transport (deadline, lost connection) may or
// may not have happened: everything it could have touched is dropped.
//
// Every attribute that leaves this layer carries its remaining lifetime in
// Attr.ttl_ms, which the kernel layer hands to the kernel as the entry and
// attribute timeouts, so the two caches expire together.
//
// This is the one owner of cache coherence (see cache_coherence.h). Without
// a MetadataCache (cache_entries=0) it forwards every op and only passes
// notices on to the kernel.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/cache_coherence.h"
#include "daemon/pipeline/listing_prefetcher.h"
#include "daemon/pipeline/lookup_walk.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"
#include "daemon/stats/mount_stats.h"

namespace fusehost {

// Lifetimes used when a reply sets none.
struct CachePolicy {
  absl::Duration attr_ttl = absl::Seconds(1);
  absl::Duration negative_ttl = absl::ZeroDuration();
  absl::Duration listing_ttl = absl::Seconds(1);
};

class CachingTransport : public OpTransport, public CacheCoherence {
 public:
  struct Options {
    CachePolicy policy;
    MetadataCache* cache = nullptr;  // must outlive this; null: no caching
    OpTransport* next = nullptr;     // must outlive this
    MountStats* stats = nullptr;     // may be null
    // Subdirectories of a listing whose listings are fetched ahead
    // (listing_prefetcher.h); 0: none.
    size_t prefetch_listings = 0;
    // How many of them are fetched at a time.
    size_t prefetch_in_flight = 16;
    // ListingPrefetcher::Options::lists_by_path (may be null).
    const std::atomic<bool>* lists_by_path = nullptr;
    // The backend keeps no extended attributes (InitReply.no_xattrs): the
    // kernel, answered ENOSYS above this layer, asks for none, so nothing
    // is noted of a new file's.
    bool no_xattrs = false;
  };

  explicit CachingTransport(Options options);

  // Where the kernel's side of coherence goes. Set once, before the first
  // op or notice; until then nothing is sent to the kernel.
  void AttachKernel(KernelCacheNotifier* kernel) { kernel_.store(kernel); }

  // OpTransport.
  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  void WaitIdle() override { options_.next->WaitIdle(); }

  // CacheCoherence.
  std::shared_ptr<const Listing> CachedListing(
      const std::string& path) override;
  std::optional<v1::Attr> CachedAttr(const std::string& path) override;
  std::shared_ptr<const Listing> LastListing(const std::string& path) override;
  std::optional<v1::Attr> LastAttr(const std::string& path) override;
  bool CachedAttrInto(const std::string& path, v1::Attr* out) override;
  void OtherNamesChanged(const std::vector<std::string>& paths) override;
  void NamesOfFileChanged(uint64_t backend_ino,
                          const std::string& except) override;
  void WrittenAround(const std::string& path,
                     const struct stat* backing) override;
  void WritesAroundDone(const std::string& path,
                        const struct stat* backing) override;
  void ApplyNotice(const v1::Invalidation& notice) override;
  void NoticesMayHaveBeenLost() override;
  bool FetchesListingsAhead() const override { return prefetcher_ != nullptr; }
  void DirectoryOpened(const std::string& path,
                       const v1::Caller& caller) override;
  bool AwaitListing(const std::string& path,
                    std::function<void()> then) override;

  // Listings fetched ahead so far.
  uint64_t listings_prefetched() const {
    return prefetcher_ ? prefetcher_->fetched() : 0;
  }

  const CachePolicy& policy() const { return options_.policy; }

 private:
  // Passes an op the cache could not answer to the next layer (or to the
  // group SendAll is gathering).
  void Forward(v1::Op op, Done done);
  void SendGetattr(v1::Op op, Done done);
  // `done`, after the getattr result of `path` is cached.
  Done CachingGetattr(const std::string& path, Done done);
  // A getattr of `path` that missed the cache, after another miss in the
  // same directory (a caller going through it: find, ls -l, once the
  // names' lifetimes are over): sent together with those of names of the
  // directory's listing that are not cached, at the caller's stride
  // (LookupWalk, MetadataCache::UncachedPathsIn), so that the walk costs a
  // round trip per 64 names instead of one per name. False, and nothing
  // taken from `op` and `done`, when there is nothing to fetch ahead.
  bool FetchAhead(v1::Op& op, const std::string& path, Done& done);
  // How many names are fetched ahead: with the asked one, one message.
  static constexpr size_t kFetchAhead = 63;
  // The widest stride looked for (places in a listing, counted under the
  // cache's lock); a caller that jumps further gets every name ahead.
  static constexpr size_t kWidestStride = 1024;
  LookupWalk walk_;
  void SendReadlink(v1::Op op, Done done);
  // `prefetched`: a listing fetched ahead, which fetches nothing ahead
  // itself.
  void SendReaddir(v1::Op op, Done done, bool prefetched = false);
  void SendXattrRead(v1::Op op, Done done);
  // Forwards a mutation and applies the coherence rules to its result.
  // Forgets `path`'s extended attributes unless `name` is known absent.
  void DropXattrsUnlessAbsent(const std::string& path, absl::string_view name);
  void SendMutation(v1::Op op, Done done);
  // What the cache knew before a mutation was sent: the inode number and
  // link count of the name it replaces or links (0 when not cached), and
  // for a rename, whether the name it moves may be a hard link of the name
  // it replaces.
  struct NamesBefore {
    uint64_t replaced_ino = 0;
    uint32_t replaced_nlink = 0;
    bool maybe_same_file = false;
  };
  void ApplyMutation(const v1::Op& op, const v1::OpResult& result,
                     const NamesBefore& before);
  // Directory `dir` gained or lost a name: caches its attributes afterwards
  // if the backend sent them (OpResult.parent_attr), else forgets them.
  void ParentChanged(const std::string& dir, const v1::Attr& attr);
  // Drops the cached attrs and xattrs of the other names of inode `ino`,
  // and tells the kernel adapter; `attr` (if non-null) is stored for them
  // instead of dropping the attrs.
  void UpdateLinks(uint64_t ino, const std::string& except,
                   const v1::Attr* attr);
  absl::Duration AttrTtl(const v1::Attr& attr) const;
  // A lifetime as Attr.ttl_ms.
  static uint32_t ToMillis(absl::Duration d);
  // Records what a file just made lacks, for the questions the kernel and
  // write-behind ask of it next.
  void NoCapabilities(const std::string& path);
  void NoDefaultAclIfParentHasNone(const std::string& dir);
  void Record(CacheKind kind, bool hit);

  const Options options_;
  std::atomic<KernelCacheNotifier*> kernel_{nullptr};
  std::unique_ptr<ListingPrefetcher> prefetcher_;  // null: none
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_
