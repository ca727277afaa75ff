// Descriptors whose passage through the keeper a test can see: memfds that
// hold a few bytes (the same file read back through another descriptor),
// and pipes whose read end reports once every copy of the write end is
// closed (a descriptor really closed, not only forgotten).

#ifndef FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_DESCRIPTOR_PROBES_H_
#define FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_DESCRIPTOR_PROBES_H_

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"

namespace fusehost {

// A memfd holding `contents`.
inline UniqueFd MemfdWith(const std::string& contents) {
  UniqueFd fd(memfd_create("probe", MFD_CLOEXEC));
  if (fd.valid() &&
      pwrite(fd.get(), contents.data(), contents.size(), 0) !=
          static_cast<ssize_t>(contents.size())) {
    fd.reset();
  }
  return fd;
}

// What the file behind `fd` holds (up to 256 bytes), read from its start.
inline std::string ContentsOf(int fd) {
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof(buf), 0);
  return n < 0 ? std::string("<unreadable>") : std::string(buf, n);
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

inline Pipe MakePipe() {
  int fds[2] = {-1, -1};
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True once every write end of the pipe is closed (read sees end of file),
// waiting at most a second for it.
inline bool WriteEndsClosed(const Pipe& p) {
  struct pollfd pfd = {p.read_end.get(), POLLIN, 0};
  if (poll(&pfd, 1, 1000) != 1) return false;
  char c;
  return read(p.read_end.get(), &c, 1) == 0;
}

inline bool IsCloseOnExec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

inline bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

// A connected SOCK_SEQPACKET pair, close-on-exec.
struct SocketPair {
  UniqueFd a;
  UniqueFd b;
};

inline SocketPair MakeSocketPair(int extra_flags = SOCK_CLOEXEC) {
  int fds[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | extra_flags, 0, fds) != 0) {
    return {};
  }
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_DESCRIPTOR_PROBES_H_
