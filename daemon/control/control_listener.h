// Accepts control-socket connections itself, so that the kernel credentials
// of each one are known, and hands them to the gRPC server
// (grpc::AddInsecureChannelFromFd). gRPC does not expose Unix peer
// credentials; this is how the daemon learns who calls.
//
// Mapping a call to its connection. gRPC names a channel added from an fd
// "fd:N" (N the descriptor), and ServerContext::peer() returns that name.
// Descriptor numbers are reused, so the mapping is only sound because of
// this ordering, which CallerOf() relies on:
//   * the credentials of N are recorded before N is handed to gRPC, and are
//     replaced only when a later accept() returns N again;
//   * accept() can return N again only after gRPC closed N, and gRPC closes
//     a connection's descriptor only when its transport is destroyed, which
//     waits for every call on it to finish (each call holds a reference).
// So while a handler runs, "fd:N" names its own live connection, and the
// recorded credentials are that connection's. As a cross-check CallerOf()
// also compares the socket's inode with the one recorded at accept time.
//
// Thread use: Start()/Stop() from one thread; CallerOf() from any thread.

#ifndef FUSE_HOSTD_DAEMON_CONTROL_CONTROL_LISTENER_H_
#define FUSE_HOSTD_DAEMON_CONTROL_CONTROL_LISTENER_H_

#include <sys/types.h>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/sockets/acceptor.h"
#include "daemon/sockets/peer_credentials.h"

namespace fusehost {

class ControlListener {
 public:
  struct Options {
    // A bound, listening AF_UNIX stream socket. The listener owns it.
    int listen_fd = -1;
    // A started server; must outlive the listener.
    grpc::Server* server = nullptr;
    // Connections one user other than root may have open at once; more
    // are closed at once (and logged). 0: no limit.
    size_t max_connections_per_uid = 0;
  };

  explicit ControlListener(Options options);
  ~ControlListener();  // Stop()s.

  ControlListener(const ControlListener&) = delete;
  ControlListener& operator=(const ControlListener&) = delete;

  // Starts the accept thread.
  void Start();
  // Stops accepting and closes the listening socket. Connections already
  // handed to gRPC stay with it (Server::Shutdown ends them). Idempotent.
  void Stop();

  // The credentials of the connection `context`'s call arrived on, or
  // UNAUTHENTICATED if it did not come through this listener.
  absl::StatusOr<PeerCredentials> CallerOf(
      const grpc::ServerContext& context) const;

 private:
  struct Connection {
    PeerCredentials peer;
    ino_t inode = 0;
  };

  // Records `fd`'s credentials and hands it to gRPC.
  void Accept(int fd);
  // Connections of `uid` still open (records of closed ones are dropped).
  size_t OpenConnectionsLocked(uid_t uid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Acceptor acceptor_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<int, Connection> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_CONTROL_LISTENER_H_
