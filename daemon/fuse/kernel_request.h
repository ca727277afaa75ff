// One kernel request, and the one place where a result becomes the
// kernel's reply.
//
// The request handlers never see libfuse: they get a KernelRequest and
// answer it with exactly one of the Reply* calls below, from whatever thread
// the answer arrives on. Each reply records the request's statistics (its
// kind, latency from arrival, errno). A second reply, or a request dropped
// without any, is a broken invariant and aborts with the request's kind in
// the message: the alternative is a process hung in the kernel forever.
//
// The kernel may interrupt a request (its caller got a signal, or was
// killed: a killed process waits for the answer to a request it has sent).
// An implementation then calls AnswerInterrupt(); if that wins, the request
// is answered EINTR there and the reply that comes later is dropped: the
// Reply* calls that report whether the kernel took the reply return false,
// so that a lookup reference or a handle it carried is given back.
//
// The session (libfuse_session.cc) implements the Send* methods with
// fuse_reply_*; tests implement them with a recorder (FakeRequest).
//
// Thread-safe for one reply from any thread; the accessors are read-only.

#ifndef FUSE_HOSTD_DAEMON_FUSE_KERNEL_REQUEST_H_
#define FUSE_HOSTD_DAEMON_FUSE_KERNEL_REQUEST_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/stats/mount_stats.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// A name handed to the kernel: a node and its attributes, with how long the
// kernel may cache each. Node 0 with an entry timeout caches an absence.
struct KernelEntry {
  uint64_t node = 0;
  struct stat attr = {};
  double attr_timeout = 0;
  double entry_timeout = 0;
};

// The answer to an open, create or opendir.
struct KernelOpenReply {
  uint64_t fh = 0;
  bool direct_io = false;
  bool keep_cache = false;
  bool nonseekable = false;
  bool noflush = false;
  bool cache_readdir = false;
  // > 0: the kernel reads, writes and maps the file through this backing
  // file itself (passthrough, see daemon/passthrough).
  int32_t backing_id = 0;
  // If set, the sender sets it when it could not attach backing_id (the
  // reply then went out as direct I/O).
  bool* backing_refused = nullptr;
};

class KernelRequest {
 public:
  KernelRequest(KernelOp op, MountStats* stats)
      : op_(op), arrival_(absl::Now()), stats_(stats) {}
  virtual ~KernelRequest();
  KernelRequest(const KernelRequest&) = delete;
  KernelRequest& operator=(const KernelRequest&) = delete;

  KernelOp op() const { return op_; }
  absl::Time arrival() const { return arrival_; }

  // Who asks: uid, gid, pid, umask and supplementary groups.
  virtual void FillCaller(v1::Caller* out) = 0;

  // ---- replies: exactly one per request -------------------------------------
  // An errno, or 0 for success of a request that returns nothing.
  void ReplyError(int posix_errno);
  // No reply at all (forget).
  void ReplyNone();
  // The Reply* calls below that return bool say whether the kernel took the
  // reply: false when the request was interrupted meanwhile, and a lookup
  // reference or handle it carried must then be given back by the caller.
  bool ReplyEntry(const KernelEntry& entry);
  void ReplyAttr(const struct stat& attr, double timeout);
  void ReplyReadlink(const std::string& target);
  bool ReplyOpen(const KernelOpenReply& open);
  bool ReplyCreate(const KernelEntry& entry, const KernelOpenReply& open);
  // File data, a readdir buffer or an xattr value.
  // False if the kernel did not take it (the request was abandoned):
  // lookup references a readdirplus buffer hands out were never received.
  bool ReplyData(absl::string_view data);
  // Bytes written (write, copy_file_range).
  void ReplyWritten(size_t count);
  void ReplyStatfs(const struct statvfs& st);
  // The size an xattr value (or name list) needs.
  void ReplyXattrSize(size_t size);
  void ReplyLock(const struct flock& lock);
  void ReplyLseek(off_t offset);
  // An ioctl's return value and the data it passes back.
  void ReplyIoctl(int result, absl::string_view out);

  bool replied() const { return state_.load() != kPending; }

 protected:
  // The kernel interrupted the request: true if it was still unanswered,
  // and the caller must now answer EINTR (and nothing else).
  bool AnswerInterrupt();

  // Each returns 0, or a negative errno when the kernel did not take the
  // reply. Called at most once per request, after the statistics.
  virtual int SendError(int posix_errno) = 0;
  virtual void SendNone() = 0;
  virtual int SendEntry(const KernelEntry& entry) = 0;
  virtual int SendAttr(const struct stat& attr, double timeout) = 0;
  virtual int SendReadlink(const std::string& target) = 0;
  virtual int SendOpen(const KernelOpenReply& open) = 0;
  virtual int SendCreate(const KernelEntry& entry,
                         const KernelOpenReply& open) = 0;
  virtual int SendData(absl::string_view data) = 0;
  virtual int SendWritten(size_t count) = 0;
  virtual int SendStatfs(const struct statvfs& st) = 0;
  virtual int SendXattrSize(size_t size) = 0;
  virtual int SendLock(const struct flock& lock) = 0;
  virtual int SendLseek(off_t offset) = 0;
  virtual int SendIoctl(int result, absl::string_view out) = 0;

 private:
  // Marks the request answered (aborting on a second answer) and records
  // its statistics; false when it was answered EINTR already.
  bool Finish(int posix_errno);

  enum State : int { kPending, kAnswered, kInterrupted };

  const KernelOp op_;
  const absl::Time arrival_;
  MountStats* const stats_;
  std::atomic<int> state_{kPending};
};

// Requests are shared between the handler that received one and the
// completion callbacks that answer it.
using Request = std::shared_ptr<KernelRequest>;

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_KERNEL_REQUEST_H_
