// File and directory handles as the kernel sees them, and which backend
// instance issued each.
//
// A backend's handle is only meaningful to the process that issued it: a
// restarted backend may hand out the same number for another user's file.
// So the kernel never sees a backend's handle. Each handle an open, create
// or opendir returns is replaced by a token of the daemon's own (a counter,
// never reused) that remembers the handle, the issuing instance
// (BatchResult.instance) and how the file was opened (path kind, flags,
// caller). An op that carries a token gets the backend's handle back and
// Op.handle_instance set, so that the backend refuses it should it have
// restarted meanwhile.
//
// A token of an instance the daemon knows to be gone is never sent: the file
// is reopened first (handle_reopener.h) as the same caller with the same
// flags, minus those that create or truncate, and the token then stands for
// the new handle. A handle that cannot be reopened (its file lost its name)
// is lost: every op on it fails, with ESTALE or EIO.
//
// Durability across a restart: a write the backend acknowledged is taken as
// applied, but if the backend restarts before the handle's next fsync, the
// data may have died with it (in its page cache, say). The first fsync of
// such a handle after the reopen then fails with EIO, as fsync(2) does after
// a failed writeback, and later ones report on their own.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/op_handles.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// What to do with an op whose tokens were looked at (HandleMap::Resolve).
struct HandleRoute {
  enum Kind {
    // Its tokens are now the backend's handles: send it.
    kSend,
    // Token `stale` was issued by a gone instance: reopen it, then resolve
    // the op again.
    kReopen,
    // Answer it without sending, with `posix_errno` (0: a release of a
    // handle whose instance is gone, which has nothing left to release).
    kAnswer,
  };
  Kind kind = kSend;
  int posix_errno = 0;
  uint64_t stale = 0;
  // The tokens the op carried, to put back should it be sent again.
  OpHandles tokens;
};

class HandleMap {
 public:
  // The instance the backend reported last (Init or a reply): handles of
  // any other are stale. True when it replaces another one: the backend
  // restarted.
  bool SawInstance(uint64_t instance);

  // A successful result of `op`: its handle, if it carries one, becomes a
  // token, issued by `instance`.
  void IssueTokens(const v1::Op& op, uint64_t instance, v1::OpResult* result);

  // A token for a file the daemon opened itself (a backend's root
  // directory, InitReply.root_directory) with open(2) `flags` as `caller`:
  // the backend has no handle for it yet. Its release and, while no lock
  // was ever asked for on the mount, its flush are answered without the
  // backend; any other op that carries it opens the file at the backend
  // first, as for a restarted backend (kReopen).
  uint64_t IssueUnopened(uint32_t flags, const v1::Caller& caller);

  // A flush of `token` needs no backend: it is unopened there and no lock
  // was ever asked for on the mount.
  bool FlushesHere(uint64_t token) const;
  // `token` (IssueUnopened) has no backend handle yet.
  bool Unopened(uint64_t token) const;
  // Retires `token` if it has no backend handle (its release has nothing to
  // close there); false, and nothing done, otherwise.
  bool RetireUnopened(uint64_t token);

  // `op` carries `token` alone, the token of a file whose create goes
  // earlier in the same in-order message (PendingOp::creates_token): the
  // handle is the create's, which the backend fills in (Op.fh_from_op), so
  // `fh` becomes 0. A release retires the token. False, and `op` left as it
  // was, if the token is not such a one (unknown, or bound to a handle
  // already): resolve it as usual.
  bool ResolveFromEarlierOp(v1::Op* op, uint64_t token);

  // Turns the tokens `op` carries back into the backend's handles and sets
  // Op.handle_instance, when it can be sent; leaves `op` as it was
  // otherwise. An unknown token is EBADF. A release or releasedir retires
  // its token.
  HandleRoute Resolve(v1::Op* op);

