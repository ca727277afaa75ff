#include "daemon/authz/backend_dialer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/sockets/peer_credentials.h"

namespace fusehost {

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path,
                                     absl::Duration timeout) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", path, " is empty or too long"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return absl::UnavailableError(
          absl::StrCat("connect ", path, ": ", strerror(errno)));
    }
    // A full listen queue: wait a while for room.
    struct pollfd pfd = {fd.get(), POLLOUT, 0};
    int ready = poll(&pfd, 1, absl::ToInt64Milliseconds(timeout));
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready <= 0 ||
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
      return absl::UnavailableError(absl::StrCat(
          "connect ", path, ": ", ready <= 0 ? "timed out" : strerror(err)));
    }
  }
  return fd;
}

BackendDialer::BackendDialer(Options options)
    : options_(std::move(options)), backend_uid_(options_.backend_uid) {}

std::optional<uid_t> BackendDialer::backend_uid() const {
  absl::MutexLock lock(&mu_);
  return backend_uid_;
}

absl::StatusOr<UniqueFd> BackendDialer::Dial() {
  absl::StatusOr<UniqueFd> fd =
      options_.connect_as
          ? ConnectUnixAsUser(*options_.connect_as, options_.socket_path,
                              options_.timeout)
          : ConnectUnix(options_.socket_path, options_.timeout);
  if (!fd.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "backend ", options_.backend_name, " is unreachable: ",
        fd.status().message()));
  }
  absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(fd->get());
  if (!peer.ok()) return peer.status();
  absl::MutexLock lock(&mu_);
  if (!backend_uid_) backend_uid_ = peer->uid;
  if (peer->uid != *backend_uid_) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing connection to backend ", options_.backend_name,
        ": it is now served by ", DescribePeer(*peer), ", not by uid ",
        *backend_uid_, " as when it was mounted"));
  }
  backend_pid_ = peer->pid;
  return fd;
}

}  // namespace fusehost

namespace fusehost {

std::optional<pid_t> BackendDialer::backend_pid() const {
  absl::MutexLock lock(&mu_);
  return backend_pid_;
}

}  // namespace fusehost
