#include "examples/loopback/host_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace examples {

std::string ProcFdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

std::string ProcFdPath(int dir_fd, const char* name) {
  return absl::StrCat("/proc/self/fd/", dir_fd, "/", name);
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) close(fd_);
}

bool Openat2Works(int dir_fd) {
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  int probe =
      static_cast<int>(syscall(SYS_openat2, dir_fd, ".", &how, sizeof(how)));
  if (probe < 0) return false;
  close(probe);
  return true;
}

int OpenBeneath(int root_fd, const std::string& rel, int flags,
                bool use_openat2) {
  if (!use_openat2) return openat(root_fd, rel.c_str(), flags | O_NOFOLLOW);
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  int fd;
  // EAGAIN: a rename elsewhere raced with the lookup; openat2 asks to retry.
  do {
    fd = static_cast<int>(
        syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof(how)));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

int ReadAllEntries(int fd, std::vector<RawEntry>* out) {
  if (lseek(fd, 0, SEEK_SET) < 0) return errno;
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    ssize_t n = getdents64(fd, buffer.data(), buffer.size());
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (ssize_t pos = 0; pos < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(&buffer[pos]);
      pos += d->d_reclen;
      if (std::strcmp(d->d_name, ".") == 0 ||
          std::strcmp(d->d_name, "..") == 0) {
        continue;
      }
      out->push_back({d->d_name, d->d_type});
    }
  }
}

}  // namespace examples
}  // namespace fusehost
