#include "daemon/authz/as_user.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/sockets/peer_credentials.h"
#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

UserIdentity Nobody() { return UserIdentity{kNobody, kNogroup, {kNogroup}}; }

class AsUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to take another uid";
  }
  ScratchDir dir_;
};

TEST_F(AsUserTest, OpensAndReportsWriteAccessAsTheUser) {
  std::string mine = dir_.Mkdir("mine", 0755, kNobody, kNogroup);
  std::string roots = dir_.Mkdir("roots", 0755);
  absl::StatusOr<OpenedDirectory> d =
      OpenDirectoryAsUser(Nobody(), mine, /*inspect=*/true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->write_errno, 0);
  EXPECT_EQ(d->st.st_uid, kNobody);
  EXPECT_TRUE(S_ISDIR(d->st.st_mode));
  EXPECT_NE(d->fs_type, 0);
  struct stat st;
  ASSERT_EQ(fstat(d->fd.get(), &st), 0);
  EXPECT_EQ(st.st_ino, d->st.st_ino);

  d = OpenDirectoryAsUser(Nobody(), roots, /*inspect=*/true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->write_errno, EACCES);
  // Not asked: not inspected.
  d = OpenDirectoryAsUser(Nobody(), roots, /*inspect=*/false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->write_errno, 0);
  EXPECT_EQ(d->st.st_mode, 0u);
}

TEST_F(AsUserTest, ResolvesWithTheUsersSearchRights) {
  std::string closed = dir_.Mkdir("closed", 0700);
  dir_.Mkdir("closed/inner", 0777);
  absl::StatusOr<OpenedDirectory> d =
      OpenDirectoryAsUser(Nobody(), closed + "/inner", true);
  EXPECT_TRUE(absl::IsPermissionDenied(d.status())) << d.status();
  // Root itself gets through.
  d = OpenDirectoryAsUser(UserIdentity{0, 0, {}}, closed + "/inner", true);
  EXPECT_TRUE(d.ok()) << d.status();
}

TEST_F(AsUserTest, FollowsSymlinksAsTheUser) {
  std::string closed = dir_.Mkdir("closed", 0700);
  dir_.Mkdir("closed/target", 0777);
  ASSERT_EQ(symlink((closed + "/target").c_str(), dir_.Sub("link").c_str()), 0);
  absl::StatusOr<OpenedDirectory> d =
      OpenDirectoryAsUser(Nobody(), dir_.Sub("link"), true);
  EXPECT_TRUE(absl::IsPermissionDenied(d.status())) << d.status();
}

TEST_F(AsUserTest, MissingAndNotADirectory) {
  absl::StatusOr<OpenedDirectory> d =
      OpenDirectoryAsUser(Nobody(), dir_.Sub("missing"), true);
  EXPECT_TRUE(absl::IsNotFound(d.status())) << d.status();
  close(creat(dir_.Sub("file").c_str(), 0644));
  d = OpenDirectoryAsUser(Nobody(), dir_.Sub("file"), true);
  EXPECT_TRUE(absl::IsFailedPrecondition(d.status())) << d.status();
  EXPECT_NE(d.status().message().find("Not a directory"), std::string::npos);
}

TEST_F(AsUserTest, ConnectsAsTheUser) {
  UniqueFd open_sock = ListenUnix(dir_.Sub("open.sock"), 0666);
  UniqueFd closed_sock = ListenUnix(dir_.Sub("closed.sock"), 0600);
  ASSERT_TRUE(open_sock.valid() && closed_sock.valid());
  absl::StatusOr<UniqueFd> c = ConnectUnixAsUser(Nobody(), dir_.Sub("open.sock"));
  ASSERT_TRUE(c.ok()) << c.status();
  // The peer is the listener's process (root, here).
  absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(c->get());
  ASSERT_TRUE(peer.ok());
  EXPECT_EQ(peer->uid, 0u);
  EXPECT_EQ(peer->pid, getpid());
  // And the accepted side sees nobody.
  UniqueFd accepted(accept4(open_sock.get(), nullptr, nullptr, SOCK_CLOEXEC));
  peer = GetPeerCredentials(accepted.get());
  ASSERT_TRUE(peer.ok());
  EXPECT_EQ(peer->uid, kNobody);
  EXPECT_EQ(peer->gid, kNogroup);

  c = ConnectUnixAsUser(Nobody(), dir_.Sub("closed.sock"));
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  c = ConnectUnixAsUser(Nobody(), dir_.Sub("nothing.sock"));
  EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
}

TEST_F(AsUserTest, TimesOut) {
  // connect() to a Unix socket whose backlog is full blocks until the
  // listener accepts, which this one never does.
  UniqueFd sock = ListenUnix(dir_.Sub("full.sock"), 0666);
  ASSERT_TRUE(sock.valid());
  ASSERT_EQ(listen(sock.get(), 0), 0);
  std::vector<UniqueFd> fill;
  for (int i = 0; i < 8; ++i) {
    UniqueFd f(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, dir_.Sub("full.sock").c_str(),
            sizeof(addr.sun_path) - 1);
    connect(f.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fill.push_back(std::move(f));
  }
  absl::StatusOr<UniqueFd> c = ConnectUnixAsUser(
      Nobody(), dir_.Sub("full.sock"), absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsDeadlineExceeded(c.status())) << c.status();
}

}  // namespace
}  // namespace fusehost
