// Every connection to a mount's Unix-socket backend, made by the daemon
// and checked, so that who serves a mount is fixed for its whole life.
//
// The problem: left to itself, gRPC dials the socket path as root, and
// dials it again whenever the backend restarts. A check made once says
// nothing about what the path leads to later: when the backend stops,
// whoever can bind that path (a user, for a socket in a directory they may
// write), or a symlink the owner puts in its place, would serve the mount,
// root's mounts included.
//
// The dialer makes each connection itself and hands gRPC the connected
// socket (BackendChannel::Options::dial):
//   users' mounts  connect *as the user* (their permissions decide what the
//                  path reaches; another user's owner-only socket is out of
//                  reach), and the process at the other end must run as the
//                  user (SO_PEERCRED);
//   root's mounts  connect as the daemon, and the other end must run as the
//                  uid the backend had when the mount was made.
// A failed check is a backend that is down for the mount (ENOTCONN) and a
// log line; nothing is ever sent to, or read from, the wrong process.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_DIALER_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_DIALER_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/authz/as_user.h"

namespace fusehost {

class BackendDialer {
 public:
  struct Options {
    std::string socket_path;   // absolute
    std::string backend_name;  // the address the mount was asked with
    // Connect as this user; nullopt: as the daemon (root's mounts).
    std::optional<UserIdentity> connect_as;
    // The uid the backend must run as; nullopt: whatever the first
    // successful connection finds (root's mounts), fixed from then on.
    std::optional<uid_t> backend_uid;
    absl::Duration timeout = absl::Seconds(5);
  };

  explicit BackendDialer(Options options);

  // A connected socket whose peer passed the check.
  absl::StatusOr<UniqueFd> Dial();

  const Options& options() const { return options_; }

  // The uid the backend runs as (once known).
  std::optional<uid_t> backend_uid() const;
  // The process at the other end of the latest connection that passed the
  // check (once known): the one serving the mount now.
  std::optional<pid_t> backend_pid() const;

 private:
  const Options options_;
  mutable absl::Mutex mu_;
  std::optional<uid_t> backend_uid_ ABSL_GUARDED_BY(mu_);
  std::optional<pid_t> backend_pid_ ABSL_GUARDED_BY(mu_);
};

// Connects an AF_UNIX stream socket to `path` as the daemon, within
// `timeout`.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path,
                                     absl::Duration timeout);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_BACKEND_DIALER_H_
