#include "examples/loopback/caller_credentials.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <ostream>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fusehost {
namespace examples {
namespace {

// The calling thread's filesystem identity, as the kernel sees it.
struct Identity {
  uid_t fsuid;
  gid_t fsgid;
  std::vector<gid_t> groups;

  bool operator==(const Identity& other) const {
    return fsuid == other.fsuid && fsgid == other.fsgid &&
           groups == other.groups;
  }
};

std::ostream& operator<<(std::ostream& os, const Identity& id) {
  os << "fsuid " << id.fsuid << " fsgid " << id.fsgid << " groups {";
  for (gid_t g : id.groups) os << " " << g;
  return os << " }";
}

Identity ThreadIdentity() {
  Identity id;
  // An invalid id (-1) changes nothing and returns the current one.
  id.fsuid = static_cast<uid_t>(syscall(SYS_setfsuid, -1));
  id.fsgid = static_cast<gid_t>(syscall(SYS_setfsgid, -1));
  id.groups.resize(static_cast<size_t>(syscall(SYS_getgroups, 0, nullptr)));
  id.groups.resize(static_cast<size_t>(
      syscall(SYS_getgroups, id.groups.size(), id.groups.data())));
  return id;
}

Context Caller(uid_t uid, gid_t gid, std::vector<gid_t> groups) {
  Context ctx;
  ctx.uid = uid;
  ctx.gid = gid;
  ctx.groups = std::move(groups);
  return ctx;
}

TEST(CallerCredentialsTest, DisabledChangesNothing) {
  const Identity before = ThreadIdentity();
  CallerCredentials creds(Caller(before.fsuid + 1, before.fsgid + 1, {4242}),
                          /*enabled=*/false);
  EXPECT_EQ(creds.error(), 0);
  EXPECT_EQ(ThreadIdentity(), before);
}

// Tests that really switch: they need root.
class SwitchingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CallerCredentials::ProcessCanSwitch()) {
      GTEST_SKIP() << "needs root (CAP_SETUID and CAP_SETGID, outside a "
                      "restricted user namespace)";
    }
    before_ = ThreadIdentity();
  }

  Identity before_;
};

TEST_F(SwitchingTest, SwitchesOnlyThisThreadAndRestores) {
  // A thread inherits its creator's credentials, so the other thread starts
  // before the switch and looks when told to.
  std::promise<void> go;
  Identity other_during;
  std::thread other([&, started = go.get_future()]() mutable {
    started.wait();
    other_during = ThreadIdentity();
  });
  {
    CallerCredentials creds(Caller(12345, 23456, {7, 8}), /*enabled=*/true);
    ASSERT_EQ(creds.error(), 0);
    EXPECT_EQ(ThreadIdentity(), (Identity{12345, 23456, {7, 8}}));
    // The guard must not use glibc's process-wide setgroups().
    go.set_value();
    other.join();
    EXPECT_EQ(other_during, before_);
  }
  EXPECT_EQ(ThreadIdentity(), before_);
}

TEST_F(SwitchingTest, TheThreadsOwnIdentityNeedsNoSwitch) {
  // The same groups in another order, repeated: the same identity.
  std::vector<gid_t> groups = before_.groups;
  std::reverse(groups.begin(), groups.end());
  if (!groups.empty()) groups.push_back(groups.front());
  {
    CallerCredentials creds(Caller(before_.fsuid, before_.fsgid, groups),
                            /*enabled=*/true);
    ASSERT_EQ(creds.error(), 0);
    EXPECT_EQ(ThreadIdentity(), before_);
  }
  EXPECT_EQ(ThreadIdentity(), before_);
  // Same ids, one more group: switched, and restored.
  groups.push_back(4242);
  {
    CallerCredentials creds(Caller(before_.fsuid, before_.fsgid, groups),
                            /*enabled=*/true);
    ASSERT_EQ(creds.error(), 0);
    std::vector<gid_t> now = ThreadIdentity().groups;
    EXPECT_NE(std::find(now.begin(), now.end(), 4242), now.end());
  }
  EXPECT_EQ(ThreadIdentity(), before_);
}

TEST_F(SwitchingTest, EmptyGroupsDropSupplementaryGroups) {
  {
    CallerCredentials creds(Caller(12345, 12345, {}), /*enabled=*/true);
    ASSERT_EQ(creds.error(), 0);
    EXPECT_EQ(ThreadIdentity(), (Identity{12345, 12345, {}}));
  }
  EXPECT_EQ(ThreadIdentity(), before_);
}

TEST_F(SwitchingTest, TooManyGroupsFailsWithoutSwitching) {
  // More than NGROUPS_MAX (65536): setgroups answers EINVAL.
  std::vector<gid_t> too_many(65537, 100);
  CallerCredentials creds(Caller(12345, 12345, too_many), /*enabled=*/true);
  EXPECT_EQ(creds.error(), EINVAL);
  EXPECT_EQ(ThreadIdentity(), before_);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
