// Small helpers around the host syscalls that LoopbackFs's operations make,
// shared by the files that implement them (loopback_fs*.cc): errno results,
// the thread's umask, and sized fetches of extended attributes.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_CALLS_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_CALLS_H_

#include <sys/types.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace fusehost {
namespace examples {

// The errno of a failed syscall (result < 0), else 0. Called right after the
// syscall, before any other call can overwrite errno.
inline int ErrnoOf(long result) { return result < 0 ? errno : 0; }

inline bool HasNul(absl::string_view s) {
  return s.find('\0') != absl::string_view::npos;
}

// Gives the calling thread a umask of its own and sets it to 0: the modes
// the daemon sends already have the caller's umask applied. Unsharing again
// on a thread that already has its own is a cheap no-op in the kernel.
void ClearThreadUmask();

// Runs `fetch(buffer, size)`, which behaves like getxattr/listxattr, first
// to learn the size and then to fill a buffer of it. Retries when the value
// grew in between (ERANGE). Appends the result to *out.
int FetchSized(absl::FunctionRef<ssize_t(char*, size_t)> fetch,
               std::string* out);

// llistxattr(2) of `name` in directory `dir_fd`: listxattrat(2) (Linux
// 6.13), or on an older kernel (or under a seccomp filter that refuses it)
// llistxattr(2) of its /proc/self/fd path, which costs twice as much (a walk
// through /proc) and was a listing's largest cost per entry.
ssize_t ListxattrAt(int dir_fd, const char* name, char* list, size_t size);

// The extended attribute names of `name` in directory `dir_fd` (not
// following a final symlink), or false if they cannot be listed. One
// ListxattrAt for the usual file with few or no names.
bool ListXattrNamesAt(int dir_fd, const char* name,
                      std::vector<std::string>* names);

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_CALLS_H_
