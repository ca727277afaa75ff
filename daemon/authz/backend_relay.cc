#include "daemon/authz/backend_relay.h"
#include "common/log_line.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/authz/authorizer.h"
#include "daemon/sockets/peer_credentials.h"

namespace fusehost {
namespace {

// Copies `from` to `to` until end of file or an error. At end of file the
// write side of `to` is shut down, so the other end sees it too; on an
// error both sockets are shut down so that the other direction ends as well.
void Pump(int from, int to) {
  std::vector<char> buf(256 << 10);
  for (;;) {
    ssize_t n = read(from, buf.data(), buf.size());
    if (n == 0) {
      shutdown(to, SHUT_WR);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ssize_t done = 0;
    while (done < n) {
      ssize_t w = send(to, buf.data() + done, n - done, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) goto failed;
      done += w;
    }
  }
failed:
  shutdown(from, SHUT_RDWR);
  shutdown(to, SHUT_RDWR);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BackendRelay>> BackendRelay::Create(
    Options options) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (options.listen_path.size() >= sizeof(addr.sun_path)) {
    return absl::InternalError(absl::StrCat("relay socket path ",
                                            options.listen_path, " too long"));
  }
  memcpy(addr.sun_path, options.listen_path.data(), options.listen_path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  unlink(options.listen_path.c_str());  // left by a crashed daemon
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      chmod(options.listen_path.c_str(), 0600) != 0 ||
      listen(fd.get(), 16) != 0) {
    return absl::InternalError(absl::StrCat(
        "relay socket ", options.listen_path, ": ", strerror(errno)));
  }
  std::unique_ptr<BackendRelay> relay(
      new BackendRelay(std::move(options), fd.release()));
  relay->acceptor_.Start();
  return relay;
}

BackendRelay::BackendRelay(Options options, int listen_fd)
    : options_(std::move(options)),
      acceptor_(Acceptor::Options{listen_fd, SOCK_CLOEXEC,
                                  "relay " + options_.listen_path,
                                  [this](int fd) { Accept(fd); }}) {}

BackendRelay::~BackendRelay() { Stop(); }

void BackendRelay::Stop() {
  if (stopped_) return;
  stopped_ = true;
  acceptor_.Stop();
  unlink(options_.listen_path.c_str());
  std::list<std::unique_ptr<Link>> links;
  {
    absl::MutexLock lock(&mu_);
    links.swap(links_);
  }
  for (auto& link : links) {
    shutdown(link->daemon_side.get(), SHUT_RDWR);
    shutdown(link->backend_side.get(), SHUT_RDWR);
  }
  for (auto& link : links) link->thread.join();
}

void BackendRelay::Note(const std::string& message) {
  {
    absl::MutexLock lock(&mu_);
    if (message == last_note_) return;
    last_note_ = message;
  }
  Log("%s", message.c_str());
}

void BackendRelay::Accept(int fd) {
  UniqueFd daemon_side(fd);
  // Only the daemon's own channel may use the relay; the directory is
  // root-only, this is the second lock on the door.
  absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(fd);
  if (!peer.ok() || peer->pid != getpid()) return;
  absl::StatusOr<UniqueFd> backend = ConnectUnixAsUser(
      options_.user, options_.backend_socket, options_.dial_timeout);
  if (!backend.ok()) {
    Note(absl::StrCat("backend ", options_.backend_name,
                      " unreachable: ", backend.status().message()));
    return;
  }
  absl::Status owner = CheckBackendPeer(backend->get(), options_.user.uid,
                                        options_.backend_name);
  if (!owner.ok()) {
    Note(absl::StrCat("audit: refusing connection to backend: ",
                      owner.message()));
    return;
  }
  Note(absl::StrCat("connected to backend ", options_.backend_name,
                    " (runs as uid ", options_.user.uid, ")"));
  auto link = std::make_unique<Link>();
  link->daemon_side = std::move(daemon_side);
  link->backend_side = *std::move(backend);
  Link* raw = link.get();
  absl::MutexLock lock(&mu_);
  ReapLocked();
  link->thread = std::thread([this, raw] { Run(raw); });
  links_.push_back(std::move(link));
}

void BackendRelay::Run(Link* link) {
  int a = link->daemon_side.get();
  int b = link->backend_side.get();
  std::thread back([a, b] { Pump(b, a); });
  Pump(a, b);
  back.join();
  link->finished.store(true);
}

void BackendRelay::ReapLocked() {
  for (auto it = links_.begin(); it != links_.end();) {
    if ((*it)->finished.load()) {
      (*it)->thread.join();
      it = links_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace fusehost
