// Stands between the mount of a user other than root and that user's
// Unix-socket backend, so that *every* connection the daemon makes to the
// backend is checked, not just the first.
//
// The problem: gRPC dials the backend's socket path itself, as root, and
// dials it again whenever the backend restarts. A check made once before the
// mount says nothing about what the path leads to later: the user could stop
// their backend and put a symlink to another user's socket in its place, and
// root's reconnect would follow it.
//
// The relay: the mount's channel dials a private socket of the daemon's
// instead (in a root-only directory; only the daemon's own process is
// accepted). For each connection it accepts, the relay connects to the
// backend path *as the user* (so the user's own permissions decide what the
// path reaches; another user's owner-only socket is out of reach) and
// checks with SO_PEERCRED that the process at the other end runs as the
// user, before a single byte is forwarded. A failed check closes the
// connection: to the mount it looks like a backend that is down (ENOTCONN),
// and the reason is logged once.
//
// The guarantee: no byte of a user's mount reaches, or comes from, a process
// running as anyone but that user (or root, who may connect anywhere). The
// cost: bytes are copied once more through the daemon (two threads per
// connection); root's mounts and TCP backends do not go through a relay.
//
// Thread use: Create() and Stop() from one thread; everything else runs on
// the relay's own threads.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_RELAY_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_RELAY_H_

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/sockets/acceptor.h"
#include "daemon/authz/as_user.h"
#include "common/unique_fd.h"

namespace fusehost {

class BackendRelay {
 public:
  struct Options {
    // Where the relay listens; its directory must be root-only.
    std::string listen_path;
    // The user's backend socket, and the backend's name for log lines.
    std::string backend_socket;
    std::string backend_name;
    // Who the backend must be; connections are made as this user.
    UserIdentity user;
    absl::Duration dial_timeout = absl::Seconds(5);
  };

  static absl::StatusOr<std::unique_ptr<BackendRelay>> Create(Options options);
  ~BackendRelay();  // Stop()s.

  // The gRPC target of the relay ("unix:" + listen_path).
  std::string target() const { return "unix:" + options_.listen_path; }

  // Closes the listening socket and every relayed connection, and waits for
  // the relay's threads. Idempotent.
  void Stop();

 private:
  struct Link {
    UniqueFd daemon_side;
    UniqueFd backend_side;
    std::thread thread;
    std::atomic<bool> finished{false};
  };

  BackendRelay(Options options, int listen_fd);
  void Accept(int fd);
  void Run(Link* link);
  // Joins and frees links whose threads are done.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs `message` unless it is the same as the last one.
  void Note(const std::string& message);

  const Options options_;
  Acceptor acceptor_;
  bool stopped_ = false;

  absl::Mutex mu_;
  std::list<std::unique_ptr<Link>> links_ ABSL_GUARDED_BY(mu_);
  std::string last_note_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_RELAY_H_
