#include "daemon/passthrough/descriptor_inbox.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log_line.h"

namespace fusehost {
namespace {

// A backend's processes: a handful of connections at most.
constexpr size_t kMaxConnections = 4;
// Room for a few descriptors, so that a message carrying more than one is
// seen whole (and all of them closed) rather than cut.
constexpr size_t kMaxFdsPerMessage = 4;

}  // namespace

absl::StatusOr<std::unique_ptr<DescriptorInbox>> DescriptorInbox::Create(
    Options options) {
  std::unique_ptr<DescriptorInbox> inbox(
      new DescriptorInbox(std::move(options)));
  const std::string& path = inbox->options_.socket_path;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError(std::strerror(errno));
  unlink(path.c_str());
  if (bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return absl::InternalError(
        absl::StrCat("bind ", path, ": ", std::strerror(errno)));
  }
  // Any backend user must be able to connect: who connected is checked
  // on accept, not by the file's mode.
  if (chmod(path.c_str(), 0666) != 0 || listen(fd.get(), 8) != 0) {
    int err = errno;
    unlink(path.c_str());
    return absl::InternalError(
        absl::StrCat("listen ", path, ": ", std::strerror(err)));
  }
  inbox->listener_ = std::move(fd);
  return inbox;
}

DescriptorInbox::~DescriptorInbox() {
  if (listener_.valid()) unlink(options_.socket_path.c_str());
}

void DescriptorInbox::AcceptPending() {
  for (;;) {
    UniqueFd conn(accept4(listener_.get(), nullptr, nullptr,
                          SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn.valid()) return;  // EAGAIN, or nothing more to take
    absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(conn.get());
    if (!peer.ok() || !options_.is_backend || !options_.is_backend(*peer)) {
      ++refused_peers_;
      Log("%s: refusing a descriptor connection from %s: not the backend's "
          "process",
          options_.log_name.c_str(),
          peer.ok() ? DescribePeer(*peer).c_str() : "an unknown peer");
      continue;  // closed unread
    }
    if (connections_.size() >= kMaxConnections) {
      connections_.erase(connections_.begin());
    }
    connections_.push_back(
        {std::move(conn),
         std::make_shared<const PeerCredentials>(*std::move(peer))});
  }
}

void DescriptorInbox::Keep(uint64_t tag, Waiting w) {
  auto [it, inserted] = waiting_.try_emplace(tag, std::move(w));
  if (!inserted) {
    // A second descriptor for one tag: neither can be trusted to be the
    // one meant.
    waiting_.erase(it);
    dropped_ += 2;
    return;
  }
  arrival_order_.push_back(tag);
  while (waiting_.size() > options_.max_waiting && !arrival_order_.empty()) {
    dropped_ += waiting_.erase(arrival_order_.front());
    arrival_order_.pop_front();
  }
  // Tags already taken or dropped leave stale entries in the order.
  if (arrival_order_.size() > 4 * options_.max_waiting) {
    std::deque<uint64_t> live;
    for (uint64_t t : arrival_order_) {
      if (waiting_.contains(t)) live.push_back(t);
    }
    arrival_order_.swap(live);
  }
}

bool DescriptorInbox::Drain(const Connection& conn) {
  const int fd = conn.fd.get();
  for (;;) {
    uint64_t tag = 0;
    struct iovec iov = {&tag, sizeof(tag)};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) *
                                                    kMaxFdsPerMessage)];
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    // Descriptors that came are ours now, even with no data (a zero-length
    // message, which reads as 0 like the end of the connection): every one
    // is taken into `fds` before anything else, so none can leak.
    std::vector<UniqueFd> fds;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.emplace_back(received);
      }
    }
    if (n == 0 && fds.empty()) return false;  // the backend closed its end
    bool well_formed = n == sizeof(tag) && fds.size() == 1 && tag != 0 &&
                       (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
    if (!well_formed) {
      dropped_ += fds.size();
      continue;  // whatever came is closed here
    }
    Keep(tag, {std::move(fds[0]), conn.peer});
  }
}

UniqueFd DescriptorInbox::Take(uint64_t tag, PeerCredentials* sender) {
  absl::MutexLock lock(&mu_);
  if (!waiting_.contains(tag)) {
    AcceptPending();
    for (auto it = connections_.begin(); it != connections_.end();) {
      it = Drain(*it) ? it + 1 : connections_.erase(it);
    }
  }
  auto it = waiting_.find(tag);
  if (it == waiting_.end()) return UniqueFd();
  UniqueFd fd = std::move(it->second.fd);
  if (sender != nullptr) *sender = *it->second.sender;
  waiting_.erase(it);
  return fd;
}

void DescriptorInbox::Put(uint64_t tag, UniqueFd fd) {
  static const auto* const daemon = new std::shared_ptr<const PeerCredentials>(
      std::make_shared<PeerCredentials>(
          PeerCredentials{getpid(), geteuid(), getegid(), {}}));
  absl::MutexLock lock(&mu_);
  Keep(tag, Waiting{std::move(fd), *daemon});
}

uint64_t DescriptorInbox::refused_peers() const {
  absl::MutexLock lock(&mu_);
  return refused_peers_;
}

uint64_t DescriptorInbox::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

}  // namespace fusehost
