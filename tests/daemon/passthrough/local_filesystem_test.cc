// Which filesystems backing files and loopback roots may be on: storage
// filesystems of this machine, not pseudo, network or FUSE filesystems.

#include "daemon/passthrough/local_filesystem.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(LocalFilesystem, StorageIsLocalAndPseudoNetworkAndFuseAreNot) {
  EXPECT_TRUE(IsLocalStorageFilesystem(0xEF53));      // ext4
  EXPECT_TRUE(IsLocalStorageFilesystem(0x01021994));  // tmpfs
  EXPECT_TRUE(IsLocalStorageFilesystem(0x58465342));  // XFS
  EXPECT_FALSE(IsLocalStorageFilesystem(0x9FA0));       // proc
  EXPECT_FALSE(IsLocalStorageFilesystem(0x62656572));   // sysfs
  EXPECT_FALSE(IsLocalStorageFilesystem(0x64626720));   // debugfs
  EXPECT_FALSE(IsLocalStorageFilesystem(0x63677270));   // cgroup2
  EXPECT_FALSE(IsLocalStorageFilesystem(0x65735546));   // FUSE
  EXPECT_FALSE(IsLocalStorageFilesystem(0x6969));       // NFS
  EXPECT_FALSE(IsLocalStorageFilesystem(0));
}

TEST(LocalFilesystem, ChecksTheDescriptorsFilesystem) {
  int tmp = open("/tmp", O_PATH | O_DIRECTORY);
  ASSERT_GE(tmp, 0);
  EXPECT_TRUE(CheckLocalStorageFilesystem(tmp).ok());
  close(tmp);
  int proc = open("/proc/self/status", O_RDONLY);
  ASSERT_GE(proc, 0);
  absl::Status s = CheckLocalStorageFilesystem(proc);
  close(proc);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("0x9fa0"), std::string::npos) << s;
  EXPECT_FALSE(CheckLocalStorageFilesystem(-1).ok());
}

}  // namespace
}  // namespace fusehost
