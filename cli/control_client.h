// The client side of fuse-hostd's control socket, shared by fuse-hostctl
// and mount.fuse.hostd: one call per RPC, and the one-line error texts the
// commands print.
//
// Thread use: one client per thread (it holds a gRPC stub, which is
// thread-safe, but the class adds no guarantees of its own).

#ifndef FUSE_HOSTD_CLI_CONTROL_CLIENT_H_
#define FUSE_HOSTD_CLI_CONTROL_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"
#include "proto/health.grpc.pb.h"

namespace fusehost {

constexpr char kDefaultControlSocketPath[] = "/run/fuse-hostd/control.sock";

class ControlClient {
 public:
  struct Options {
    std::string socket_path = kDefaultControlSocketPath;
    // Long enough for a slow backend handshake and an unmount that waits
    // for the session to end.
    absl::Duration timeout = absl::Seconds(30);
  };

  explicit ControlClient(Options options);

  // An error line if nothing is at the socket path (the usual "is the
  // daemon running?" case), so the commands can say so before dialing.
  absl::Status CheckSocket() const;

  grpc::Status Mount(const std::string& backend, const std::string& mountpoint,
                     const std::string& options, uint64_t* mount_id);
  grpc::Status Unmount(const std::string& mountpoint, bool lazy);
  grpc::Status List(v1::ListReply* reply);
  grpc::Status Stats(const std::string& mountpoint, v1::StatsReply* reply);
  // gRPC's standard health check of `service` ("" for the whole server).
  grpc::Status Health(const std::string& service,
                      grpc::health::v1::HealthCheckResponse* reply);

  // The one line to print for a failed call.
  std::string Describe(const grpc::Status& status) const;

 private:
  void Prepare(grpc::ClientContext* context) const;

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

// `path` made absolute against the working directory: the daemon resolves
// paths in its own, so commands send absolute ones.
std::string AbsolutePath(const std::string& path);

// "alice" for a uid with a name, else the number.
std::string UserName(uint32_t uid);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLI_CONTROL_CLIENT_H_
