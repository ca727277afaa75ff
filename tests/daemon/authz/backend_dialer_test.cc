// BackendDialer: each connection checked, the backend's uid fixed for the
// life of the mount.

#include "daemon/authz/backend_dialer.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

// A process listening on `path` as `uid`: SO_PEERCRED reports whoever
// listened.
class Listener {
 public:
  Listener(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    pid_ = fork();
    if (pid_ == 0) {
      if (setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        _exit(1);
      }
      UniqueFd fd = ListenUnix(path, mode);
      (void)!write(ready[1], "x", 1);
      for (;;) {
        int c = accept(fd.get(), nullptr, nullptr);
        if (c >= 0) close(c);
      }
    }
    close(ready[1]);
    char c;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
  }
  ~Listener() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_;
};

class BackendDialerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to play other users";
  }
  BackendDialer::Options Options() {
    BackendDialer::Options o;
    o.socket_path = dir_.Sub("backend.sock");
    o.backend_name = "unix:" + o.socket_path;
    o.timeout = absl::Seconds(2);
    return o;
  }
  ScratchDir dir_;
};

TEST_F(BackendDialerTest, RootsMountsKeepTheUidTheyWereMountedWith) {
  // A directory anyone may write, as /tmp is.
  std::string shared = dir_.Mkdir("shared", 0777);
  BackendDialer::Options o = Options();
  o.socket_path = shared + "/backend.sock";
  BackendDialer dialer(o);
  {
    Listener root(o.socket_path, 0, 0, 0600);
    ASSERT_TRUE(dialer.Dial().ok());
    EXPECT_EQ(dialer.backend_uid(), 0u);
    EXPECT_TRUE(dialer.Dial().ok()) << "every dial is checked, and passes";
  }
  // The backend stopped; someone else binds the path now.
  unlink(o.socket_path.c_str());
  Listener nobody(o.socket_path, kNobody, kNogroup, 0666);
  absl::StatusOr<UniqueFd> fd = dialer.Dial();
  ASSERT_FALSE(fd.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(fd.status())) << fd.status();
  EXPECT_NE(fd.status().message().find("refusing connection to backend"),
            std::string::npos)
      << fd.status();
  EXPECT_NE(fd.status().message().find("not by uid 0"), std::string::npos)
      << fd.status();
}

TEST_F(BackendDialerTest, UsersBackendsMustRunAsTheUser) {
  Listener root(dir_.Sub("backend.sock"), 0, 0, 0666);
  BackendDialer::Options o = Options();
  o.connect_as = UserIdentity{kNobody, kNogroup, {}};
  o.backend_uid = kNobody;
  BackendDialer dialer(o);
  absl::StatusOr<UniqueFd> fd = dialer.Dial();
  ASSERT_FALSE(fd.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(fd.status())) << fd.status();
}

TEST_F(BackendDialerTest, UsersConnectWithTheirOwnPermissions) {
  // Root's owner-only socket is out of a user's reach.
  Listener root(dir_.Sub("backend.sock"), 0, 0, 0600);
  BackendDialer::Options o = Options();
  o.connect_as = UserIdentity{kNobody, kNogroup, {}};
  o.backend_uid = 0;
  BackendDialer dialer(o);
  absl::StatusOr<UniqueFd> fd = dialer.Dial();
  ASSERT_FALSE(fd.ok());
  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
}

TEST_F(BackendDialerTest, AUsersOwnBackendIsFine) {
  std::string dir = dir_.Mkdir("home", 0755, kNobody, kNogroup);
  BackendDialer::Options o = Options();
  o.socket_path = dir + "/backend.sock";
  o.connect_as = UserIdentity{kNobody, kNogroup, {}};
  o.backend_uid = kNobody;
  Listener mine(o.socket_path, kNobody, kNogroup, 0600);
  BackendDialer dialer(o);
  EXPECT_TRUE(dialer.Dial().ok());
}

TEST_F(BackendDialerTest, NothingListening) {
  BackendDialer dialer(Options());
  absl::StatusOr<UniqueFd> fd = dialer.Dial();
  ASSERT_FALSE(fd.ok());
  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
  EXPECT_NE(fd.status().message().find("unreachable"), std::string::npos);
}

}  // namespace
}  // namespace fusehost
