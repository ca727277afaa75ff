#include "daemon/authz/backend_relay.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

// An echo server on a Unix socket, one connection at a time.
class Echo {
 public:
  Echo(const std::string& path, mode_t mode) : fd_(ListenUnix(path, mode)) {
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof(buf))) > 0) {
          (void)!write(c, buf, n);
        }
        close(c);
      }
    });
  }
  ~Echo() {
    shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }

 private:
  UniqueFd fd_;
  std::thread thread_;
};

int Dial(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `text` (from another thread: the echo answers while we send) and
// reads the answer until EOF or `text.size()` bytes.
std::string RoundTrip(int fd, const std::string& text) {
  std::thread sender([fd, &text] {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += n;
    }
  });
  std::string out;
  char buf[4096];
  while (out.size() < text.size()) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  sender.join();
  return out;
}

class BackendRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to dial as another user";
    relay_dir_ = dir_.Mkdir("relay", 0700);
  }

  std::unique_ptr<BackendRelay> Start(const std::string& backend,
                                      const UserIdentity& user) {
    BackendRelay::Options o;
    o.listen_path = relay_dir_ + "/1.sock";
    o.backend_socket = backend;
    o.backend_name = "unix:" + backend;
    o.user = user;
    absl::StatusOr<std::unique_ptr<BackendRelay>> r =
        BackendRelay::Create(std::move(o));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }

  ScratchDir dir_;
  std::string relay_dir_;
};

TEST_F(BackendRelayTest, ForwardsToABackendOfTheRightUser) {
  Echo echo(dir_.Sub("echo.sock"), 0600);
  std::unique_ptr<BackendRelay> relay =
      Start(dir_.Sub("echo.sock"), UserIdentity{0, 0, {}});
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->target(), "unix:" + relay_dir_ + "/1.sock");
  int fd = Dial(relay_dir_ + "/1.sock");
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "hello"), "hello");
  std::string big(1 << 20, 'x');
  EXPECT_EQ(RoundTrip(fd, big).size(), big.size());
  close(fd);
  // Every connection is checked again: a second one works too.
  fd = Dial(relay_dir_ + "/1.sock");
  EXPECT_EQ(RoundTrip(fd, "again"), "again");
  close(fd);
  relay->Stop();
}

TEST_F(BackendRelayTest, RefusesABackendOfAnotherUser) {
  // World-connectable, but run by root, not by nobody.
  Echo echo(dir_.Sub("echo.sock"), 0666);
  std::unique_ptr<BackendRelay> relay =
      Start(dir_.Sub("echo.sock"), UserIdentity{kNobody, kNogroup, {}});
  ASSERT_NE(relay, nullptr);
  int fd = Dial(relay_dir_ + "/1.sock");
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "hello"), "");  // closed without a byte
  close(fd);
}

TEST_F(BackendRelayTest, RefusesASocketTheUserCannotReach) {
  Echo echo(dir_.Sub("echo.sock"), 0600);
  std::unique_ptr<BackendRelay> relay =
      Start(dir_.Sub("echo.sock"), UserIdentity{kNobody, kNogroup, {}});
  int fd = Dial(relay_dir_ + "/1.sock");
  EXPECT_EQ(RoundTrip(fd, "hello"), "");
  close(fd);
}

TEST_F(BackendRelayTest, StopEndsOpenConnections) {
  Echo echo(dir_.Sub("echo.sock"), 0600);
  std::unique_ptr<BackendRelay> relay =
      Start(dir_.Sub("echo.sock"), UserIdentity{0, 0, {}});
  int fd = Dial(relay_dir_ + "/1.sock");
  EXPECT_EQ(RoundTrip(fd, "x"), "x");
  relay->Stop();
  char c;
  EXPECT_EQ(read(fd, &c, 1), 0);
  close(fd);
  EXPECT_NE(access((relay_dir_ + "/1.sock").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace fusehost
