#include "daemon/control/service_notifier.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

// A NOTIFY_SOCKET of our own, where no systemd runs.
class NotifySocket {
 public:
  NotifySocket() : path_(dir_.Sub("notify.sock")) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
  }
  // The next datagram, or "" after `timeout_ms`.
  std::string Next(int timeout_ms = 2000) {
    struct pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "";
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, n) : "";
  }

 private:
  ScratchDir dir_;
  std::string path_;
  int fd_;
};

TEST(ServiceNotifierTest, SendsReadyStatusStopping) {
  NotifySocket sock;
  ServiceNotifier n;
  n.Ready("serving on /x;\nall good");
  EXPECT_EQ(sock.Next(), "READY=1\nSTATUS=serving on /x; all good");
  n.Status("busy");
  EXPECT_EQ(sock.Next(), "STATUS=busy");
  n.Stopping("bye");
  EXPECT_EQ(sock.Next(), "STOPPING=1\nSTATUS=bye");
}

TEST(ServiceNotifierTest, WatchdogPingsAtHalfTheInterval) {
  NotifySocket sock;
  setenv("WATCHDOG_USEC", "200000", 1);
  unsetenv("WATCHDOG_PID");
  int alive_calls = 0;
  {
    ServiceNotifier n;
    EXPECT_EQ(n.StartWatchdog([&alive_calls] { ++alive_calls; }),
              absl::Milliseconds(200));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(sock.Next(), "WATCHDOG=1");
  }
  EXPECT_GE(alive_calls, 3);
  unsetenv("WATCHDOG_USEC");
}

TEST(ServiceNotifierTest, NoWatchdogUnlessAsked) {
  NotifySocket sock;
  unsetenv("WATCHDOG_USEC");
  ServiceNotifier n;
  EXPECT_EQ(n.StartWatchdog([] {}), absl::ZeroDuration());
  EXPECT_EQ(sock.Next(300), "");
}

TEST(ServiceNotifierTest, WithoutNotifySocketNothingHappens) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier n;
  n.Ready("x");
  n.Stopping("y");
}

}  // namespace
}  // namespace fusehost
