#include "daemon/mounting/mount_record.h"

#include <sys/sysmacros.h>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

TEST(MountRecordTest, WriteThenRead) {
  ScratchDir dir;
  std::string path = dir.Sub("mounts");
  EXPECT_TRUE(ReadMountRecord(path).empty());
  std::vector<RecordedMount> in = {{1, makedev(0, 50), "/m/one"},
                                   {7, makedev(0, 51), "/m/t w o"}};
  ASSERT_TRUE(WriteMountRecord(path, in).ok());
  std::vector<RecordedMount> out = ReadMountRecord(path);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].mount_id, 7u);
  EXPECT_EQ(out[1].device, makedev(0, 51));
  EXPECT_EQ(out[1].mountpoint, "/m/t w o");
  ASSERT_TRUE(WriteMountRecord(path, {}).ok());
  EXPECT_TRUE(ReadMountRecord(path).empty());
}

}  // namespace
}  // namespace fusehost
