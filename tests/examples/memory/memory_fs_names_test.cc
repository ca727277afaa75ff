// MemoryFs's names and directories: hard links, renames and their flags,
// removal rules, name lengths, special files and symlinks, listings, and
// access.

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/memory/memory_fs_fixture.h"

namespace fusehost {
namespace examples {
namespace {

TEST_F(MemoryFsTest, HardLinksShareInode) {
  MakeFile("/a", "shared");
  ASSERT_EQ(fs_.Link(root_, "/a", "/b"), 0);
  struct stat a = Stat("/a");
  struct stat b = Stat("/b");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(ReadAll("/b"), "shared");
  FileInfo fi;
  fi.flags = O_WRONLY;
  ASSERT_EQ(fs_.Open(root_, "/b", &fi), 0);
  size_t written;
  ASSERT_EQ(fs_.Write(root_, "/b", "SH", 0, fi, &written), 0);
  fs_.Release(root_, "/b", fi);
  EXPECT_EQ(ReadAll("/a"), "SHared");
  ASSERT_EQ(fs_.Unlink(root_, "/a"), 0);
  EXPECT_EQ(Stat("/b").st_nlink, 1u);
  EXPECT_EQ(fs_.Link(root_, "/b", "/b"), EEXIST);
  ASSERT_EQ(fs_.Mkdir(root_, "/d", 0755), 0);
  EXPECT_EQ(fs_.Link(root_, "/d", "/d2"), EPERM);
}

TEST_F(MemoryFsTest, RenameFlags) {
  MakeFile("/a", "A");
  MakeFile("/b", "B");
  EXPECT_EQ(fs_.Rename(root_, "/a", "/b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(fs_.Rename(root_, "/a", "/c", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(fs_.Rename(root_, "/a", "/b", RENAME_NOREPLACE | RENAME_EXCHANGE),
            EINVAL);
  EXPECT_EQ(fs_.Rename(root_, "/a", "/b", 1u << 8), EINVAL);

  ASSERT_EQ(fs_.Rename(root_, "/a", "/b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadAll("/a"), "B");
  EXPECT_EQ(ReadAll("/b"), "A");

  ASSERT_EQ(fs_.Rename(root_, "/a", "/c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(ReadAll("/c"), "B");
  struct stat st;
  EXPECT_EQ(fs_.Getattr(root_, "/a", nullptr, &st), ENOENT);

  ASSERT_EQ(fs_.Rename(root_, "/c", "/b", 0), 0);  // replaces
  EXPECT_EQ(ReadAll("/b"), "B");
}

TEST_F(MemoryFsTest, RenameTypeRules) {
  ASSERT_EQ(fs_.Mkdir(root_, "/d", 0755), 0);
  ASSERT_EQ(fs_.Mkdir(root_, "/full", 0755), 0);
  MakeFile("/full/x", "");
  ASSERT_EQ(fs_.Mkdir(root_, "/empty", 0755), 0);
  MakeFile("/f", "");

  EXPECT_EQ(fs_.Rename(root_, "/d", "/full", 0), ENOTEMPTY);
  EXPECT_EQ(fs_.Rename(root_, "/d", "/f", 0), ENOTDIR);
  EXPECT_EQ(fs_.Rename(root_, "/f", "/d", 0), EISDIR);
  EXPECT_EQ(fs_.Rename(root_, "/d", "/d/sub", 0), EINVAL);
  EXPECT_EQ(fs_.Rename(root_, "/full/x", "/full", 0), ENOTEMPTY);
  EXPECT_EQ(fs_.Rename(root_, "/missing", "/z", 0), ENOENT);

  ASSERT_EQ(fs_.Rename(root_, "/d", "/empty", 0), 0);  // over an empty dir
  EXPECT_TRUE(S_ISDIR(Stat("/empty").st_mode));

  // Moving a directory updates both parents' link counts.
  EXPECT_EQ(Stat("/").st_nlink, 4u);  // ".", "..", full, empty
  ASSERT_EQ(fs_.Rename(root_, "/empty", "/full/moved", 0), 0);
  EXPECT_EQ(Stat("/").st_nlink, 3u);
  EXPECT_EQ(Stat("/full").st_nlink, 3u);
}

TEST_F(MemoryFsTest, RenameBetweenHardLinksIsNoOp) {
  MakeFile("/a", "x");
  ASSERT_EQ(fs_.Link(root_, "/a", "/b"), 0);
  ASSERT_EQ(fs_.Rename(root_, "/a", "/b", 0), 0);
  EXPECT_EQ(Stat("/a").st_nlink, 2u);
  EXPECT_EQ(Stat("/b").st_nlink, 2u);
}

TEST_F(MemoryFsTest, RemovalRules) {
  ASSERT_EQ(fs_.Mkdir(root_, "/d", 0755), 0);
  MakeFile("/d/f", "");
  EXPECT_EQ(fs_.Rmdir(root_, "/d"), ENOTEMPTY);
  EXPECT_EQ(fs_.Unlink(root_, "/d"), EISDIR);
  EXPECT_EQ(fs_.Rmdir(root_, "/d/f"), ENOTDIR);
  EXPECT_EQ(fs_.Unlink(root_, "/d/missing"), ENOENT);
  EXPECT_EQ(fs_.Mkdir(root_, "/d/f/sub", 0755), ENOTDIR);
  ASSERT_EQ(fs_.Unlink(root_, "/d/f"), 0);
  ASSERT_EQ(fs_.Rmdir(root_, "/d"), 0);
  EXPECT_EQ(fs_.Rmdir(root_, "/"), EBUSY);
  EXPECT_EQ(fs_.Mkdir(root_, "/", 0755), EEXIST);
}

TEST_F(MemoryFsTest, NameLength) {
  const std::string longest(255, 'n');
  ASSERT_EQ(fs_.Mkdir(root_, "/" + longest, 0755), 0);
  EXPECT_EQ(fs_.Mkdir(root_, "/" + longest + "n", 0755), ENAMETOOLONG);
  struct stat st;
  EXPECT_EQ(fs_.Getattr(root_, "/" + longest + "n/x", nullptr, &st),
            ENAMETOOLONG);
  FileInfo fi;
  EXPECT_EQ(fs_.Create(root_, "/" + longest + "/" + longest + "x", 0644, &fi),
            ENAMETOOLONG);
}

TEST_F(MemoryFsTest, SpecialFilesAndSymlinks) {
  ASSERT_EQ(fs_.Mknod(root_, "/fifo", S_IFIFO | 0600, 0), 0);
  EXPECT_TRUE(S_ISFIFO(Stat("/fifo").st_mode));
  EXPECT_EQ(Stat("/fifo").st_mode & 07777, 0600u);
  ASSERT_EQ(fs_.Mknod(root_, "/null", S_IFCHR | 0666, makedev(1, 3)), 0);
  EXPECT_EQ(Stat("/null").st_rdev, makedev(1, 3));
  ASSERT_EQ(fs_.Mknod(root_, "/sock", S_IFSOCK | 0600, 0), 0);
  ASSERT_EQ(fs_.Mknod(root_, "/plain", 0600, 0), 0);
  EXPECT_TRUE(S_ISREG(Stat("/plain").st_mode));
  EXPECT_EQ(fs_.Mknod(root_, "/fifo", S_IFIFO | 0600, 0), EEXIST);

  ASSERT_EQ(fs_.Symlink(root_, "../some/where", "/link"), 0);
  struct stat link = Stat("/link");
  EXPECT_TRUE(S_ISLNK(link.st_mode));
  EXPECT_EQ(link.st_size, 13);
  std::string target;
  ASSERT_EQ(fs_.Readlink(root_, "/link", &target), 0);
  EXPECT_EQ(target, "../some/where");
  EXPECT_EQ(fs_.Readlink(root_, "/fifo", &target), EINVAL);

  std::string data;
  FileInfo fi;
  ASSERT_EQ(fs_.Opendir(root_, "/", &fi), 0);
  EXPECT_EQ(fs_.Read(root_, "/", &data, 10, 0, fi), EISDIR);
  fs_.Releasedir(root_, "/", fi);
}

TEST_F(MemoryFsTest, ReaddirListsEverythingWithAttributes) {
  ASSERT_EQ(fs_.Mkdir(root_, "/d", 0755), 0);
  MakeFile("/d/file", "abc");
  ASSERT_EQ(fs_.Mkdir(root_, "/d/sub", 0700), 0);
  ASSERT_EQ(fs_.Symlink(root_, "file", "/d/link"), 0);
  FileInfo fi;
  ASSERT_EQ(fs_.Opendir(root_, "/d", &fi), 0);
  std::vector<DirEntry> entries;
  bool eof = false;
  ASSERT_EQ(fs_.Readdir(root_, "/d", 0, fi, &entries, &eof), 0);
  EXPECT_TRUE(eof);
  std::set<std::string> names;
  for (const DirEntry& entry : entries) {
    names.insert(entry.name);
    EXPECT_TRUE(entry.has_attr);
    EXPECT_EQ(entry.offset, 0u);
    EXPECT_EQ(entry.st.st_ino, Stat("/d/" + entry.name).st_ino);
    if (entry.name == "file") {
      EXPECT_EQ(entry.st.st_size, 3);
    }
    if (entry.name == "sub") {
      EXPECT_TRUE(S_ISDIR(entry.st.st_mode));
    }
  }
  EXPECT_EQ(names, (std::set<std::string>{"file", "link", "sub"}));
  EXPECT_EQ(Stat("/d").st_nlink, 3u);
  fs_.Releasedir(root_, "/d", fi);
  FileInfo not_dir;
  EXPECT_EQ(fs_.Opendir(root_, "/d/file", &not_dir), ENOTDIR);
}

TEST_F(MemoryFsTest, AccessReportsExistenceOnly) {
  MakeFile("/f", "");
  EXPECT_EQ(fs_.Access(User(5, 5), "/f", R_OK | W_OK), 0);
  EXPECT_EQ(fs_.Access(root_, "/missing", F_OK), ENOENT);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
