#include "daemon/authz/user_mount_options.h"

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(UserMountOptionsTest, SafeOptionsPassAndNosuidNodevAreAdded) {
  absl::StatusOr<std::string> o = CheckUserMountOptions(
      "ro,noexec,fsname=mine,subtype=photos,attr_timeout=3,timeout=5,"
      "no_default_permissions,cache_entries=10",
      UserOptionRules());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(*o,
            "ro,noexec,fsname=mine,subtype=photos,attr_timeout=3,timeout=5,"
            "no_default_permissions,cache_entries=10,nosuid,nodev");
  EXPECT_EQ(*CheckUserMountOptions("", UserOptionRules()),
            "cache_entries=100000,nosuid,nodev");
}

TEST(UserMountOptionsTest, BackendOptionsPass) {
  EXPECT_EQ(*CheckUserMountOptions("compress,level=3", UserOptionRules()),
            "compress,level=3,cache_entries=100000,nosuid,nodev");
}

TEST(UserMountOptionsTest, SuidAndDevAreRefused) {
  for (const char* o : {"suid", "dev", "ro,dev"}) {
    absl::StatusOr<std::string> r = CheckUserMountOptions(o, UserOptionRules());
    ASSERT_TRUE(absl::IsPermissionDenied(r.status())) << o;
    EXPECT_NE(r.status().message().find("nosuid,nodev"), std::string::npos);
  }
}

TEST(UserMountOptionsTest, DaemonSetOptionsAndKernelOptionsAreRefused) {
  for (const char* o : {"user_id=0", "group_id=0", "fd=3", "rootmode=40000",
                        "allow_root", "blkdev", "max_read=4096",
                        "context=system_u:object_r:tmp_t"}) {
    absl::StatusOr<std::string> r = CheckUserMountOptions(o, UserOptionRules());
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << o;
  }
}

TEST(UserMountOptionsTest, AllowOtherFollowsTheRules) {
  UserOptionRules rules;
  rules.allow_other_refusal = "because";
  absl::StatusOr<std::string> r = CheckUserMountOptions("allow_other", rules);
  ASSERT_TRUE(absl::IsPermissionDenied(r.status()));
  EXPECT_EQ(r.status().message(), "option allow_other is not allowed: because");
  rules.allow_other_permitted = true;
  EXPECT_EQ(*CheckUserMountOptions("allow_other", rules),
            "allow_other,cache_entries=100000,nosuid,nodev");
}

TEST(UserMountOptionsTest, CacheEntriesAreCapped) {
  UserOptionRules rules;
  rules.max_cache_entries = 100;
  EXPECT_TRUE(CheckUserMountOptions("cache_entries=100", rules).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      CheckUserMountOptions("cache_entries=101", rules).status()));
  // Not asked for: the cap, not the default for root's mounts, and shown.
  EXPECT_EQ(*CheckUserMountOptions("ro", rules),
            "ro,cache_entries=100,nosuid,nodev");
}

}  // namespace
}  // namespace fusehost
