// File and directory handles as the kernel sees them, and which backend
// instance issued each.
//
// A backend's handle is only meaningful to the process that issued it: a
// restarted backend may hand out the same number for another user's file.
// So the kernel never sees a backend's handle. Each handle an open, create
// or opendir returns is replaced by a token of the daemon's own (a counter,
// never reused) that remembers the handle and the issuing instance
// (BatchResult.instance). An op that carries a token gets the backend's
// handle back and Op.handle_instance set, so that the backend refuses it
// should it have restarted meanwhile; a token of an instance the daemon
// already knows to be gone fails with EBADF without being sent.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

class HandleMap {
 public:
  // The instance the backend reported last (Init or a reply): handles of
  // any other are stale.
  void SawInstance(uint64_t instance);

  // A successful result of `op`: its handle, if it carries one, becomes a
  // token, issued by `instance`.
  void IssueTokens(const v1::Op& op, uint64_t instance, v1::OpResult* result);

  // Turns the tokens `op` carries back into the backend's handles and sets
  // Op.handle_instance. False (EBADF) when a token is unknown or its
  // instance is gone. A release or releasedir retires its token.
  bool ResolveTokens(v1::Op* op);

  size_t size() const;

 private:
  struct Handle {
    uint64_t fh;
    uint64_t instance;
  };
  // False when `token` cannot be used; else *fh and *instance are set.
  bool Resolve(uint64_t token, bool retire, uint64_t* fh, uint64_t* instance)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t current_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Handle> handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_MAP_H_
