// A KeeperClient connected to a keeper's request handling
// (KeptDescriptors), served on a thread of the test until the client's end
// closes: the keeper process's part, without the process.

#ifndef FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_SERVED_KEEPER_H_
#define FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_SERVED_KEEPER_H_

#include <memory>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/survival/keeper_client.h"
#include "daemon/survival/kept_descriptors.h"
#include "tests/daemon/survival/descriptor_probes.h"

namespace fusehost {

class ServedKeeper {
 public:
  ServedKeeper() {
    SocketPair s = MakeSocketPair();
    server_end_ = std::move(s.b);
    client_ = std::make_unique<KeeperClient>(std::move(s.a));
    server_ = std::thread([this] {
      absl::Status served;
      while (served.ok() || absl::IsDeadlineExceeded(served)) {
        served = ServeKeeperRequest(server_end_.get(), absl::Seconds(1),
                                    absl::Seconds(1), &kept_);
      }
    });
  }
  ~ServedKeeper() {
    client_.reset();  // closes the socket: the server thread ends
    server_.join();
  }

  KeeperClient* client() { return client_.get(); }
  // The server thread's alone while it runs.
  KeptDescriptors& kept() { return kept_; }

 private:
  UniqueFd server_end_;
  KeptDescriptors kept_;
  std::unique_ptr<KeeperClient> client_;
  std::thread server_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_SURVIVAL_SERVED_KEEPER_H_
