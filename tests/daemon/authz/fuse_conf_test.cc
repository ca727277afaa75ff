#include "daemon/authz/fuse_conf.h"

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(FuseConfTest, DefaultsWhenEmptyOrCommented) {
  FuseConf c = ParseFuseConf("# user_allow_other\n#mount_max = 5\n");
  EXPECT_FALSE(c.user_allow_other);
  EXPECT_EQ(c.mount_max, 1000);
}

TEST(FuseConfTest, ReadsBothSettings) {
  FuseConf c = ParseFuseConf("  user_allow_other  \nmount_max = 7 # few\n");
  EXPECT_TRUE(c.user_allow_other);
  EXPECT_EQ(c.mount_max, 7);
}

TEST(FuseConfTest, IgnoresLookalikesAndGarbage) {
  FuseConf c = ParseFuseConf("user_allow_others\nmount_max=x\nnonsense\n");
  EXPECT_FALSE(c.user_allow_other);
  EXPECT_EQ(c.mount_max, 1000);
  EXPECT_EQ(ParseFuseConf("mount_max=3").mount_max, 3);
}

TEST(FuseConfTest, MissingFileGivesDefaults) {
  FuseConf c = ReadFuseConf("/nonexistent/fuse.conf");
  EXPECT_FALSE(c.user_allow_other);
  EXPECT_EQ(c.mount_max, 1000);
}

}  // namespace
}  // namespace fusehost
