#include "daemon/authz/authorizer.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

PeerCredentials Nobody() {
  PeerCredentials p;
  p.pid = getpid();
  p.uid = kNobody;
  p.gid = kNogroup;
  p.groups = {kNogroup};
  return p;
}

TEST(UnixSocketPathOfTest, Forms) {
  EXPECT_EQ(UnixSocketPathOf("unix:/run/a.sock"), "/run/a.sock");
  EXPECT_EQ(UnixSocketPathOf("unix:///run/a.sock"), "/run/a.sock");
  EXPECT_EQ(UnixSocketPathOf("unix:rel.sock"), "rel.sock");
  EXPECT_EQ(UnixSocketPathOf("localhost:50051"), "");
  EXPECT_EQ(UnixSocketPathOf("dns:///x:1"), "");
}

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
    fuse_conf_ = dir_.Sub("fuse.conf");
    WriteFuseConf("");
    policy_.fuse_conf_path = fuse_conf_;
    mnt_ = dir_.Mkdir("mnt", 0755, kNobody, kNogroup);
  }

  void WriteFuseConf(const std::string& text) {
    FILE* f = fopen(fuse_conf_.c_str(), "w");
    fputs(text.c_str(), f);
    fclose(f);
  }

  // A backend socket listening as root (not nobody's).
  std::string RootBackend() {
    root_sock_ = ListenUnix(dir_.Sub("root.sock"), 0666);
    return "unix:" + dir_.Sub("root.sock");
  }

  ScratchDir dir_;
  std::string fuse_conf_;
  std::string mnt_;
  UserPolicy policy_;
  UniqueFd root_sock_;
};

TEST_F(AuthorizerTest, RootMayDoAnything) {
  Authorizer a(policy_);
  PeerCredentials root;
  absl::StatusOr<MountGrant> g =
      a.AuthorizeMount(root, "host:1", "/anywhere", "suid,dev,allow_other");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->options, "suid,dev,allow_other");
  EXPECT_FALSE(g->mountpoint_fd.valid());
  EXPECT_EQ(g->owner_uid, 0u);
  EXPECT_EQ(g->max_mounts_for_owner, 0u);
  EXPECT_EQ(g->max_mounts_total, -1);
}

TEST_F(AuthorizerTest, BackendOfAnotherUserIsRefused) {
  Authorizer a(policy_);
  absl::StatusOr<MountGrant> g =
      a.AuthorizeMount(Nobody(), RootBackend(), mnt_, "");
  ASSERT_TRUE(absl::IsPermissionDenied(g.status())) << g.status();
  EXPECT_NE(g.status().message().find("does not run as you"), std::string::npos)
      << g.status();
  EXPECT_NE(g.status().message().find("uid=0"), std::string::npos);
}

TEST_F(AuthorizerTest, UnreachableBackend) {
  Authorizer a(policy_);
  absl::StatusOr<MountGrant> g = a.AuthorizeMount(
      Nobody(), "unix:" + dir_.Sub("none.sock"), mnt_, "");
  ASSERT_TRUE(absl::IsUnavailable(g.status())) << g.status();
  EXPECT_NE(g.status().message().find("is unreachable"), std::string::npos);
}

TEST_F(AuthorizerTest, TcpBackendsOnlyIfAllowed) {
  Authorizer a(policy_);
  absl::StatusOr<MountGrant> g =
      a.AuthorizeMount(Nobody(), "localhost:1", mnt_, "");
  ASSERT_TRUE(absl::IsPermissionDenied(g.status())) << g.status();
  policy_.allow_tcp_backends = true;
  Authorizer b(policy_);
  g = b.AuthorizeMount(Nobody(), "localhost:1", mnt_, "ro");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->mountpoint_fd.valid());
  EXPECT_EQ(g->mountpoint, mnt_);
  EXPECT_EQ(g->options, "ro,cache_entries=100000,nosuid,nodev");
  EXPECT_EQ(g->owner_uid, kNobody);
  EXPECT_EQ(g->owner_gid, kNogroup);
  EXPECT_TRUE(g->backend_socket.empty());
  EXPECT_EQ(g->max_mounts_for_owner, 32u);
  EXPECT_EQ(g->max_mounts_total, 1000);
  // The TLS files are to be read with the caller's rights.
  EXPECT_EQ(g->tls_reader.uid, kNobody);
  EXPECT_EQ(g->tls_reader.gid, kNogroup);
}

