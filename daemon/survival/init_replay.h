// The kernel sends FUSE_INIT once per connection, and libfuse serves no
// other request before it has seen one. A daemon that resumes a connection
// a previous daemon served (mount_state.h) therefore feeds the saved INIT
// request to its new libfuse session as the first read, and drops
// libfuse's reply to it: the kernel had its answer long ago. Then it asks
// the kernel to send again whatever the dead daemon read and never
// answered.
//
// No other thread may read the device until that reply: libfuse answers
// every request it sees before it has processed INIT with EIO (and libfuse
// starts a second reader as soon as the first has a request), and the
// resend requeues every request read and not answered, a new reader's
// included, which would then be served twice.
//
// Thread-safe: the device is read and written on many threads.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_INIT_REPLAY_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_INIT_REPLAY_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

// True if the `size` bytes at `data` are a whole FUSE_INIT request.
bool IsInitRequest(const void* data, size_t size);

class InitReplay {
 public:
  // `saved`: the connection's INIT request (IsInitRequest).
  explicit InitReplay(std::string saved);

  // The first call copies the saved request into `buf` and returns true
  // with its size in *n. Later calls wait until Answered(), then return
  // false (read the device).
  bool Take(void* buf, size_t len, ssize_t* n);

  // True for the reply to the saved request (by its `unique`), which must
  // not reach the kernel.
  bool IsReplyToSaved(const struct iovec* iov, int count) const;

  // libfuse has processed the saved request (its reply was dropped) and the
  // unanswered requests were sent again: the device may be read.
  void Answered();

 private:
  const std::string saved_;
  const uint64_t unique_;
  std::atomic<bool> taken_{false};
  // Answered(): read without the lock once true.
  std::atomic<bool> answered_{false};
  absl::Mutex mu_;
  bool answered_locked_ ABSL_GUARDED_BY(mu_) = false;
};

// FUSE_NOTIFY_RESEND (kernel 6.9+): the kernel queues again every request
// of connection `fuse_fd` that was read and not answered.
absl::Status ResendUnanswered(int fuse_fd);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_INIT_REPLAY_H_
