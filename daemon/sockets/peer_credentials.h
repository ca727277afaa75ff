// Who is at the other end of a Unix stream socket, as the kernel recorded it
// when the connection was made (SO_PEERCRED, SO_PEERGROUPS). These are the
// only identities the daemon trusts: nothing a client sends can claim one.
//
// Thread-safe: plain data and a pure function.

#ifndef FUSE_HOSTD_DAEMON_SOCKETS_PEER_CREDENTIALS_H_
#define FUSE_HOSTD_DAEMON_SOCKETS_PEER_CREDENTIALS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fusehost {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  // Supplementary groups at connect time (may include gid).
  std::vector<gid_t> groups;

  bool is_root() const { return uid == 0; }
};

// Credentials of the peer of connected AF_UNIX socket `fd`.
absl::StatusOr<PeerCredentials> GetPeerCredentials(int fd);

// "uid=1001(alice) pid=4242", for log lines. Resolves the user name.
std::string DescribePeer(const PeerCredentials& peer);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SOCKETS_PEER_CREDENTIALS_H_
