// Changes of a file's mode, owner or times, and removals of names, that the
// daemon makes itself: a loopback backend handed over its root directory and
// said such a change is nothing but the system call on the file beneath it
// (InitReply.root_changes_attributes, root_removes_names), so chmod, chown
// and utimens cost no message (untar makes three of them per file), nor do
// unlink and rmdir (rm -rf) on a mount without write-behind.
//
// A layer of the op pipeline, between the metadata cache (above, which
// takes the answer as it would take the backend's) and write-behind or the
// batcher (below). An op goes on down, and the backend's answer stands,
// whenever the daemon may not or cannot make the change:
//   - the path's attributes are not cached, or name another inode than the
//     file found there (changed on the host behind the daemon's back);
//   - a change answered early (write_behind) is still queued for the path:
//     this one must come after it;
//   - RootDirectory::ChangeAttributes declines or the system call fails
//     (the backend may know better: a loopback drops the set-id bits of a
//     file for a caller who may write it but not chmod it).
// The answer carries the file's attributes afterwards (a removal's, its
// parent's), as a backend's does.
//
// The backend does not know of these changes, so a backend that watches its
// directory reports them back as changes made outside (the loopbacks do),
// and each such notice would drop what the daemon just learnt, costing the
// next stat a round trip. NoNews recognizes them: a notice that a path
// changed, shortly after the daemon changed it (or removed a name in it),
// while the file there is exactly as the daemon's cache shows it (inode,
// type and mode, owner, size, link count, modification and change times);
// or that a name the daemon removed is gone, while it still is. A later change by
// anyone else moves the change time, so its notice still goes through; one
// that lands while the daemon's own is under way, or on a filesystem whose
// timestamps are too coarse to tell, shows when the cache expires instead.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "daemon/passthrough/root_directory.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class ChangesByDaemon : public OpTransport {
 public:
  struct Options {
    RootDirectory* root = nullptr;
    // The attributes the daemon answered with, whose inode the file found
    // must have.
    MetadataCache* cache = nullptr;
    OpTransport* next = nullptr;
    // True while a change answered early is queued for the path (unset:
    // nothing ever is).
    std::function<bool(const std::string&)> queued_at;
  };

  explicit ChangesByDaemon(Options options);

  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  void SendInOrder(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  void WaitIdle() override;

  // True when `notice` only reports a change the daemon made itself (see
  // above): it is then not applied.
  bool NoNews(const v1::Invalidation& notice);

  // How long after a change of its own a notice may be recognized.
  static constexpr absl::Duration kRecent = absl::Seconds(2);
  // Paths remembered at most; past it the oldest are forgotten (their
  // notices are applied: only a round trip lost).
  static constexpr size_t kMaxRecent = 8192;

 private:
  // `removed`: the daemon removed the name (else changed the file).
  void Remember(const std::string& path, bool removed);

  // Makes `op`'s change here and fills `result`; false to send it on.
  bool MakeHere(const v1::Op& op, v1::OpResult* result);

  Options options_;
  absl::Mutex mu_;
  // Paths the daemon changed, when, and whether it removed the name.
  struct Recent {
    absl::Time when;
    bool removed = false;
  };
  absl::flat_hash_map<std::string, Recent> recent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_