TEST_F(AuthorizerTest, PlainTcpOnlyIfAllowedToo) {
  policy_.allow_tcp_backends = true;
  absl::StatusOr<MountGrant> g = Authorizer(policy_).AuthorizeMount(
      Nobody(), "localhost:1", mnt_, "insecure");
  ASSERT_TRUE(absl::IsPermissionDenied(g.status())) << g.status();
  EXPECT_NE(g.status().message().find("plain TCP"), std::string::npos);
  g = Authorizer(policy_).AuthorizeMount(Nobody(), "localhost:1", mnt_,
                                         "tls_ca=/ca.pem");
  EXPECT_TRUE(g.ok()) << g.status();
  policy_.allow_insecure_tcp_backends = true;
  g = Authorizer(policy_).AuthorizeMount(Nobody(), "localhost:1", mnt_,
                                         "insecure");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->options, "insecure,cache_entries=100000,nosuid,nodev");
}

TEST_F(AuthorizerTest, MountpointChecksRunAsTheUser) {
  policy_.allow_tcp_backends = true;
  Authorizer a(policy_);
  std::string roots = dir_.Mkdir("roots", 0777);
  absl::StatusOr<MountGrant> g =
      a.AuthorizeMount(Nobody(), "localhost:1", roots, "");
  ASSERT_TRUE(absl::IsPermissionDenied(g.status()));
  EXPECT_NE(g.status().message().find("not owned by you"), std::string::npos);
  // A symlink to someone else's directory is judged by its target.
  ASSERT_EQ(symlink(roots.c_str(), dir_.Sub("link").c_str()), 0);
  g = a.AuthorizeMount(Nobody(), "localhost:1", dir_.Sub("link"), "");
  EXPECT_TRUE(absl::IsPermissionDenied(g.status()));
  g = a.AuthorizeMount(Nobody(), "localhost:1", dir_.Sub("missing"), "");
  EXPECT_TRUE(absl::IsNotFound(g.status())) << g.status();
  g = a.AuthorizeMount(Nobody(), "localhost:1", "relative", "");
  EXPECT_TRUE(absl::IsInvalidArgument(g.status()));
  g = a.AuthorizeMount(Nobody(), "localhost:1", "/proc/self", "");
  EXPECT_TRUE(absl::IsPermissionDenied(g.status())) << g.status();
}

TEST_F(AuthorizerTest, AllowOtherFollowsFuseConfAndPolicy) {
  policy_.allow_tcp_backends = true;
  absl::StatusOr<MountGrant> g = Authorizer(policy_).AuthorizeMount(
      Nobody(), "localhost:1", mnt_, "allow_other");
  ASSERT_TRUE(absl::IsPermissionDenied(g.status()));
  EXPECT_NE(g.status().message().find("user_allow_other"), std::string::npos);
  WriteFuseConf("user_allow_other\nmount_max = 5\n");
  g = Authorizer(policy_).AuthorizeMount(Nobody(), "localhost:1", mnt_,
                                         "allow_other");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->max_mounts_total, 5);
  policy_.allow_other = UserPolicy::AllowOther::kNever;
  g = Authorizer(policy_).AuthorizeMount(Nobody(), "localhost:1", mnt_,
                                         "allow_other");
  EXPECT_TRUE(absl::IsPermissionDenied(g.status()));
  policy_.allow_other = UserPolicy::AllowOther::kAlways;
  WriteFuseConf("");
  g = Authorizer(policy_).AuthorizeMount(Nobody(), "localhost:1", mnt_,
                                         "allow_other");
  EXPECT_TRUE(g.ok()) << g.status();
}

TEST_F(AuthorizerTest, NoUserMountsAtAll) {
  policy_.max_mounts_per_user = 0;
  absl::StatusOr<MountGrant> g = Authorizer(policy_).AuthorizeMount(
      Nobody(), "localhost:1", mnt_, "");
  EXPECT_TRUE(absl::IsPermissionDenied(g.status()));
}

TEST_F(AuthorizerTest, ResolveAsCaller) {
  Authorizer a(policy_);
  absl::StatusOr<std::string> p = a.ResolveAsCaller(Nobody(), mnt_ + "/../mnt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, mnt_);
  std::string closed = dir_.Mkdir("closed", 0700);
  dir_.Mkdir("closed/x", 0755);
  EXPECT_TRUE(absl::IsPermissionDenied(
      a.ResolveAsCaller(Nobody(), closed + "/x").status()));
  PeerCredentials root;
  EXPECT_EQ(*a.ResolveAsCaller(root, closed + "/x/."), closed + "/x");
}

TEST(CheckBackendPeerTest, ComparesTheUid) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_TRUE(CheckBackendPeer(sv[0], geteuid(), "b").ok());
  EXPECT_TRUE(
      absl::IsPermissionDenied(CheckBackendPeer(sv[0], geteuid() + 1, "b")));
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
}  // namespace fusehost
