// A minimal HTTP/1.0 endpoint for Prometheus: GET /metrics answers the text
// `render` returns; anything else is 404 (or 405 for other methods). Off
// unless the daemon is given an address (--metrics_address or the config).
//
// Deliberately small and bounded: one request per connection, handled on
// the accept thread itself (so at most one at a time), a request of at most
// 8 KiB, and 2-second send/receive timeouts, so a slow or hostile client
// costs at most a few seconds of metrics, never daemon threads or memory.
// It serves whoever can reach the address: bind it to loopback (the
// metrics name mountpoints and owners' uids, as /proc/mounts does).
//
// Thread use: Create() and Stop() from one thread; `render` runs on the
// server's thread.

#ifndef FUSE_HOSTD_DAEMON_CONTROL_METRICS_SERVER_H_
#define FUSE_HOSTD_DAEMON_CONTROL_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/sockets/acceptor.h"

namespace fusehost {

class MetricsServer {
 public:
  struct Options {
    std::string address;  // "HOST:PORT"
    std::function<std::string()> render;
  };

  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(Options options);
  ~MetricsServer() { Stop(); }

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  void Stop() { acceptor_.Stop(); }

 private:
  MetricsServer(Options options, int listen_fd, int port);
  void Serve(int fd);

  const Options options_;
  const int port_;
  Acceptor acceptor_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_METRICS_SERVER_H_
