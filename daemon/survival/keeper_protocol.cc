#include "daemon/survival/keeper_protocol.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// Deadlines on the monotonic clock: a change of the wall clock must not
// stretch or cut a wait.
using Clock = std::chrono::steady_clock;

// Room for the most descriptors a message may carry. A message with more
// is cut by the kernel (MSG_CTRUNC), which closes the ones it drops.
union ControlBuffer {
  char bytes[CMSG_SPACE(sizeof(int) * kMaxKeeperFds)];
  struct cmsghdr align;
};

Clock::time_point DeadlineAfter(absl::Duration timeout) {
  // Beyond a century counts as forever; it also keeps the sum in range.
  if (timeout >= absl::Hours(24 * 365 * 100)) return Clock::time_point::max();
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  return Clock::now() + absl::ToChronoNanoseconds(timeout);
}

// Waits until `socket` is ready for `events` (or has failed: the next call
// on it says how), or until `deadline`.
absl::Status WaitFor(int socket, short events, Clock::time_point deadline) {
  for (;;) {
    int wait_ms = -1;
    if (deadline != Clock::time_point::max()) {
      Clock::duration left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        return absl::DeadlineExceededError(
            events == POLLIN ? "no message from the peer in time"
                             : "the peer took no message in time");
      }
      // Rounded up: a wait cut to 0 ms would spin until the deadline.
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      wait_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
    struct pollfd p = {socket, events, 0};
    int n = poll(&p, 1, wait_ms);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
  }
}

// The socket calls' errors; a peer that went away is Unavailable.
absl::Status SocketError(int err, absl::string_view call) {
  if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
    return absl::UnavailableError(
        absl::StrCat(call, ": the peer closed the socket"));
  }
  return absl::ErrnoToStatus(err, call);
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool IsPrintable(char c) { return c >= 0x20 && c <= 0x7e; }

// Every descriptor `msg` carries, owned (so closed with the message).
std::vector<UniqueFd> TakeDescriptors(struct msghdr& msg) {
  std::vector<UniqueFd> fds;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  return fds;
}

}  // namespace

bool IsKeeperKey(absl::string_view key) {
  if (key.empty() || key.size() > kMaxKeeperKey) return false;
  for (char c : key) {
    if (!IsKeyChar(c)) return false;
  }
  return true;
}

absl::StatusOr<KeeperHeader> ParseKeeperHeader(absl::string_view header) {
  for (char c : header) {
    if (!IsPrintable(c)) {
      return absl::InvalidArgumentError("header is not printable ASCII");
    }
  }
  size_t space = header.find(' ');
  absl::string_view verb = header.substr(0, space);
  if (verb.empty()) return absl::InvalidArgumentError("header has no verb");
  for (char c : verb) {
    if (c < 'A' || c > 'Z') {
      return absl::InvalidArgumentError("verb is not capital letters");
    }
  }
  KeeperHeader parsed;
  parsed.verb = std::string(verb);
  if (space != absl::string_view::npos) {
    parsed.argument = std::string(header.substr(space + 1));
  }
  return parsed;
}

std::string KeeperErrorHeader(absl::string_view text) {
  std::string header = absl::StrCat(kKeeperErr, " ");
  for (char c : text) {
    if (header.size() == kMaxKeeperHeader) break;
    header.push_back(IsPrintable(c) ? c : '?');
  }
  return header;
}

absl::Status SendMessage(int socket, absl::string_view header,
                         const std::vector<int>& fds, absl::Duration timeout) {
  if (header.empty() || header.size() > kMaxKeeperHeader) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a header has 1 to ", kMaxKeeperHeader, " bytes, not ", header.size()));
  }
  if (fds.size() > kMaxKeeperFds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a message carries at most ", kMaxKeeperFds, " descriptors, not ",
        fds.size()));
  }
  for (int fd : fds) {
    if (fd < 0) return absl::InvalidArgumentError("negative descriptor");
  }
  struct iovec iov = {const_cast<char*>(header.data()), header.size()};
  ControlBuffer control = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const Clock::time_point deadline = DeadlineAfter(timeout);
  for (;;) {
    ssize_t n = sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(header.size())) return absl::OkStatus();
    if (n >= 0) return absl::InternalError("sendmsg sent part of a datagram");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return SocketError(errno, "sendmsg");
    }
    absl::Status ready = WaitFor(socket, POLLOUT, deadline);
    if (!ready.ok()) return ready;
  }
}

absl::StatusOr<KeeperMessage> ReceiveMessage(int socket,
                                             absl::Duration timeout) {
  const Clock::time_point deadline = DeadlineAfter(timeout);
  char header[kMaxKeeperHeader];
  ControlBuffer control;
  struct iovec iov = {header, sizeof(header)};
  struct msghdr msg = {};
  ssize_t n;
  for (;;) {
    msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof(control.bytes);
    n = recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return SocketError(errno, "recvmsg");
    }
    absl::Status ready = WaitFor(socket, POLLIN, deadline);
    if (!ready.ok()) return ready;
  }
  KeeperMessage message;
  message.fds = TakeDescriptors(msg);
  if (n == 0) return absl::UnavailableError("the peer closed the socket");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message cut short: over ", kMaxKeeperHeader, " bytes of header or ",
        kMaxKeeperFds, " descriptors, or descriptors over the limit"));
  }
  message.header.assign(header, n);
  return message;
}

}  // namespace fusehost
