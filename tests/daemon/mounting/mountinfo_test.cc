#include "daemon/mounting/mountinfo.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(MountinfoTest, ParsesTypeSourceAndEscapes) {
  std::vector<MountinfoEntry> e = ParseMountinfo(
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "99 22 0:77 / /tmp/a\\040b rw,nosuid shared:5 - fuse.hostd "
      "unix:/x\\040y rw,user_id=0\n"
      "garbage\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].mountpoint, "/tmp/a b");
  EXPECT_EQ(e[1].fs_type, "fuse.hostd");
  EXPECT_EQ(e[1].source, "unix:/x y");
  EXPECT_EQ(e[1].device, makedev(0, 77));
  EXPECT_EQ(e[1].mount_id, 99);
  EXPECT_TRUE(IsFuseType(e[1].fs_type));
  EXPECT_TRUE(IsFuseType("fuse"));
  EXPECT_FALSE(IsFuseType("fuseblk"));
  EXPECT_FALSE(IsFuseType(e[0].fs_type));
}

TEST(MountinfoTest, EscapeRoundTrips) {
  std::string odd = "/a b\tc\nd\\e";
  EXPECT_EQ(EscapeMountPath(odd), "/a\\040b\\011c\\012d\\134e");
  EXPECT_EQ(UnescapeMountPath(EscapeMountPath(odd)), odd);
  EXPECT_EQ(UnescapeMountPath("\\04"), "\\04");  // truncated: kept
}

TEST(MountinfoTest, MountIdOfADescriptorIsInMountinfo) {
  // mountinfo lists only mounts whose mountpoint is under the process's
  // root: in a chroot, the mount holding "/" is outside it and not listed.
  // The file read is on a mount that must be: it was reached from the root
  // and is how mountinfo is read at all.
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int id = MountIdOfFd(fd);
  close(fd);
  ASSERT_GT(id, 0);
  bool found = false;
  for (const MountinfoEntry& e : ReadMountinfo()) found |= e.mount_id == id;
  EXPECT_TRUE(found);
  EXPECT_EQ(MountIdOfFd(-1), -1);
}

}  // namespace
}  // namespace fusehost
