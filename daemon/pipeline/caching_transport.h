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
// other cached path of the same inode is updated too, and `links_changed`
// tells the kernel adapter to drop what the kernel caches for those paths.
// An operation that failed in transport (deadline, lost connection) may or
// may not have happened: everything it could have touched is dropped.
//
// Every attribute that leaves this layer carries its remaining lifetime in
// Attr.ttl_ms, which the kernel adapter hands to the kernel as the entry and
// attribute timeouts, so the two caches expire together.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/stats/mount_stats.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

// Lifetimes used when a reply sets none.
struct CachePolicy {
  absl::Duration attr_ttl = absl::Seconds(1);
  absl::Duration negative_ttl = absl::ZeroDuration();
  absl::Duration listing_ttl = absl::Seconds(1);
};

class CachingTransport : public OpTransport {
 public:
  using LinksChanged = std::function<void(const std::vector<std::string>&)>;

  struct Options {
    CachePolicy policy;
    MetadataCache* cache = nullptr;  // must outlive this
    OpTransport* next = nullptr;     // must outlive this
    MountStats* stats = nullptr;     // may be null
    LinksChanged links_changed;      // may be empty
  };

  explicit CachingTransport(Options options);

  void Send(v1::Op op, Done done) override;
  void CancelAll() override { options_.next->CancelAll(); }
  void WaitIdle() override { options_.next->WaitIdle(); }

  const CachePolicy& policy() const { return options_.policy; }

 private:
  void SendGetattr(v1::Op op, Done done);
  void SendReadlink(v1::Op op, Done done);
  void SendReaddir(v1::Op op, Done done);
  void SendXattrRead(v1::Op op, Done done);
  // Forwards a mutation and applies the coherence rules to its result.
  void SendMutation(v1::Op op, Done done);
  void ApplyMutation(const v1::Op& op, const v1::OpResult& result,
                     uint64_t replaced_ino, uint32_t replaced_nlink);
  // Directory `dir` gained or lost a name: caches its attributes afterwards
  // if the backend sent them (OpResult.parent_attr), else forgets them.
  void ParentChanged(const std::string& dir, const v1::Attr& attr);
  // Drops the cached attrs of the other names of inode `ino`, and tells the
  // kernel adapter; `attr` (if non-null) is stored for them instead.
  void UpdateLinks(uint64_t ino, const std::string& except,
                   const v1::Attr* attr);
  absl::Duration AttrTtl(const v1::Attr& attr) const;
  void NoCapabilities(const std::string& path);
  void Record(CacheKind kind, bool hit);

  const Options options_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_CACHING_TRANSPORT_H_
