// The handles whose open or create the backend answered with `noflush` (its
// flush does nothing: no write-back of its own, no locks to release), kept
// on a mount with the kernel's writeback cache. There the kernel sends FLUSH
// at every close whatever the open said: it writes the file's dirty pages
// back first and sends the flush after them. The daemon answers those
// flushes itself, saving a round trip per close (a network's latency on a
// remote mount): by then every WRITE has been answered, and the backend said
// its flush would add nothing.
//
// An entry goes at the handle's release (or when the kernel never got it),
// before the backend may give its number to another open. After a daemon
// restart the set starts empty: flushes go to the backend as before.

#ifndef FUSE_HOSTD_DAEMON_FUSE_FLUSHLESS_HANDLES_H_
#define FUSE_HOSTD_DAEMON_FUSE_FLUSHLESS_HANDLES_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

class FlushlessHandles {
 public:
  void Add(uint64_t fh) {
    absl::MutexLock lock(&mu_);
    handles_.insert(fh);
  }
  void Remove(uint64_t fh) {
    absl::MutexLock lock(&mu_);
    handles_.erase(fh);
  }
  bool Contains(uint64_t fh) const {
    absl::ReaderMutexLock lock(&mu_);
    return handles_.contains(fh);
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<uint64_t> handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_FLUSHLESS_HANDLES_H_
