// Changes of a file's mode, owner or times, and removals of names, that the
// daemon makes itself: a loopback backend handed over its root directory and
// said such a change is nothing but the system call on the file beneath it
// (InitReply.root_changes_attributes, root_removes_names), so chmod, chown
// and utimens cost no message (untar makes three of them per file), nor do
// unlink and rmdir (rm -rf). A backend
// that said its create is nothing but open(2) with O_CREAT
// (InitReply.root_creates_files) has new files created here too: the
// answer carries a handle token the backend has no handle for yet
// (HandleMap::IssueUnopened) and the file's descriptor waits in the
// descriptor inbox under the create's passthrough tag, as a backend's
// would, to become the kernel's backing file. And since such a backend's
// attributes are the file's own, a getattr by path that the cache could
// not answer (a lookup on a cold cache: `cat` of files never listed) is
// the file's lstat here (RootDirectory::LookUp) instead of a round trip,
// and so is its ENOENT (an include path searched, a name about to be
// created).
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
// parent's), as a backend's does. A change of times of a file written
// through a backing descriptor that goes on to write-behind goes without
// its cached attributes, so that write-behind does not answer it early
// (see RequestHandlers::Options::changes_below).
//
// The backend does not know of these changes, so a backend that watches its
// directory reports them back as changes made outside (the loopbacks do),
// and each such notice would drop what the daemon just learnt, costing the
// next stat a round trip. NoNews recognizes them: a notice that a path
// changed, shortly after the daemon changed it (or made or removed a name
// in it), while the file there is the inode the daemon's cache shows, with
// the same type, mode and owner, and
//   - for a file, the same size, link count, modification and change
//     times, unless the daemon holds it open for writing through a backing
//     descriptor (whose fstat it takes these from anyway);
//   - for a directory, nothing more: a name made or removed there by anyone
//     else has a notice of its own, which is news;
// or that a name the daemon removed is gone or changed, while it is still
// gone (a watcher may report the last change inside a directory after the
// daemon removed the directory too). A later
// change of a file by anyone else moves its change time, so its notice
// still goes through; one that lands while the daemon's own is under way,
// or on a filesystem whose timestamps are too coarse to tell, shows when
// the cache expires instead, as does a change of only a directory's times.
//
// A notice that arrives while the daemon's change of its path is under way
// (between the system call and the caches taking its answer) would find the
// old attributes and be taken for news. Filter parks it until that change
// ends and judges it then, on a thread of this layer, so that the notices
// for other paths behind it are not held up however long the change takes.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/passthrough/descriptor_inbox.h"
#include "daemon/passthrough/root_directory.h"
#include "daemon/pipeline/handle_map.h"
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
    // For creates (none without both): tokens for the files created here,
    // and where their descriptors wait for the open's reply.
    HandleMap* handles = nullptr;
    DescriptorInbox* inbox = nullptr;
    // The backend keeps POSIX locks: a close must reach it (no noflush).
    bool backend_posix_locks = false;
    // True while the file at a path is open for writing through a backing
    // descriptor (unset: none ever is).
    std::function<bool(const std::string&)> written_through;
  };

  explicit ChangesByDaemon(Options options);
  ~ChangesByDaemon() override;

  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  void SendInOrder(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  void WaitIdle() override;

  using Apply = std::function<void(const v1::Invalidation&)>;
  // Passes `notice` to `apply` unless it only reports a change the daemon
  // made itself (see above). At once, unless a change of its path is under
  // way or a notice of its path is still parked: then later, on this
  // layer's thread, in the order the notices of that path came.
  void Filter(v1::Invalidation notice, Apply apply);
  // Forgets the notices still parked and stops the thread: none reaches its
  // `apply` once this returns. Later notices are judged at once.
  void StopFiltering();

  // True when `notice` only reports a change the daemon made itself (see
  // above): it is then not applied. Judged now, whatever is under way.
  bool NoNews(const v1::Invalidation& notice);

  // How long after a change of its own a notice may be recognized.
  static constexpr absl::Duration kRecent = absl::Seconds(2);
  // Paths remembered at most; past it the oldest are forgotten (their
  // notices are applied: only a round trip lost).
  static constexpr size_t kMaxRecent = 8192;

 private:
  // What the daemon did at a path.
  struct Recent {
    absl::Time when;
    // Removed the name (else changed or made the file).
    bool removed = false;
    // Changes under way (from before the system call until the caches
    // have the answer): a notice waits for them before it is judged.
    int in_progress = 0;
    // Notices of the path parked until then.
    int parked = 0;
  };
  struct Parked {
    v1::Invalidation notice;
    Apply apply;
  };
  // Records that the daemon changed `path` (`removed`: removed the name).
  void Remember(const std::string& path, bool removed);
  // Keeps recent_ below kMaxRecent.
  void TrimLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brackets a change of `paths` that may be made here.
  void Begin(const std::vector<std::string>& paths);
  void End(const std::vector<std::string>& paths);

  // Answers getattr `op` with the file's own attributes here; false to
  // send it on.
  bool LookUpHere(const v1::Op& op, const Done& done);
  // Makes `op`'s change here and fills `result`; false to send it on.
  bool MakeHere(const v1::Op& op, v1::OpResult* result);
  bool CreateHere(const v1::Op& op, const UserIdentity& caller,
                  v1::OpResult* result);
  // The thread's loop: judges the first parked notice once its path's
  // changes have ended.
  void JudgeParked();

  Options options_;
  absl::Mutex mu_;
  // Paths the daemon changed, and when.
  absl::flat_hash_map<std::string, Recent> recent_ ABSL_GUARDED_BY(mu_);
  // Notices waiting for changes under way, oldest first.
  std::deque<Parked> parked_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Started with the first notice parked.
  std::thread judge_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_CHANGES_BY_DAEMON_H_
