// A running gRPC server for one FileSystem: the listening half of Serve(),
// without its signal handling, so that tests (and programs with their own
// idea of when to stop) can start and stop a backend in-process.
//
// Internal to the SDK; backends call Serve() from filesystem.h.

#ifndef FUSE_HOSTD_CLIENT_BACKEND_SERVER_H_
#define FUSE_HOSTD_CLIENT_BACKEND_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/backend_service.h"
#include "client/filesystem.h"

namespace fusehost {

// Largest gRPC message either way. Batches of writes and readdir listings
// with attributes exceed gRPC's 4 MiB default long before anything is wrong.
inline constexpr int kMaxMessageBytes = 64 << 20;

// Thread use: Shutdown and the accessors may be called from any thread;
// Shutdown may run more than once (later calls return at once). The
// destructor shuts down if that has not happened yet. The FileSystem must
// outlive the server.
class BackendServer {
 public:
  // Starts serving `fs` on options.listen. A stale Unix socket file is
  // removed first when options.replace_stale_socket is set: one nobody
  // listens on, never a file of another kind nor a live server's socket.
  // On failure the status message is one line, fit for stderr.
  static absl::StatusOr<std::unique_ptr<BackendServer>> Start(
      FileSystem& fs, const ServeOptions& options);

  ~BackendServer();

  BackendServer(const BackendServer&) = delete;
  BackendServer& operator=(const BackendServer&) = delete;

  // Stops accepting calls, ends open Invalidations streams at once (they
  // never finish by themselves), lets other running calls finish for up to
  // `grace` (then cancels them), waits for the handlers to return and
  // removes the socket file this server created.
  void Shutdown(absl::Duration grace);

  // The TCP port bound (useful with "host:0"); meaningless for Unix sockets.
  int port() const { return port_; }

 private:
  BackendServer(std::unique_ptr<BackendService> service,
                std::unique_ptr<grpc::Server> server, int port,
                std::string socket_path);

  // Declared before server_: gRPC requires the service to outlive the
  // server, and members are destroyed in reverse order.
  const std::unique_ptr<BackendService> service_;
  const std::unique_ptr<grpc::Server> server_;
  const int port_;
  // The Unix socket file this server created, "" for other addresses, and
  // its identity, so that Shutdown never removes a socket another server put
  // there since.
  const std::string socket_path_;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_BACKEND_SERVER_H_
