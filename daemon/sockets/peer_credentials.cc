#include "daemon/sockets/peer_credentials.h"

#include <pwd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fusehost {

absl::StatusOr<PeerCredentials> GetPeerCredentials(int fd) {
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::InternalError(
        absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  // SO_PEERGROUPS says ERANGE and the needed size when the buffer is short.
  std::vector<gid_t> groups(64);
  for (;;) {
    len = groups.size() * sizeof(gid_t);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || len <= groups.size() * sizeof(gid_t)) {
      return absl::InternalError(
          absl::StrCat("SO_PEERGROUPS: ", std::strerror(errno)));
    }
    groups.resize(len / sizeof(gid_t));
  }
  peer.groups = std::move(groups);
  return peer;
}

std::string DescribePeer(const PeerCredentials& peer) {
  std::string name;
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(peer.uid, &pw, buf, sizeof(buf), &found) == 0 &&
      found != nullptr) {
    name = found->pw_name;
  }
  return absl::StrCat("uid=", peer.uid, name.empty() ? "" : "(", name,
                      name.empty() ? "" : ")", " pid=", peer.pid);
}

}  // namespace fusehost
