// Reading the host directory tree that a loopback filesystem mirrors, shared
// by the operations (LoopbackFs) and the change watcher (TreeWatcher): both
// must reach directories below the root without ever being led outside it.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_TREE_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_TREE_H_

#include <string>
#include <vector>

namespace fusehost {
namespace examples {

// Where path-based syscalls without an *at() form (xattrs, truncate,
// inotify_add_watch) can reach a descriptor, or a name in a directory
// descriptor. The kernel lets a thread follow its own process's
// /proc/self/fd links whatever its fsuid.
std::string ProcFdPath(int fd);
std::string ProcFdPath(int dir_fd, const char* name);

// A descriptor closed when the scope ends.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Whether openat2(2) works here (Linux >= 5.6 and not filtered by seccomp),
// probed on directory descriptor `dir_fd`.
bool Openat2Works(int dir_fd);

// Opens `rel` ("a/b", or "." for the root itself), a path relative to
// directory descriptor `root_fd`, with open(2) `flags`. With `use_openat2`
// no component may be a symlink and the path cannot leave the root; without
// it, only the last component is refused when it is a symlink (O_NOFOLLOW).
// Returns the descriptor, or -1 with errno set.
int OpenBeneath(int root_fd, const std::string& rel, int flags,
                bool use_openat2);

// One name read from a directory, with the type getdents reported (DT_*;
// DT_UNKNOWN on filesystems that do not say).
struct RawEntry {
  std::string name;
  unsigned char type;
};

// Appends every entry of directory `fd`, read from its start, to `*out`,
// skipping "." and "..". Returns 0 or an errno. Moves the descriptor's
// offset, which is shared by all users of the descriptor.
int ReadAllEntries(int fd, std::vector<RawEntry>* out);

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_HOST_TREE_H_
