#include "daemon/control/control_listener.h"
#include "common/log_line.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <grpcpp/server_posix.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fusehost {

ControlListener::ControlListener(Options options)
    : options_(options),
      acceptor_(Acceptor::Options{options.listen_fd,
                                  SOCK_CLOEXEC | SOCK_NONBLOCK,
                                  "control socket",
                                  [this](int fd) { Accept(fd); }}) {}

ControlListener::~ControlListener() { Stop(); }

void ControlListener::Start() { acceptor_.Start(); }

void ControlListener::Stop() { acceptor_.Stop(); }

void ControlListener::Accept(int fd) {
  absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(fd);
  struct stat st;
  if (!peer.ok() || fstat(fd, &st) != 0) {
    Log("dropping control connection: %s",
            peer.ok() ? strerror(errno)
                      : std::string(peer.status().message()).c_str());
    close(fd);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    const size_t limit = options_.max_connections_per_uid;
    if (limit != 0 && peer->uid != 0 && OpenConnectionsLocked(peer->uid) >= limit) {
      Log("audit: %s: refusing a control connection: already %zu open",
          DescribePeer(*peer), limit);
      close(fd);
      return;
    }
    connections_[fd] = Connection{*std::move(peer), st.st_ino};
  }
  // From here on gRPC owns fd (it wants it non-blocking, as accepted).
  grpc::AddInsecureChannelFromFd(options_.server, fd);
}

size_t ControlListener::OpenConnectionsLocked(uid_t uid) {
  // gRPC closes a connection's descriptor without telling; a record whose
  // descriptor is closed, or now names another socket, is stale.
  size_t open = 0;
  for (auto it = connections_.begin(); it != connections_.end();) {
    struct stat st;
    if (fstat(it->first, &st) != 0 || st.st_ino != it->second.inode) {
      connections_.erase(it++);
      continue;
    }
    if (it->second.peer.uid == uid) ++open;
    ++it;
  }
  return open;
}

absl::StatusOr<PeerCredentials> ControlListener::CallerOf(
    const grpc::ServerContext& context) const {
  std::string peer = context.peer();
  int fd = -1;
  if (!absl::StartsWith(peer, "fd:") ||
      !absl::SimpleAtoi(absl::string_view(peer).substr(3), &fd) || fd < 0) {
    return absl::UnauthenticatedError(absl::StrCat(
        "connection ", peer, " did not come through the control listener"));
  }
  Connection c;
  {
    absl::MutexLock lock(&mu_);
    auto it = connections_.find(fd);
    if (it == connections_.end()) {
      return absl::UnauthenticatedError(
          absl::StrCat("unknown control connection ", peer));
    }
    c = it->second;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_ino != c.inode) {
    return absl::UnauthenticatedError(
        absl::StrCat("control connection ", peer, " changed under its call"));
  }
  return c.peer;
}

}  // namespace fusehost
