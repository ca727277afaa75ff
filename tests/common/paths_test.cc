#include "common/paths.h"

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(PathsTest, IsBelowMeansStrictlyInsideTheDirectory) {
  EXPECT_TRUE(IsBelow("/a/b", "/a"));
  EXPECT_TRUE(IsBelow("/a/b/c", "/a"));
  EXPECT_TRUE(IsBelow("/a", "/"));
  EXPECT_FALSE(IsBelow("/a", "/a"));
  EXPECT_FALSE(IsBelow("/ab", "/a"));
  EXPECT_FALSE(IsBelow("/a", "/a/b"));
  EXPECT_FALSE(IsBelow("/", "/"));
}

TEST(PathsTest, BelowKeyRangeHoldsExactlyTheDescendants) {
  auto [lo, hi] = BelowKeyRange("/a");
  for (const char* in : {"/a/", "/a/b", "/a/b/c", "/a/~"}) {
    EXPECT_TRUE(lo <= in && in < hi) << in;
  }
  for (const char* out : {"/a", "/a.b", "/a0", "/ab", "/b"}) {
    EXPECT_FALSE(lo <= out && out < hi) << out;
  }
  auto [root_lo, root_hi] = BelowKeyRange("/");
  EXPECT_EQ(root_lo, "/");
  EXPECT_EQ(root_hi, "0");
}

TEST(PathsTest, ParentBaseAndChild) {
  EXPECT_EQ(ParentPath("/a/b"), "/a");
  EXPECT_EQ(ParentPath("/a"), "/");
  EXPECT_EQ(BaseName("/a/b"), "b");
  EXPECT_EQ(ChildPathOf("/", "x"), "/x");
  EXPECT_EQ(ChildPathOf("/a", "x"), "/a/x");
}

}  // namespace
}  // namespace fusehost
