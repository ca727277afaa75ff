#include "daemon/mounting/mount_record.h"

#include <sys/sysmacros.h>

#include <cstdio>

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

TEST(MountRecordTest, WriteThenRead) {
  ScratchDir dir;
  std::string path = dir.Sub("mounts");
  EXPECT_TRUE(ReadMountRecord(path).empty());
  std::vector<RecordedMount> in = {{1, makedev(0, 50), "/m/one", 300},
                                   {7, makedev(0, 51), "/m/t w o", 301}};
  ASSERT_TRUE(WriteMountRecord(path, in).ok());
  std::vector<RecordedMount> out = ReadMountRecord(path);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].mount_id, 7u);
  EXPECT_EQ(out[1].device, makedev(0, 51));
  EXPECT_EQ(out[1].mountpoint, "/m/t w o");
  EXPECT_EQ(out[1].kernel_mount_id, 301);
  ASSERT_TRUE(WriteMountRecord(path, {}).ok());
  EXPECT_TRUE(ReadMountRecord(path).empty());
}

TEST(MountRecordTest, RecordsWithoutAMountIdStillRead) {
  ScratchDir dir;
  std::string path = dir.Sub("mounts");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("3 0:52 /m/old\n", f);
  fclose(f);
  std::vector<RecordedMount> out = ReadMountRecord(path);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].mountpoint, "/m/old");
  EXPECT_EQ(out[0].kernel_mount_id, 0);
}

}  // namespace
}  // namespace fusehost
