// LoopbackFs's operations on names and directories, driven directly on a
// directory under TEST_TMPDIR: errors, path checks, renames, links,
// symlinks, special files and listings.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/loopback/loopback_fs_fixture.h"

namespace fusehost {
namespace examples {
namespace {

using ::testing::UnorderedElementsAre;

TEST_F(LoopbackFsTest, ErrorsAreTheSyscallsErrno) {
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  EXPECT_EQ(Stat("/d").st_mode, S_IFDIR | 0755);
  EXPECT_EQ(fs_->Mkdir(Self(), "/d", 0755), EEXIST);
  MakeFile("/d/f", "");
  EXPECT_EQ(fs_->Rmdir(Self(), "/d"), ENOTEMPTY);
  EXPECT_EQ(fs_->Unlink(Self(), "/d"), EISDIR);
  EXPECT_EQ(fs_->Rmdir(Self(), "/d/f"), ENOTDIR);
  EXPECT_EQ(fs_->Mkdir(Self(), "/d/f/x", 0755), ENOTDIR);
  EXPECT_EQ(fs_->Unlink(Self(), "/nope/x"), ENOENT);
  EXPECT_EQ(fs_->Unlink(Self(), "/d/f"), 0);
  EXPECT_EQ(fs_->Rmdir(Self(), "/d"), 0);
}

TEST_F(LoopbackFsTest, RefusesPathsThatAreNotCanonical) {
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(Self(), "/..", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), "/a/../..", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), "relative", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), "/a//b", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), "/a/", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), "/./a", nullptr, &st), EINVAL);
  EXPECT_EQ(fs_->Getattr(Self(), std::string("/a\0b", 4), nullptr, &st),
            EINVAL);
  // Empty: no name (unlinked); only handle-based calls can use it.
  EXPECT_EQ(fs_->Getattr(Self(), "", nullptr, &st), ENOENT);
  EXPECT_EQ(fs_->Getattr(Self(), "/", nullptr, &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(LoopbackFsTest, DoesNotFollowSymlinksOutOfTheRoot) {
  // A directory swapped for a symlink on the host, behind the daemon's back.
  ASSERT_EQ(mkdir((root_ + ".outside").c_str(), 0755), 0);
  ASSERT_EQ(close(creat((root_ + ".outside/secret").c_str(), 0644)), 0);
  ASSERT_EQ(symlink((root_ + ".outside").c_str(), Host("/d").c_str()), 0);
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(Self(), "/d/secret", nullptr, &st),
            fs_->confines_paths() ? ELOOP : 0);
  // The last component is never followed.
  ASSERT_EQ(fs_->Getattr(Self(), "/d", nullptr, &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  FileInfo fi;
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(Self(), "/d", &fi), ELOOP);
  EXPECT_EQ(fs_->Opendir(Self(), "/d", &fi), ENOTDIR);
  EXPECT_EQ(fs_->Chmod(Self(), "/d", 0700, nullptr), EOPNOTSUPP);
  EXPECT_EQ(fs_->Truncate(Self(), "/d", 0, nullptr), EINVAL);
}

TEST_F(LoopbackFsTest, RenameFlags) {
  MakeFile("/a", "A");
  MakeFile("/b", "B");
  EXPECT_EQ(fs_->Rename(Self(), "/a", "/b", RENAME_NOREPLACE), EEXIST);
  ASSERT_EQ(fs_->Rename(Self(), "/a", "/b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadAll("/a"), "B");
  EXPECT_EQ(ReadAll("/b"), "A");
  EXPECT_EQ(fs_->Rename(Self(), "/a", "/c", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(fs_->Rename(Self(), "/a", "/b", RENAME_NOREPLACE | RENAME_EXCHANGE),
            EINVAL);
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  ASSERT_EQ(fs_->Rename(Self(), "/a", "/d/a", RENAME_NOREPLACE), 0);
  ASSERT_EQ(fs_->Rename(Self(), "/d/a", "/b", 0), 0);
  EXPECT_EQ(ReadAll("/b"), "B");
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(Self(), "/d/a", nullptr, &st), ENOENT);
}

TEST_F(LoopbackFsTest, HardLinksShareTheInode) {
  MakeFile("/a", "data");
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  ASSERT_EQ(fs_->Link(Self(), "/a", "/d/b"), 0);
  struct stat a = Stat("/a");
  struct stat b = Stat("/d/b");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_nlink, 2u);
  struct stat host = {};
  ASSERT_EQ(lstat(Host("/a").c_str(), &host), 0);
  EXPECT_EQ(a.st_ino, host.st_ino);
  EXPECT_EQ(fs_->Link(Self(), "/a", "/d/b"), EEXIST);
  EXPECT_EQ(fs_->Link(Self(), "/d", "/e"), EPERM);
}

TEST_F(LoopbackFsTest, Symlinks) {
  ASSERT_EQ(fs_->Symlink(Self(), "../some/where", "/s"), 0);
  std::string target;
  ASSERT_EQ(fs_->Readlink(Self(), "/s", &target), 0);
  EXPECT_EQ(target, "../some/where");
  struct stat st = Stat("/s");
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 13);
  EXPECT_EQ(fs_->Symlink(Self(), "x", "/s"), EEXIST);
  MakeFile("/f", "");
  EXPECT_EQ(fs_->Readlink(Self(), "/f", &target), EINVAL);
  // Linking a symlink links the symlink itself.
  ASSERT_EQ(fs_->Link(Self(), "/s", "/s2"), 0);
  EXPECT_TRUE(S_ISLNK(Stat("/s2").st_mode));
}

TEST_F(LoopbackFsTest, ReaddirListsEverythingWithAttributes) {
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0750), 0);
  MakeFile("/d/file", "12345", 0604);
  ASSERT_EQ(fs_->Mkdir(Self(), "/d/sub", 0700), 0);
  ASSERT_EQ(fs_->Symlink(Self(), "file", "/d/link"), 0);
  ASSERT_EQ(fs_->Mknod(Self(), "/d/fifo", S_IFIFO | 0600, 0), 0);

  FileInfo fi;
  fi.flags = O_RDONLY;
  ASSERT_EQ(fs_->Opendir(Self(), "/d", &fi), 0);
  for (int round = 0; round < 2; ++round) {  // a second read starts over
    std::vector<DirEntry> entries;
    bool eof = false;
    ASSERT_EQ(fs_->Readdir(Self(), "/d", 0, fi, &entries, &eof), 0);
    EXPECT_TRUE(eof);
    std::vector<std::string> names;
    for (const DirEntry& e : entries) {
      names.push_back(e.name);
      EXPECT_TRUE(e.has_attr) << e.name;
      EXPECT_EQ(e.offset, 0u);
      struct stat st = Stat("/d/" + e.name);
      EXPECT_EQ(e.st.st_ino, st.st_ino) << e.name;
      EXPECT_EQ(e.st.st_mode, st.st_mode) << e.name;
      EXPECT_EQ(e.st.st_size, st.st_size) << e.name;
      EXPECT_EQ(e.st.st_nlink, st.st_nlink) << e.name;
    }
    EXPECT_THAT(names, UnorderedElementsAre("file", "sub", "link", "fifo"));
  }
  // A handle is a real directory descriptor: fchmod through it works.
  ASSERT_EQ(fs_->Chmod(Self(), "/d", 0755, &fi), 0);
  EXPECT_EQ(Stat("/d").st_mode, S_IFDIR | 0755);
  EXPECT_EQ(fs_->Fsyncdir(Self(), "/d", false, fi), 0);
  EXPECT_EQ(fs_->Releasedir(Self(), "/d", fi), 0);

  EXPECT_EQ(fs_->Opendir(Self(), "/d/file", &fi), ENOTDIR);
  EXPECT_EQ(fs_->Opendir(Self(), "/none", &fi), ENOENT);
}

TEST_F(LoopbackFsTest, ReaddirSaysWhichExtendedAttributesEachEntryHas) {
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  MakeFile("/d/tagged", "x", 0644);
  MakeFile("/d/plain", "x", 0644);
  ASSERT_EQ(fs_->Symlink(Self(), "tagged", "/d/link"), 0);
  ASSERT_EQ(setxattr(Host("/d/tagged").c_str(), "user.one", "1", 1, 0), 0)
      << "the test directory's file system takes user.* attributes";
  ASSERT_EQ(setxattr(Host("/d/tagged").c_str(), "user.two", "2", 1, 0), 0);

  FileInfo fi;  // no handle: listed by path
  std::vector<DirEntry> entries;
  bool eof = false;
  ASSERT_EQ(fs_->Readdir(Self(), "/d", 0, fi, &entries, &eof), 0);
  ASSERT_EQ(entries.size(), 3u);
  for (const DirEntry& e : entries) {
    EXPECT_TRUE(e.xattr_names_known) << e.name;
    if (e.name == "tagged") {
      EXPECT_THAT(e.xattr_names, UnorderedElementsAre("user.one", "user.two"));
    } else {
      // The link's own (none), not its target's.
      EXPECT_THAT(e.xattr_names, ::testing::IsEmpty()) << e.name;
    }
  }
}

TEST_F(LoopbackFsTest, ReaddirOfRemovedDirectory) {
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  FileInfo fi;
  ASSERT_EQ(fs_->Opendir(Self(), "/d", &fi), 0);
  ASSERT_EQ(fs_->Rmdir(Self(), "/d"), 0);
  // Linux answers getdents on a removed directory with ENOENT; so does the
  // loopback, by handle.
  std::vector<DirEntry> entries;
  bool eof = false;
  EXPECT_EQ(fs_->Readdir(Self(), "", 0, fi, &entries, &eof), ENOENT);
  EXPECT_TRUE(entries.empty());
  struct stat st = {};
  ASSERT_EQ(fs_->Getattr(Self(), "", &fi, &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(fs_->Releasedir(Self(), "", fi), 0);
}

TEST_F(LoopbackFsTest, MknodKinds) {
  ASSERT_EQ(fs_->Mknod(Self(), "/fifo", S_IFIFO | 0640, 0), 0);
  EXPECT_EQ(Stat("/fifo").st_mode, S_IFIFO | 0640);
  ASSERT_EQ(fs_->Mknod(Self(), "/sock", S_IFSOCK | 0600, 0), 0);
  EXPECT_EQ(Stat("/sock").st_mode, S_IFSOCK | 0600);
  ASSERT_EQ(fs_->Mknod(Self(), "/reg", S_IFREG | 0600, 0), 0);
  EXPECT_EQ(Stat("/reg").st_mode, S_IFREG | 0600);
  EXPECT_EQ(fs_->Mknod(Self(), "/reg", S_IFREG | 0600, 0), EEXIST);
  // Truncating a FIFO is refused as truncate(2) refuses it, without opening.
  EXPECT_EQ(fs_->Truncate(Self(), "/fifo", 0, nullptr), EINVAL);

  const dev_t null_dev = makedev(1, 3);
  int rc = fs_->Mknod(Self(), "/null", S_IFCHR | 0666, null_dev);
  if (CanActAsOthers()) {
    ASSERT_EQ(rc, 0);
    struct stat st = Stat("/null");
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, null_dev);
    // An ordinary user may not, whatever the backend's own rights.
    ASSERT_EQ(fs_->Mkdir(Self(), "/pub", 0777), 0);
    EXPECT_EQ(
        fs_->Mknod(User(kUser, kGroup), "/pub/null", S_IFCHR | 0666, null_dev),
        EPERM);
  } else {
    EXPECT_EQ(rc, EPERM);
  }
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
