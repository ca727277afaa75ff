#include "daemon/sockets/acceptor.h"
#include "common/log_line.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace fusehost {

Acceptor::Acceptor(Options options)
    : options_(std::move(options)), wake_fd_(eventfd(0, EFD_CLOEXEC)) {}

Acceptor::~Acceptor() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Acceptor::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Acceptor::Stop() {
  if (stopped_) return;
  stopped_ = true;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  if (options_.listen_fd >= 0) close(options_.listen_fd);
}

void Acceptor::Loop() {
  for (;;) {
    struct pollfd fds[2] = {{options_.listen_fd, POLLIN, 0},
                            {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log("%s: poll: %s", options_.name.c_str(),
              strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int fd = accept4(options_.listen_fd, nullptr, nullptr,
                     options_.accept_flags);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      // Out of descriptors and the like: say so, and back off rather than
      // spin on a socket that stays readable.
      Log("%s: accept: %s", options_.name.c_str(),
              strerror(errno));
      poll(nullptr, 0, 100);
      continue;
    }
    options_.on_accept(fd);
  }
}

}  // namespace fusehost