  // The op that reopens `token`'s file at `path` as it was opened, to
  // answer by `deadline_unix_ms`. False if the token is unknown.
  bool ReopenOp(uint64_t token, const std::string& path,
                int64_t deadline_unix_ms, v1::Op* op) const;
  // `token` now stands for handle `fh` of `instance`.
  void Reopened(uint64_t token, uint64_t fh, uint64_t instance);
  // `token` (IssueUnopened) now stands for the handle token `from` stands
  // for, which is retired: a create the daemon answered early (write_behind)
  // reached the backend. If `token` was released meanwhile (its release
  // went in the create's message, ResolveFromEarlierOp), `from` is retired
  // too; nothing happens if `from` is unknown.
  void Adopt(uint64_t token, uint64_t from);
  // `token` cannot be reopened: its ops fail with `posix_errno` from now on.
  void Lose(uint64_t token, int posix_errno);

  // Sees the result of an op that was sent with `tokens`: records
  // acknowledged writes, and turns the first fsync after a restart that may
  // have lost some into EIO.
  void NoteResult(const v1::Op& op, const OpHandles& tokens,
                  v1::OpResult* result);

  // True when `token` is a file opened for reading only: a flush of it
  // changes nothing, and may be sent again.
  bool ReadOnly(uint64_t token) const;

  size_t size() const;

  // What a token stands for.
  struct TokenState {
    uint64_t fh = 0;
    uint64_t instance = 0;
    // How it was opened: opendir, or open/create with these flags.
    bool dir = false;
    uint32_t flags = 0;
    v1::Caller caller;
    // Opened by the daemon, not yet at the backend (IssueUnopened).
    bool unopened = false;
    // Nonzero once it could not be reopened.
    int lost_errno = 0;
  };
  // A token as a restarted daemon needs it again (daemon/survival).
  struct Saved : TokenState {
    uint64_t token = 0;
  };
  // Told of every change of the tokens the kernel holds, under the map's
  // lock, in order. Never calls back into the map.
  class Changes {
   public:
    virtual ~Changes() = default;
    virtual void Issued(const Saved& token) = 0;
    virtual void Retired(uint64_t token) = 0;
    virtual void Reopened(uint64_t token, uint64_t fh, uint64_t instance) = 0;
    virtual void Lost(uint64_t token, int posix_errno) = 0;
    virtual void InstanceSeen(uint64_t instance) = 0;
  };
  // From now on `changes` (may be null) hears of every change.
  void SetChanges(Changes* changes);

  // Replaying what a previous daemon recorded. Tokens issued later are
  // above every token restored.
  void Restore(const Saved& token);
  void RestoreRetired(uint64_t token);
  void RestoreReopened(uint64_t token, uint64_t fh, uint64_t instance);
  void RestoreLost(uint64_t token, int posix_errno);
  void RestoreInstance(uint64_t instance);

  // Calls `with` with the instance seen last, the next token to issue and
  // every token while holding the map's lock, so that no change is made
  // until it returns.
  void Snapshot(absl::FunctionRef<void(uint64_t instance, uint64_t next_token,
                                       const std::vector<Saved>&)>
                    with) const;
  // Replaying: tokens issued from now on are at least `next_token`.
  void RestoreNextToken(uint64_t next_token);

 private:
  struct Handle : TokenState {
    // Writes acknowledged since the last successful fsync.
    bool unsynced = false;
    // Some of those were made before a restart of the backend.
    bool unproven = false;
  };
  bool StaleLocked(const Handle& h) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  static Saved SavedOf(uint64_t token, const Handle& h);
  void RetireLocked(absl::flat_hash_map<uint64_t, Handle>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FlushesHereLocked(const Handle& h) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return h.unopened && !locks_seen_;
  }

  mutable absl::Mutex mu_;
  Changes* changes_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t current_ ABSL_GUARDED_BY(mu_) = 0;
  // Some op asked for a lock: a flush may have one to release (POSIX locks
  // are the process's, so closing any descriptor of the file releases
  // them), and must reach the backend.
  bool locks_seen_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, Handle> handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_
