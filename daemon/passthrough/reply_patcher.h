// Adds passthrough to the replies libfuse 3.14 writes, which has no API for
// it: the daemon reads and writes /dev/fuse itself (session_io.h) and shows
// every request and reply to this class first.
//
//   INIT reply      gets FUSE_PASSTHROUGH and max_stack_depth 1, but only if
//                   the kernel's INIT request offered FUSE_PASSTHROUGH and
//                   the reply does not ask for the writeback cache (which
//                   the kernel refuses to combine with passthrough).
//   OPEN / CREATE   a reply the daemon asks to patch (it registered a
//   reply           backing file for it) gets FOPEN_PASSTHROUGH and the
//                   backing id, if it is a well-formed successful reply to
//                   an OPEN or CREATE request the patcher saw being read
//                   (matched by `unique`) and INIT was patched.
//
// An open reply that cannot be patched goes out with FOPEN_DIRECT_IO
// instead, which the kernel accepts whatever other opens of the inode do
// (see backing_files.h), and the caller releases its backing id.
//
// Thread-safe: requests are read and replies written on many threads.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_REPLY_PATCHER_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_REPLY_PATCHER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

class ReplyPatcher {
 public:
  enum class Outcome {
    kUntouched,  // not a reply anyone asked to change
    kPatched,    // passthrough added
    kRefused,    // asked for, not applicable: sent as direct I/O
  };

  // `offer`: whether to ask the kernel for passthrough at INIT at all.
  explicit ReplyPatcher(bool offer) : offer_(offer) {}

  // A request as read from /dev/fuse (`size` bytes at `data`).
  void SawRequest(const void* data, size_t size);

  // A reply about to be written, contiguous and writable. `backing_id`:
  // the backing file to attach if it answers an OPEN or CREATE (0: none).
  Outcome PatchReply(char* data, size_t size, int32_t backing_id);

  // The kernel's INIT request has been read.
  bool saw_init() const { return saw_init_.load(); }
  // The kernel offered FUSE_PASSTHROUGH in its INIT request.
  bool kernel_offered() const { return kernel_offered_.load(); }
  // The INIT reply went out with passthrough: the kernel accepts
  // FOPEN_PASSTHROUGH replies and backing-file ioctls from now on.
  bool enabled() const { return enabled_.load(); }

 private:
  bool PatchInit(char* data, size_t size);

  const bool offer_;
  std::atomic<bool> saw_init_{false};
  std::atomic<bool> kernel_offered_{false};
  std::atomic<bool> enabled_{false};
  std::atomic<uint64_t> init_unique_{0};
  absl::Mutex mu_;
  // OPEN and CREATE requests read but not answered yet: unique -> opcode.
  absl::flat_hash_map<uint64_t, uint32_t> open_requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_REPLY_PATCHER_H_
