#include "client/descriptor_sender.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace fusehost {

DescriptorSender::~DescriptorSender() {
  absl::MutexLock lock(&mu_);
  for (auto& [mount, fd] : sockets_) close(fd);
}

bool DescriptorSender::Connect(uint64_t mount_id, const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    close(fd);
    return false;
  }
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = sockets_.try_emplace(mount_id, fd);
  if (!inserted) {
    close(it->second);
    it->second = fd;
  }
  return true;
}

bool DescriptorSender::Send(uint64_t mount_id, uint64_t tag, int fd) const {
  absl::MutexLock lock(&mu_);
  auto it = sockets_.find(mount_id);
  if (it == sockets_.end() || tag == 0 || fd < 0) return false;
  struct iovec iov = {&tag, sizeof(tag)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(it->second, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) ==
         static_cast<ssize_t>(sizeof(tag));
}

void DescriptorSender::Forget(uint64_t mount_id) {
  absl::MutexLock lock(&mu_);
  auto it = sockets_.find(mount_id);
  if (it == sockets_.end()) return;
  close(it->second);
  sockets_.erase(it);
}

}  // namespace fusehost
