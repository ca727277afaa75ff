// MemoryFs's attributes: extended attributes, owners and groups of new
// files, chmod and chown rules, set-id bits cleared by changes of others,
// and timestamps.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include <cerrno>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/memory/memory_fs_fixture.h"
#include "tests/examples/set_id_changes.h"

namespace fusehost {
namespace examples {
namespace {

bool operator<(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec;
}
bool operator==(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

TEST_F(MemoryFsTest, Xattrs) {
  MakeFile("/f", "");
  std::string value;
  EXPECT_EQ(fs_.Getxattr(root_, "/f", "user.a", &value), ENODATA);
  EXPECT_EQ(fs_.Setxattr(root_, "/f", "user.a", "1", XATTR_REPLACE), ENODATA);
  ASSERT_EQ(fs_.Setxattr(root_, "/f", "user.a", "1", XATTR_CREATE), 0);
  EXPECT_EQ(fs_.Setxattr(root_, "/f", "user.a", "2", XATTR_CREATE), EEXIST);
  ASSERT_EQ(fs_.Setxattr(root_, "/f", "user.a", "2", XATTR_REPLACE), 0);
  ASSERT_EQ(fs_.Setxattr(root_, "/f", "user.b", std::string("x\0y", 3), 0), 0);
  ASSERT_EQ(fs_.Getxattr(root_, "/f", "user.a", &value), 0);
  EXPECT_EQ(value, "2");
  ASSERT_EQ(fs_.Getxattr(root_, "/f", "user.b", &value), 0);
  EXPECT_EQ(value, std::string("x\0y", 3));
  std::string list;
  ASSERT_EQ(fs_.Listxattr(root_, "/f", &list), 0);
  EXPECT_EQ(list, std::string("user.a\0user.b\0", 14));
  ASSERT_EQ(fs_.Removexattr(root_, "/f", "user.a"), 0);
  EXPECT_EQ(fs_.Removexattr(root_, "/f", "user.a"), ENODATA);
  EXPECT_EQ(fs_.Setxattr(root_, "/f", "", "v", 0), ERANGE);
  EXPECT_EQ(fs_.Setxattr(root_, "/missing", "user.a", "v", 0), ENOENT);
}

TEST_F(MemoryFsTest, NewFilesBelongToCaller) {
  const Context alice = User(1000, 1000);
  ASSERT_EQ(fs_.Mkdir(alice, "/home", 0755), 0);
  MakeFile("/home/f", "", alice);
  struct stat st = Stat("/home/f");
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
}

TEST_F(MemoryFsTest, SetgidDirectoryPassesGroupOn) {
  ASSERT_EQ(fs_.Mkdir(root_, "/shared", 0775), 0);
  ASSERT_EQ(fs_.Chown(root_, "/shared", 0, 50, nullptr), 0);
  ASSERT_EQ(fs_.Chmod(root_, "/shared", 02775, nullptr), 0);
  const Context alice = User(1000, 1000);
  MakeFile("/shared/f", "", alice);
  EXPECT_EQ(Stat("/shared/f").st_gid, 50u);
  EXPECT_EQ(Stat("/shared/f").st_uid, 1000u);
  ASSERT_EQ(fs_.Mkdir(alice, "/shared/sub", 0755), 0);
  struct stat sub = Stat("/shared/sub");
  EXPECT_EQ(sub.st_gid, 50u);
  EXPECT_TRUE(sub.st_mode & S_ISGID);
}

TEST_F(MemoryFsTest, ChmodOwnership) {
  const Context alice = User(1000, 1000);
  const Context bob = User(1001, 1001);
  MakeFile("/f", "", alice);
  EXPECT_EQ(fs_.Chmod(bob, "/f", 0777, nullptr), EPERM);
  ASSERT_EQ(fs_.Chmod(alice, "/f", 0600, nullptr), 0);
  EXPECT_EQ(Stat("/f").st_mode, S_IFREG | 0600u);
  ASSERT_EQ(fs_.Chmod(root_, "/f", 06755, nullptr), 0);
  EXPECT_EQ(Stat("/f").st_mode & 07777, 06755u);
  // What the kernel sends for a non-owner writing a set-id file.
  EXPECT_EQ(fs_.Chmod(bob, "/f", 00755, nullptr), 0);
  EXPECT_EQ(Stat("/f").st_mode & 07777, 0755u);
  // Setgid is dropped when the owner is not in the file's group.
  ASSERT_EQ(fs_.Chown(root_, "/f", 1000, 50, nullptr), 0);
  ASSERT_EQ(fs_.Chmod(alice, "/f", 02755, nullptr), 0);
  EXPECT_EQ(Stat("/f").st_mode & 07777, 0755u);
}

TEST_F(MemoryFsTest, ChangesByOthersClearSetIdBits) {
  // Without the kernel's chmod before them (it sends none before an O_TRUNC
  // open, nor when its cached mode lacks the bits): the backend's own rule.
  const Context alice = User(1000, 1000);
  const Context bob = User(1001, 1001);
  for (const SetIdChange& change : SetIdChanges()) {
    for (const Context* ctx : {&bob, static_cast<const Context*>(&root_)}) {
      SCOPED_TRACE(std::string(change.name) + " by uid " +
                   std::to_string(ctx->uid));
      const std::string path =
          "/" + std::string(change.name) + std::to_string(ctx->uid);
      MakeFile(path, "data", alice);
      ASSERT_EQ(fs_.Chmod(alice, path, 06777, nullptr), 0);
      FileInfo fi;
      fi.flags = O_RDWR;
      ASSERT_EQ(fs_.Open(*ctx, path, &fi), 0);
      EXPECT_EQ(change.run(fs_, *ctx, path, fi), 0);
      fs_.Release(*ctx, path, fi);
      EXPECT_EQ(Stat(path).st_mode & 07777, ctx == &root_ ? 06777u : 0777u);
    }
  }
  // S_ISGID of a file that is not group-executable stays.
  MakeFile("/nogx", "data", alice);
  ASSERT_EQ(fs_.Chmod(alice, "/nogx", 06767, nullptr), 0);
  ASSERT_EQ(fs_.Truncate(bob, "/nogx", 0, nullptr), 0);
  EXPECT_EQ(Stat("/nogx").st_mode & 07777, 02767u);
}

TEST_F(MemoryFsTest, ChownRules) {
  const Context alice = User(1000, 1000, {1000, 2000});
  const Context bob = User(1001, 1001);
  MakeFile("/f", "", alice);
  ASSERT_EQ(fs_.Chmod(alice, "/f", 06755, nullptr), 0);
  const uid_t keep_uid = static_cast<uid_t>(-1);
  const gid_t keep_gid = static_cast<gid_t>(-1);

  EXPECT_EQ(fs_.Chown(alice, "/f", 1001, keep_gid, nullptr), EPERM);
  EXPECT_EQ(fs_.Chown(alice, "/f", keep_uid, 3000, nullptr), EPERM);
  EXPECT_EQ(fs_.Chown(bob, "/f", keep_uid, 1001, nullptr), EPERM);
  EXPECT_EQ(Stat("/f").st_mode & 07777, 06755u);  // failures change nothing

  ASSERT_EQ(fs_.Chown(alice, "/f", keep_uid, 2000, nullptr), 0);
  struct stat st = Stat("/f");
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // set-id bits cleared

  ASSERT_EQ(fs_.Chmod(root_, "/f", 06755, nullptr), 0);
  ASSERT_EQ(fs_.Chown(root_, "/f", 1001, 1001, nullptr), 0);
  st = Stat("/f");
  EXPECT_EQ(st.st_uid, 1001u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 06755u);  // root keeps them

  // Through a handle, on a file without a name.
  FileInfo fi = CreateOpen("/g", alice);
  ASSERT_EQ(fs_.Unlink(alice, "/g"), 0);
  ASSERT_EQ(fs_.Chown(root_, "", 7, 8, &fi), 0);
  EXPECT_EQ(Stat("", &fi).st_uid, 7u);
  fs_.Release(alice, "", fi);
}

TEST_F(MemoryFsTest, TimestampsOnWriteAndTruncate) {
  FileInfo fi = CreateOpen("/f", root_);
  Age("/f");
  struct stat before = Stat("/f");
  size_t written;
  ASSERT_EQ(fs_.Write(root_, "/f", "x", 0, fi, &written), 0);
  struct stat after = Stat("/f");
  EXPECT_TRUE(before.st_mtim < after.st_mtim);
  EXPECT_TRUE(before.st_ctim < after.st_ctim ||
              before.st_ctim == after.st_ctim);
  EXPECT_EQ(after.st_atim.tv_sec, 1000);  // writing is not reading

  Age("/f");
  ASSERT_EQ(fs_.Truncate(root_, "/f", 0, nullptr), 0);
  EXPECT_LT(1000, Stat("/f").st_mtim.tv_sec);

  Age("/f");
  std::string data;
  ASSERT_EQ(fs_.Read(root_, "/f", &data, 1, 0, fi), 0);
  EXPECT_LT(1000, Stat("/f").st_atim.tv_sec);
  EXPECT_EQ(Stat("/f").st_mtim.tv_sec, 1000);
  fs_.Release(root_, "/f", fi);
}

TEST_F(MemoryFsTest, MetadataChangesTouchOnlyCtime) {
  MakeFile("/f", "");
  Age("/f");
  struct stat before = Stat("/f");
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(fs_.Chmod(root_, "/f", 0600, nullptr), 0);
  struct stat after = Stat("/f");
  EXPECT_TRUE(before.st_ctim < after.st_ctim);
  EXPECT_EQ(after.st_mtim.tv_sec, 1000);

  before = after;
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(fs_.Link(root_, "/f", "/g"), 0);
  EXPECT_TRUE(before.st_ctim < Stat("/f").st_ctim);
  EXPECT_EQ(Stat("/f").st_mtim.tv_sec, 1000);

  before = Stat("/f");
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(fs_.Rename(root_, "/g", "/h", 0), 0);
  EXPECT_TRUE(before.st_ctim < Stat("/h").st_ctim);
}

TEST_F(MemoryFsTest, DirectoryChangesTouchParent) {
  ASSERT_EQ(fs_.Mkdir(root_, "/d", 0755), 0);
  for (auto change : std::vector<std::function<int()>>{
           [&] { return fs_.Mkdir(root_, "/d/sub", 0755); },
           [&] { return fs_.Rmdir(root_, "/d/sub"); },
           [&] { return fs_.Symlink(root_, "t", "/d/l"); },
           [&] { return fs_.Rename(root_, "/d/l", "/d/m", 0); },
           [&] { return fs_.Unlink(root_, "/d/m"); },
       }) {
    Age("/d");
    struct stat before = Stat("/d");
    absl::SleepFor(absl::Milliseconds(2));
    ASSERT_EQ(change(), 0);
    struct stat after = Stat("/d");
    EXPECT_LT(1000, after.st_mtim.tv_sec);
    EXPECT_TRUE(before.st_ctim < after.st_ctim);
  }
}

TEST_F(MemoryFsTest, UtimensNowAndOmit) {
  MakeFile("/f", "");
  TimeSpec set;
  set.time.tv_sec = 5000;
  set.time.tv_nsec = 7;
  TimeSpec omit;
  omit.omit = true;
  TimeSpec now;
  now.now = true;
  ASSERT_EQ(fs_.Utimens(root_, "/f", set, omit, nullptr), 0);
  struct stat st = Stat("/f");
  EXPECT_EQ(st.st_atim.tv_sec, 5000);
  EXPECT_EQ(st.st_atim.tv_nsec, 7);
  EXPECT_NE(st.st_mtim.tv_sec, 5000);
  ASSERT_EQ(fs_.Utimens(root_, "/f", omit, now, nullptr), 0);
  st = Stat("/f");
  EXPECT_EQ(st.st_atim.tv_sec, 5000);
  EXPECT_GE(st.st_mtim.tv_sec, absl::ToUnixSeconds(absl::Now()) - 60);
  // Explicit times need ownership; "now" is left to the kernel's checks.
  const Context bob = User(1001, 1001);
  EXPECT_EQ(fs_.Utimens(bob, "/f", set, set, nullptr), EPERM);
  EXPECT_EQ(fs_.Utimens(bob, "/f", now, now, nullptr), 0);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
