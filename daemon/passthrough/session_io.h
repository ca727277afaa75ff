// The daemon's own reads and writes of /dev/fuse for a session that may
// use passthrough (libfuse's fuse_session_custom_io hands them over): each
// request read and each reply written is shown to the ReplyPatcher.
//
// The handler that answers an open with a backing file says so for the one
// reply it is about to send through an OpenPatchScope on its own thread:
// libfuse writes the reply synchronously, on the thread that calls
// fuse_reply_open / fuse_reply_create.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_SESSION_IO_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_SESSION_IO_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>

#include "daemon/passthrough/reply_patcher.h"

namespace fusehost {

// read(2) of one request, seen by `patcher`.
ssize_t ReadKernelRequest(ReplyPatcher* patcher, int fd, void* buf,
                          size_t len);

// writev(2) of one reply or notification, patched where asked.
ssize_t WriteKernelReply(ReplyPatcher* patcher, int fd,
                         const struct iovec* iov, int count);

// Replies the patcher may change are all this small (INIT: 80 bytes,
// CREATE: 160); larger ones go as they are, without a copy.
inline constexpr size_t kPatchableReplySize = 256;

// The reply gathered into `reply` and patched where asked, for a writer of
// its own (an io_uring queue's commit). False, with nothing done, if it is
// too large to need patching.
bool PatchKernelReply(ReplyPatcher* patcher, const struct iovec* iov,
                      int count, char (&reply)[kPatchableReplySize],
                      size_t* size);

// While alive, the open or create reply this thread writes carries
// `backing_id`; outcome() says what became of it.
class OpenPatchScope {
 public:
  explicit OpenPatchScope(int32_t backing_id);
  ~OpenPatchScope();
  OpenPatchScope(const OpenPatchScope&) = delete;
  OpenPatchScope& operator=(const OpenPatchScope&) = delete;

  // kUntouched if no reply was written.
  ReplyPatcher::Outcome outcome() const { return outcome_; }

 private:
  friend bool PatchKernelReply(ReplyPatcher*, const struct iovec*, int,
                               char (&)[kPatchableReplySize], size_t*);
  int32_t backing_id_;
  ReplyPatcher::Outcome outcome_ = ReplyPatcher::Outcome::kUntouched;
  OpenPatchScope* outer_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_SESSION_IO_H_
