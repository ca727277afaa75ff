// Small files' contents that came with their open reply, kept until the
// kernel's first read of the open file.
//
// `cat` of a small file costs an open and a read round trip. A backend may
// send a small file whole with the open (OpenReply.contents); the first
// read, which the kernel sends right after, is then answered from here.
// Only that first read, at offset 0: later reads (tail -f reading past the
// end, a second pass) go to the backend, so nothing is served from a
// snapshot older than the open. A write, truncate or allocation that
// reaches the same file through another handle forgets its contents.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_FUSE_OPEN_CONTENTS_H_
#define FUSE_HOSTD_DAEMON_FUSE_OPEN_CONTENTS_H_

#include <fcntl.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/open_flags.h"

namespace fusehost {

// An open that asks nothing but reading: read-only, and none of the flags
// that ask more of an open (O_TRUNC, O_DIRECT, O_NOATIME, O_PATH, ...).
inline bool PlainReadOnly(int flags) {
  constexpr int kPlain = O_ACCMODE | kKernelLargeFile | O_NOFOLLOW |
                         O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  return (flags & O_ACCMODE) == O_RDONLY && (flags & ~kPlain) == 0;
}

// The largest file the daemon asks a backend for whole with its open
// (OpenRequest.contents_up_to), when its cache holds the file's size.
inline constexpr uint32_t kOpenContentsWanted = 64 << 10;

class OpenContents {
 public:
  // Contents beyond `max_bytes` in all are not kept (their reads go to the
  // backend as usual).
  explicit OpenContents(size_t max_bytes = 16 << 20) : max_bytes_(max_bytes) {}

  // `data` is the whole file behind handle `fh` of inode `ino`.
  void Keep(uint64_t fh, uint64_t ino, std::string data);
  // A read of `size` bytes at `off` through `fh`: if it is the first read,
  // at offset 0, and the contents are kept, moves what the backend would
  // have answered into *out (a short read means end of file), forgets the
  // contents and returns true.
  bool TakeFirstRead(uint64_t fh, off_t off, size_t size, std::string* out);
  // The handle was released (or its open reply was not taken).
  void ForgetHandle(uint64_t fh);
  // The file changed through the daemon.
  void ForgetInode(uint64_t ino);

 private:
  struct Kept {
    uint64_t ino;
    std::string data;
  };

  const size_t max_bytes_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Kept> by_handle_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_OPEN_CONTENTS_H_
