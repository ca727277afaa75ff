#include "daemon/authz/mountpoint_policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

constexpr int64_t kExt4 = 0xEF53;
constexpr int64_t kProc = 0x9FA0;

MountpointFacts Dir(uid_t owner, mode_t perms, int64_t fs = kExt4) {
  return MountpointFacts{owner, static_cast<mode_t>(S_IFDIR | perms), fs, 0};
}

TEST(MountpointPolicyTest, OwnWritableDirectoryOnExt4IsFine) {
  EXPECT_TRUE(CheckUserMountpoint(Dir(1000, 0755), 1000, true, "/m").ok());
}

TEST(MountpointPolicyTest, SomeoneElsesDirectory) {
  absl::Status st = CheckUserMountpoint(Dir(0, 0777), 1000, true, "/m");
  ASSERT_TRUE(absl::IsPermissionDenied(st));
  EXPECT_EQ(st.message(), "mountpoint /m is not owned by you (owner uid 0)");
  // Without the ownership rule (fusermount3's), write access is enough...
  EXPECT_TRUE(CheckUserMountpoint(Dir(0, 0777), 1000, false, "/m").ok());
  // ...except in a sticky directory of someone else.
  st = CheckUserMountpoint(Dir(0, 01777), 1000, false, "/tmp");
  ASSERT_TRUE(absl::IsPermissionDenied(st));
  EXPECT_NE(st.message().find("sticky"), std::string::npos);
}

TEST(MountpointPolicyTest, NoWriteAccess) {
  MountpointFacts f = Dir(1000, 0555);
  f.write_errno = EACCES;
  absl::Status st = CheckUserMountpoint(f, 1000, true, "/m");
  ASSERT_TRUE(absl::IsPermissionDenied(st));
  EXPECT_NE(st.message().find("may not write"), std::string::npos);
}

TEST(MountpointPolicyTest, FileSystemTypes) {
  absl::Status st = CheckUserMountpoint(Dir(1000, 0755, kProc), 1000, true,
                                        "/proc/self/fd");
  ASSERT_TRUE(absl::IsPermissionDenied(st));
  EXPECT_NE(st.message().find("0x00009fa0"), std::string::npos) << st;
  EXPECT_TRUE(IsAllowedUnderlyingFs(0x01021994));  // tmpfs
  EXPECT_TRUE(IsAllowedUnderlyingFs(0x65735546));  // fuse
  EXPECT_TRUE(IsAllowedUnderlyingFs(0x58465342));  // xfs
  EXPECT_FALSE(IsAllowedUnderlyingFs(0x62656572));  // sysfs
}

TEST(MountpointPolicyTest, NotADirectory) {
  MountpointFacts f{1000, S_IFREG | 0644, kExt4, 0};
  EXPECT_TRUE(absl::IsPermissionDenied(CheckUserMountpoint(f, 1000, true, "/f")));
}

TEST(MountpointPolicyTest, PathOfADescriptor) {
  int fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  absl::StatusOr<std::string> path = PathOfFd(fd);
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "/tmp");
  close(fd);
}

}  // namespace
}  // namespace fusehost
