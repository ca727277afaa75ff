// One datagram of any shape with descriptors attached, as a peer that
// breaks a protocol's rules may send it (a hostile backend, a daemon that
// exceeds the keeper's limits): what the code under test must refuse.

#ifndef FUSE_HOSTD_TESTS_DAEMON_TESTING_RAW_DATAGRAM_H_
#define FUSE_HOSTD_TESTS_DAEMON_TESTING_RAW_DATAGRAM_H_

#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

namespace fusehost {

// Sends `payload` with `fds` attached on `sock`; true if it went whole.
inline bool SendRaw(int sock, const std::string& payload,
                    const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(payload.data()), payload.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL) ==
         static_cast<ssize_t>(payload.size());
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_TESTING_RAW_DATAGRAM_H_
