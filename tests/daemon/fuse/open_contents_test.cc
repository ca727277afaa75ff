#include "daemon/fuse/open_contents.h"

#include <string>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(OpenContentsTest, FirstReadAtZeroIsServedOnce) {
  OpenContents contents;
  contents.Keep(7, 100, "hello");
  std::string out;
  ASSERT_TRUE(contents.TakeFirstRead(7, 0, 131072, &out));
  EXPECT_EQ(out, "hello");  // short: end of file
  EXPECT_FALSE(contents.TakeFirstRead(7, 0, 131072, &out));
}

TEST(OpenContentsTest, ShortReadGetsThePrefixOnly) {
  OpenContents contents;
  contents.Keep(7, 100, "hello");
  std::string out;
  ASSERT_TRUE(contents.TakeFirstRead(7, 0, 2, &out));
  EXPECT_EQ(out, "he");
  EXPECT_FALSE(contents.TakeFirstRead(7, 2, 3, &out));  // backend's now
}

TEST(OpenContentsTest, FirstReadElsewhereForgetsThem) {
  OpenContents contents;
  contents.Keep(7, 100, "hello");
  std::string out;
  EXPECT_FALSE(contents.TakeFirstRead(7, 3, 10, &out));
  EXPECT_FALSE(contents.TakeFirstRead(7, 0, 10, &out));
}

TEST(OpenContentsTest, WritesAndReleasesForgetThem) {
  OpenContents contents;
  contents.Keep(1, 100, "a");
  contents.Keep(2, 100, "a");
  contents.Keep(3, 200, "b");
  contents.ForgetInode(100);
  std::string out;
  EXPECT_FALSE(contents.TakeFirstRead(1, 0, 10, &out));
  EXPECT_FALSE(contents.TakeFirstRead(2, 0, 10, &out));
  contents.ForgetHandle(3);
  EXPECT_FALSE(contents.TakeFirstRead(3, 0, 10, &out));
}

TEST(OpenContentsTest, BoundedInBytes) {
  OpenContents contents(/*max_bytes=*/8);
  contents.Keep(1, 100, "12345");
  contents.Keep(2, 101, "6789");  // would make 9 bytes: not kept
  std::string out;
  EXPECT_FALSE(contents.TakeFirstRead(2, 0, 10, &out));
  ASSERT_TRUE(contents.TakeFirstRead(1, 0, 10, &out));
  contents.Keep(2, 101, "6789");  // room again
  EXPECT_TRUE(contents.TakeFirstRead(2, 0, 10, &out));
  EXPECT_EQ(out, "6789");
}

}  // namespace
}  // namespace fusehost
