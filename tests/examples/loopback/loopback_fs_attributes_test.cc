// LoopbackFs's operations on attributes, driven directly on a directory
// under TEST_TMPDIR: extended attributes, attributes by path and by handle,
// access and statfs.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/loopback/loopback_fs_fixture.h"

namespace fusehost {
namespace examples {
namespace {

TEST_F(LoopbackFsTest, ExtendedAttributes) {
  MakeFile("/f", "");
  const std::string value("v\0binary", 8);
  int rc = fs_->Setxattr(Self(), "/f", "user.k", value, 0);
  std::string got;
  std::string list;
  if (rc == ENOTSUP) {
    // The test directory's filesystem has no user xattrs: the loopback must
    // say exactly that, for every xattr operation.
    EXPECT_EQ(fs_->Getxattr(Self(), "/f", "user.k", &got), ENOTSUP);
    EXPECT_EQ(fs_->Removexattr(Self(), "/f", "user.k"), ENOTSUP);
    return;
  }
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(fs_->Getxattr(Self(), "/f", "user.k", &got), 0);
  EXPECT_EQ(got, value);
  char host[16];
  ASSERT_EQ(getxattr(Host("/f").c_str(), "user.k", host, sizeof(host)), 8);
  EXPECT_EQ(std::string(host, 8), value);

  EXPECT_EQ(fs_->Setxattr(Self(), "/f", "user.k", "x", XATTR_CREATE), EEXIST);
  EXPECT_EQ(fs_->Setxattr(Self(), "/f", "user.n", "x", XATTR_REPLACE), ENODATA);
  ASSERT_EQ(fs_->Setxattr(Self(), "/f", "user.e", "", 0), 0);
  ASSERT_EQ(fs_->Getxattr(Self(), "/f", "user.e", &got), 0);
  EXPECT_EQ(got, "");

  ASSERT_EQ(fs_->Listxattr(Self(), "/f", &list), 0);
  std::vector<std::string> names;
  for (size_t pos = 0; pos < list.size();) {
    size_t end = list.find('\0', pos);
    ASSERT_NE(end, std::string::npos) << "names end with NUL";
    names.push_back(list.substr(pos, end - pos));
    pos = end + 1;
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf({"user.k", "user.e"}));

  ASSERT_EQ(fs_->Removexattr(Self(), "/f", "user.k"), 0);
  EXPECT_EQ(fs_->Getxattr(Self(), "/f", "user.k", &got), ENODATA);
  EXPECT_EQ(fs_->Removexattr(Self(), "/f", "user.k"), ENODATA);
  EXPECT_EQ(fs_->Getxattr(Self(), "/missing", "user.k", &got), ENOENT);

  // On the root and on a directory, too.
  ASSERT_EQ(fs_->Setxattr(Self(), "/", "user.root", "r", 0), 0);
  ASSERT_EQ(fs_->Getxattr(Self(), "/", "user.root", &got), 0);
  EXPECT_EQ(got, "r");
  // user.* attributes are not allowed on symlinks; the symlink itself (not
  // its target) is what answers.
  ASSERT_EQ(fs_->Symlink(Self(), "f", "/s"), 0);
  EXPECT_EQ(fs_->Setxattr(Self(), "/s", "user.k", "x", 0), EPERM);
}

TEST_F(LoopbackFsTest, AttributesByPathAndByHandle) {
  MakeFile("/f", "0123456789");
  ASSERT_EQ(fs_->Chmod(Self(), "/f", 04711, nullptr), 0);
  EXPECT_EQ(Stat("/f").st_mode, S_IFREG | 04711);
  ASSERT_EQ(fs_->Truncate(Self(), "/f", 3, nullptr), 0);
  EXPECT_EQ(ReadAll("/f"), "012");
  // -1 leaves an id unchanged.
  ASSERT_EQ(fs_->Chown(Self(), "/f", static_cast<uid_t>(-1),
                       static_cast<gid_t>(-1), nullptr),
            0);
  EXPECT_EQ(Stat("/f").st_uid, geteuid());

  TimeSpec atime;
  atime.time = {1000, 5};
  TimeSpec mtime;
  mtime.omit = true;
  const struct stat before = Stat("/f");
  ASSERT_EQ(fs_->Utimens(Self(), "/f", atime, mtime, nullptr), 0);
  struct stat st = Stat("/f");
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

  FileInfo fi;
  fi.flags = O_RDWR;
  ASSERT_EQ(fs_->Open(Self(), "/f", &fi), 0);
  atime = TimeSpec();
  atime.omit = true;
  mtime = TimeSpec();
  mtime.now = true;
  ASSERT_EQ(fs_->Utimens(Self(), "/f", atime, mtime, &fi), 0);
  st = Stat("/f");
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_GT(st.st_mtim.tv_sec, 1000);
  ASSERT_EQ(fs_->Chown(Self(), "/f", geteuid(), getegid(), &fi), 0);
  ASSERT_EQ(fs_->Truncate(Self(), "/f", 1, &fi), 0);
  EXPECT_EQ(Stat("/f").st_size, 1);
  EXPECT_EQ(fs_->Release(Self(), "/f", fi), 0);

  // A symlink's own times change; its target's do not.
  ASSERT_EQ(fs_->Symlink(Self(), "f", "/s"), 0);
  atime = TimeSpec();
  atime.time = {2000, 0};
  mtime = atime;
  ASSERT_EQ(fs_->Utimens(Self(), "/s", atime, mtime, nullptr), 0);
  EXPECT_EQ(Stat("/s").st_mtim.tv_sec, 2000);
  EXPECT_NE(Stat("/f").st_mtim.tv_sec, 2000);
}

TEST_F(LoopbackFsTest, AccessAndStatfs) {
  MakeFile("/f", "", 0644);
  EXPECT_EQ(fs_->Access(Self(), "/f", F_OK), 0);
  EXPECT_EQ(fs_->Access(Self(), "/f", R_OK | W_OK), 0);
  EXPECT_EQ(fs_->Access(Self(), "/missing", F_OK), ENOENT);
  struct statvfs st = {};
  ASSERT_EQ(fs_->Statfs(Self(), "/", &st), 0);
  struct statvfs host = {};
  ASSERT_EQ(statvfs(root_.c_str(), &host), 0);
  EXPECT_EQ(st.f_bsize, host.f_bsize);
  EXPECT_EQ(st.f_blocks, host.f_blocks);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
