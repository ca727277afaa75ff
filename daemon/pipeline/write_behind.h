// Write-behind (mount option write_behind): changes the daemon can answer
// from its own cached state are answered at once and sent to the backend
// afterwards, in order, several to a message.
//
// Answered at once ("deferred"):
//   chmod, chown, utimens  of a path whose attributes are cached: the reply
//                          is those attributes with the change applied and
//                          ctime (and a NOW time) from the daemon's clock;
//                          not a chown of a set-id file (the backend decides
//                          which bits it drops);
//   unlink                 of a cached non-directory whose directory's
//                          attributes are cached too (they get new times);
//   rmdir                  of a directory the daemon knows is empty: its
//                          cached listing is fresh and holds no name (a
//                          listing is kept only whole, and every change
//                          through the daemon edits it: the unlinks
//                          answered early took their names out), and its
//                          directory's attributes are cached (they get new
//                          times, and one link less where links count
//                          subdirectories). A directory without such a
//                          listing, or with a name left in it, goes to the
//                          backend, which answers ENOTEMPTY for names the
//                          daemon never knew. The kernel holds the
//                          directory's lock from its rmdir to the answer,
//                          so no name can be added through the mount
//                          meanwhile;
//   create                 (Options::handles set) of a name known absent:
//                          its directory's attributes are cached and its
//                          fresh listing lacks the name, and (backend with
//                          POSIX ACLs) the directory is known to have no
//                          default ACL (else the create asks for it, as
//                          the file's caller, to answer the next ones);
//                          not with set-id mode bits. The reply: a regular
//                          file of the request's mode (the kernel applied
//                          the umask), the caller's uid, the caller's gid
//                          or the directory's if it is set-gid, size 0,
//                          one link, times from the daemon's clock, ino 0
//                          (the kernel's node id stands for it until the
//                          backend's attributes replace these), the
//                          directory with new times; and a handle token
//                          (HandleMap::IssueUnopened) with no backend
//                          handle yet, so the file is not passed through
//                          (and no flush, with Options::noflush).
//                          The create goes to the backend as the kernel
//                          asked it (flags, O_EXCL included, and mode), as
//                          the last op of its message, unless the backend
//                          runs messages in order and fills in the handle
//                          of an earlier op (Op.fh_from_op): then the ops
//                          on the new file follow it in the same message
//                          (an untar: many files a message, not one). Its
//                          handle is bound to the token
//                          (HandleMap::Adopt) before the next message
//                          leaves. Refused, the token is lost
//                          (HandleMap::Lose): the ops queued on it fail so;
//   write, flush, release  through such a token: the write with the size
//                          and times it leaves in the cached attributes, at
//                          most max_queued_bytes of write data queued; a
//                          flush's ENOSYS is no failure; a release's error
//                          is not reported (the kernel ignores it);
//   rename                 of a cached non-directory, with flags 0 or
//                          RENAME_NOREPLACE, to a name known absent (its
//                          directory's fresh listing lacks it) or, without
//                          RENAME_NOREPLACE, over a cached non-directory,
//                          both directories' attributes cached (they get
//                          new times; no link count changes). What the
//                          layers above keep is what a rename the backend
//                          answered leaves (the old name absent, the new
//                          name's attributes and both listings dropped).
//                          A directory, RENAME_EXCHANGE and a target of
//                          unknown kind go to the backend. Ops queued
//                          before it name the old path, later ones the
//                          new: both paths are its keys, so none passes it;
// never of a file with several names (hard links; for a rename, neither the
// file moved nor the one it replaces): ops are ordered by path, and another
// name's ops would not wait for the change.
// Everything else goes on as before, except that an op touching what a
// queued op touches waits behind it (a read of a file created early waits
// for its create and writes to reach the backend; Touches keeps the daemon
// from opening such a file beneath the backend's root itself), and fsync
// and fsyncdir wait for every queued op. Two ops touch the same thing when
// they name the same open handle, or paths of which one is the other or
// lies below it.
//
// Pace: a message of changes answered early that is not full waits until
// the first of them has been queued for `linger`, unless an op that someone
// waits for (a kernel request queued behind them, a Settle) comes first: an
// `rm -rf` answered early makes a change every few dozen microseconds, which
// would otherwise go a few to a message, each message costing the backend
// (and the daemon) more than the changes in it.
//
// Order: one message at a time. To a backend that runs a message's ops in
// order (InitReply.runs_batches_in_order), a message is the front of the
// queue as it stands (SendInOrder), up to 1,024 ops: a backlog behind a
// slow link goes in few round trips. To another, a message takes up to 64
// queued ops in the order they came, passing over any that touches what an
// op before it (taken or left queued) touches: no op overtakes one it
// depends on, and no two ops of a message touch the same thing (the backend
// may run them in any order); fsync and fsyncdir go alone, after everything
// before them. Either way a message carries at most 16 MiB of write data
// (one larger write goes alone).
// Changes answered early and kernel requests that waited behind them never
// share a message: a message's deadline is its earliest op's, and the
// changes, which no one waits for, must not time out with a request that
// waited long (the backend would go on running them while the next
// message overtook them).
//
// Errors: a deferred op the backend refuses (or that is lost with the
// connection) is logged and counted, and `on_failure` is told its paths
// (for unlink, rmdir and create, the directory's too; for rename, both
// names and both directories), so that the caches
// forget what the early answer made them believe (a name created early
// disappears from the mount). An rmdir the backend refuses
// (ENOTEMPTY: another client made a name in the directory after the
// daemon listed it) is such an error too. The first
// such error is returned by the next fsync or fsyncdir on the mount (or
// Settle), as syncfs(2) reports a filesystem's writeback errors. A backend
// without fsync (ENOSYS) has it answered 0 once the queue is through: the
// kernel would stop asking after ENOSYS, and errors would go unreported.
//
// Correct only where the kernel checks permissions (default_permissions):
// an early answer skips the backend's own checks, which still run later.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_WRITE_BEHIND_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_WRITE_BEHIND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class WriteBehind : public OpTransport {
 public:
  struct Options {
    OpTransport* next = nullptr;     // must outlive this
    MetadataCache* cache = nullptr;  // must outlive this; the answers' source
    // Deferred ops queued at most; beyond, changes wait for their answer.
    size_t max_queued = 1024;
    // Bytes of writes answered early queued at most; beyond, writes wait.
    size_t max_queued_bytes = 64 << 20;
    // Where creates answered early get their handle tokens (null: creates
    // are not answered early).
    HandleMap* handles = nullptr;
    // The backend keeps POSIX ACLs: a directory's default ACL, not the
    // umask, would decide a new file's mode. A create is answered early
    // only in a directory the cache knows has none; the first create in
    // another asks the backend (its answer kept for `acl_ttl`).
    bool posix_acl = false;
    absl::Duration acl_ttl = absl::Seconds(1);
    // A file created early needs no flush at its close (the backend keeps
    // no POSIX locks that a flush would release): the kernel skips it.
    bool noflush = false;
    // The backend runs a message's ops in order (Batch.in_order).
    bool in_order = false;
    // True while the backend fills in the handle of a create from the same
    // in-order message (InitReply.takes_handles_from_earlier_ops, asked as
    // each message is made: a restarted backend may say otherwise). Unset:
    // it never does.
    std::function<bool()> takes_handles_from_earlier_ops;
    // A deferred op failed at the backend: the paths it named.
    std::function<void(const std::vector<std::string>& paths)> on_failure;
    std::string log_name;
    // The daemon's clock, for the times an early answer sets. Tests swap it.
    std::function<absl::Time()> now = [] { return absl::Now(); };
    // How long changes answered early may wait for others to share their
    // message (see "Pace" above; zero: they go at once).
    absl::Duration linger = absl::ZeroDuration();
  };

  explicit WriteBehind(Options options);
  ~WriteBehind() override;

  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  // Waits for the queue to be sent and answered, then for the next layer.
  void WaitIdle() override;

  // Runs `then` once every op queued before has been answered, with the
  // error an fsync would report (0 if none). For an fsyncdir the daemon
  // answers itself (a directory the backend never opened).
  void Settle(std::function<void(int posix_errno)> then);

  // Waits until every queued op is answered, at most until `deadline`.
  // False if some were still queued then.
  bool Drain(absl::Time deadline);

  // Whether the backend runs a message's ops in order (a restarted backend
  // may say otherwise than the first).
  void SetInOrder(bool in_order) { in_order_.store(in_order); }

  uint64_t deferred() const { return deferred_.load(); }
  uint64_t failed() const { return failed_.load(); }
  size_t queued() const;
  // Whether a queued or in-flight op touches `path` (one above or below
  // it included): what the backend holds there may not be what the mount
  // shows yet.
  bool Touches(const std::string& path) const;

 private:
  // What an op touches.
  struct Keys {
    std::vector<std::string> paths;
    std::vector<uint64_t> handles;
    bool barrier = false;  // fsync, fsyncdir: waits for everything
  };
  struct Queued {
    PendingOp op;
    Keys keys;
    bool deferred;  // answered early
    // A kernel request that changes something (counted in waiting_).
    bool changing = false;
    // Not an op: `settled` runs when it reaches the front (Settle).
    std::function<void(int)> settled;
    // A create answered early: the handle token it was answered with,
    // which the backend's handle is bound to once it answers.
    uint64_t created = 0;
    // Bytes of write data it holds (max_queued_bytes).
    size_t bytes = 0;
    // A failure at the backend is reported by the next fsync (not for a
    // release, whose errors no one sees).
    bool reports = true;
    // An errno of its answer that is no failure.
    int ignored_errno = 0;
    // When it was queued (the pace of messages of deferred ops).
    absl::Time queued_at = absl::InfinitePast();
  };

  static Keys KeysOf(const v1::Op& op);
  // `a` and `b` touch the same thing.
  static bool Clash(const Keys& a, const Keys& b);
  void QueueLocked(PendingOp op, Keys keys, bool deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The early answer for `op`, or false if it must wait for the backend.
  bool Answer(const v1::Op& op, v1::OpResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The early answers for create, and for write, flush and release of a
  // file created so.
  bool AnswerCreate(const v1::Op& op, v1::OpResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AnswerOnCreated(const v1::Op& op, v1::OpResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The early answer for rename.
  bool AnswerRename(const v1::Op& op, v1::OpResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A create answered early with `token` was answered by the backend.
  void Created(uint64_t token, const v1::OpResult& result);
  // Has `dir`'s default ACL (not cached) asked for once this op goes on,
  // unless it is asked already or another directory waits to be asked.
  void AskDefaultAclLaterLocked(const std::string& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the backend for directory `dir`'s default ACL as `caller`, and
  // keeps the answer in the cache (up to `tries` times, while the cache
  // changed before the answer came).
  void AskDefaultAcl(const std::string& dir, const v1::Caller& caller,
                     int tries);
  // What a set of queued and in-flight ops touches, with counts.
  struct Touched {
    std::map<std::string, int> paths;
    absl::flat_hash_map<uint64_t, int> handles;
    size_t ops = 0;

    void Add(const Keys& keys, int delta);
    bool Conflicts(const Keys& keys) const;
  };
  // Whether `keys` touch what a queued or in-flight op touches.
  bool ConflictsLocked(const Keys& keys) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return pending_ != 0 && all_.Conflicts(keys);
  }
  // Counts an op in or out of the indexes (`changing`: waiting_ too).
  void IndexLocked(const Keys& keys, int delta, bool changing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `done` of a deferred op: records a failure.
  Done Deferred(const v1::Op& op);
  // `done` of fsync/fsyncdir `op`: reports a recorded failure.
  Done Syncing(const v1::Op& op, Done done);
  // Sends the next message if none is in flight. Called without mu_.
  void Pump();
  // Whether the next message should wait for more changes (see "Pace"
  // above); if so, when it goes at the latest.
  bool LingerLocked(absl::Time* until) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The pacer's thread: runs Pump when a lingering message's time is up.
  void Pace();
  // The unreported error, taken.
  int TakeErrorLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  std::atomic<bool> in_order_;
  std::atomic<uint64_t> deferred_{0};
  std::atomic<uint64_t> failed_{0};
  // The backend answered ENOSYS to fsync / fsyncdir: answered here since.
  std::atomic<bool> no_fsync_{false};
  std::atomic<bool> no_fsyncdir_{false};
  mutable absl::Mutex mu_;
  std::list<Queued> queue_ ABSL_GUARDED_BY(mu_);  // stable addresses
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // What the queued and in-flight ops touch; and those of them that are
  // changes waiting for their answer (kernel requests, not answered early):
  // a change touching one of those is not answered early either, or it
  // would be answered as if that request (a rename of its directory, say)
  // had not happened, and reach the backend after it.
  Touched all_ ABSL_GUARDED_BY(mu_);
  Touched waiting_ ABSL_GUARDED_BY(mu_);
  // Queued deferred ops (bounded by max_queued), and their write bytes.
  size_t deferred_queued_ ABSL_GUARDED_BY(mu_) = 0;
  size_t deferred_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Handle tokens of files created early whose release is not queued yet:
  // their writes, flushes and release are answered early.
  absl::flat_hash_set<uint64_t> created_ ABSL_GUARDED_BY(mu_);
  // Directories whose default ACL a create needs to know (posix_acl), set
  // by AnswerCreate, and those being asked for.
  std::string acl_unknown_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> acl_asked_ ABSL_GUARDED_BY(mu_);
  // Ops queued or in flight.
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  // First failure of a deferred op not yet reported by an fsync.
  int unreported_errno_ ABSL_GUARDED_BY(mu_) = 0;
  // When the pacer runs Pump next (InfiniteFuture: nothing lingers), and
  // whether it is to stop.
  absl::Time pace_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Last: started once everything it uses is made (only with a linger).
  std::thread pacer_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_WRITE_BEHIND_H_
