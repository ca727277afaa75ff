// The one place where a backend's words become trusted data.
//
// Sits directly above the backend channel: every result of every op passes
// through it before any cache, the batcher's callers or the kernel layer see
// it, and every invalidation notice is checked here before it is applied.
// Above this layer nothing re-checks what a backend sent.
//
// What a result must satisfy (anything else is repaired or refused):
//   posix_errno       0 or 1..kMaxErrno; otherwise EIO. On failure every
//                     payload is dropped.
//   payload           the result field that matches the op; a required one
//                     missing (getattr without attributes, read without
//                     data, ...) is EIO.
//   Attr              a real file type (S_IFREG, S_IFDIR, ...). A required
//                     Attr without one is EIO; an optional one (parent_attr,
//                     write.attr, entry.attr) is dropped. xattr names listed
//                     with it must be valid names, or the list is dropped.
//   readdir           entries named "", containing "/" or NUL or longer
//                     than 255 bytes are dropped, as are repeated names
//                     within the page ("." and ".." are left to the
//                     directory handle, which skips them); an attr with no
//                     real file type is dropped (the entry stays, with
//                     `type` if valid).
//   sizes             data longer than the read asked for is cut; a write
//                     or copy_file_range may not report more bytes than it
//                     was given; ioctl data longer than the caller's buffer
//                     is cut.
//   readlink          a target that is empty or has a NUL is EIO; longer
//                     than PATH_MAX - 1 bytes, it is cut.
//   open contents     only when no larger than kMaxOpenContents.
//   size caps         a listing page of more than kMaxPageEntries entries or
//                     kMaxPageNameBytes bytes of names, or an xattr value or
//                     list over XATTR_SIZE_MAX (64 KiB), is EIO: no single
//                     reply makes the daemon hold more than it must.
//   lseek, getlk,     a negative offset, an unknown lock type or a
//   ioctl             negative ioctl result is EIO.
// Every repair is logged (rate-limited) and counted in the mount's stats.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_REPLY_VALIDATOR_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_REPLY_VALIDATOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/pipeline/op_transport.h"
#include "daemon/stats/mount_stats.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// What an op allows its result to be: taken from the op when it is sent,
// so that the op itself (a write's data) need not be kept.
struct ReplyExpectation {
  v1::Op::OpCase op = v1::Op::OP_NOT_SET;
  // read: bytes asked for; write: bytes given; copy_file_range: length;
  // ioctl: the caller's buffer (out_size).
  uint64_t size = 0;
  // lock: F_GETLK needs the lock in the reply; F_SETLK(W) returns nothing.
  bool getlk = false;
  // What the name an op makes must be (CreatedFileType, stat_convert.h).
  uint32_t created_type = 0;

  static ReplyExpectation Of(const v1::Op& op);
};

// Checks and repairs one result in place. Returns the problems found, one
// short phrase each; empty when the result was fine as sent.
std::vector<std::string> ValidateResult(const ReplyExpectation& expect,
                                        v1::OpResult* result);

// Checks a backend notice: a valid kind and a valid absolute path (no empty,
// "." or ".." components, no NUL, each component at most 255 bytes).
// Returns the problem, or "" if there is none.
std::string ValidateNotice(const v1::Invalidation& notice);

// Largest file a backend may send whole with its open reply.
inline constexpr size_t kMaxOpenContents = 1 << 20;
// Largest listing page.
inline constexpr int kMaxPageEntries = 1 << 16;
inline constexpr size_t kMaxPageNameBytes = 8 << 20;

class ReplyValidator : public OpTransport, public BatchSink {
 public:
  struct Options {
    // The channel, seen as the two interfaces it implements. Must outlive
    // the validator.
    BatchSink* sink = nullptr;
    OpTransport* transport = nullptr;
    MountStats* stats = nullptr;  // may be null
    // Names the mount in log lines.
    std::string log_name;
  };

  explicit ReplyValidator(Options options);

  void SendBatch(std::vector<PendingOp> ops, std::function<void()> sent,
                 bool in_order) override;
  void Send(v1::Op op, Done done) override;
  void CancelAll() override { options_.transport->CancelAll(); }
  void WaitIdle() override { options_.transport->WaitIdle(); }

  // Validates a notice, logging and counting a bad one. True if it may be
  // applied.
  bool AcceptNotice(const v1::Invalidation& notice);

 private:
  Done Checked(const v1::Op& op, Done done);
  void Report(const char* what, const std::vector<std::string>& problems);

  const Options options_;
  // Log lines are limited to a burst per minute so that a hostile backend
  // cannot flood the daemon's log; the stats count everything.
  std::atomic<int64_t> log_window_start_{0};
  std::atomic<int> logged_in_window_{0};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_REPLY_VALIDATOR_H_
