#include "examples/memory/memory_fs.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
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

class MemoryFsTest : public ::testing::Test {
 protected:
  MemoryFsTest() : fs_(RootOptions()) {}

  static MemoryFs::Options RootOptions() {
    MemoryFs::Options options;
    options.root_mode = 0777;
    return options;
  }

  struct stat Stat(const std::string& path, const FileInfo* fi = nullptr) {
    struct stat st = {};
    EXPECT_EQ(fs_.Getattr(root_, path, fi, &st), 0) << path;
    return st;
  }

  // Creates `path` and leaves it open; returns the handle.
  FileInfo CreateOpen(const std::string& path, const Context& ctx,
                      mode_t mode = 0644) {
    FileInfo fi;
    fi.flags = O_RDWR | O_CREAT;
    EXPECT_EQ(fs_.Create(ctx, path, S_IFREG | mode, &fi), 0) << path;
    return fi;
  }

  void MakeFile(const std::string& path, const std::string& contents,
                const Context& ctx) {
    FileInfo fi = CreateOpen(path, ctx);
    size_t written = 0;
    ASSERT_EQ(fs_.Write(ctx, path, contents, 0, fi, &written), 0);
    ASSERT_EQ(written, contents.size());
    ASSERT_EQ(fs_.Release(ctx, path, fi), 0);
  }
  void MakeFile(const std::string& path, const std::string& contents) {
    MakeFile(path, contents, root_);
  }

  std::string ReadAll(const std::string& path, const FileInfo& fi) {
    std::string data;
    EXPECT_EQ(fs_.Read(root_, path, &data, 1 << 20, 0, fi), 0);
    return data;
  }
  std::string ReadAll(const std::string& path) {
    FileInfo fi;
    EXPECT_EQ(fs_.Open(root_, path, &fi), 0) << path;
    std::string data = ReadAll(path, fi);
    fs_.Release(root_, path, fi);
    return data;
  }

  // Sets atime and mtime of `path` far into the past, so that any later
  // update is visibly newer.
  void Age(const std::string& path) {
    TimeSpec old;
    old.time.tv_sec = 1000;
    ASSERT_EQ(fs_.Utimens(root_, path, old, old, nullptr), 0);
  }

  Context root_;
  MemoryFs fs_;
};

TEST_F(MemoryFsTest, WriteReadWithHoles) {
  FileInfo fi = CreateOpen("/f", root_);
  size_t written = 0;
  ASSERT_EQ(fs_.Write(root_, "/f", "abc", 10, fi, &written), 0);
  EXPECT_EQ(written, 3u);
  EXPECT_EQ(Stat("/f").st_size, 13);
  EXPECT_EQ(ReadAll("/f", fi), std::string(10, '\0') + "abc");
  std::string tail;
  ASSERT_EQ(fs_.Read(root_, "/f", &tail, 100, 11, fi), 0);
  EXPECT_EQ(tail, "bc");
  std::string beyond;
  ASSERT_EQ(fs_.Read(root_, "/f", &beyond, 100, 50, fi), 0);
  EXPECT_EQ(beyond, "");
}

TEST_F(MemoryFsTest, AppendWritesAtEnd) {
  MakeFile("/f", "hello");
  FileInfo fi;
  fi.flags = O_WRONLY | O_APPEND;
  ASSERT_EQ(fs_.Open(root_, "/f", &fi), 0);
  size_t written = 0;
  ASSERT_EQ(fs_.Write(root_, "/f", " world", 0, fi, &written), 0);
  EXPECT_EQ(ReadAll("/f"), "hello world");
}

TEST_F(MemoryFsTest, OpenWithTruncEmptiesFile) {
  MakeFile("/f", "hello");
  FileInfo fi;
  fi.flags = O_WRONLY | O_TRUNC;
  ASSERT_EQ(fs_.Open(root_, "/f", &fi), 0);
  EXPECT_EQ(Stat("/f").st_size, 0);
}

TEST_F(MemoryFsTest, UnlinkedOpenFileStaysUsable) {
  FileInfo fi = CreateOpen("/f", root_);
  size_t written = 0;
  ASSERT_EQ(fs_.Write(root_, "/f", "data", 0, fi, &written), 0);
  ASSERT_EQ(fs_.Unlink(root_, "/f"), 0);
  struct stat st;
  EXPECT_EQ(fs_.Getattr(root_, "/f", nullptr, &st), ENOENT);
  // The daemon sends an empty path for a file without a name.
  ASSERT_EQ(fs_.Write(root_, "", "DATA+", 0, fi, &written), 0);
  EXPECT_EQ(ReadAll("", fi), "DATA+");
  struct stat open_st = Stat("", &fi);
  EXPECT_EQ(open_st.st_nlink, 0u);
  EXPECT_EQ(open_st.st_size, 5);
  ASSERT_EQ(fs_.Truncate(root_, "", 2, &fi), 0);
  EXPECT_EQ(ReadAll("", fi), "DA");
  ASSERT_EQ(fs_.Release(root_, "", fi), 0);
  EXPECT_EQ(fs_.Getattr(root_, "", &fi, &st), EBADF);
}

TEST_F(MemoryFsTest, ReleasedOrUnknownHandlesAreRefused) {
  // A handle no open holds is refused, not taken as "use the path": the
  // name may belong to another file by now.
  FileInfo fi = CreateOpen("/f", root_);
  ASSERT_EQ(fs_.Release(root_, "/f", fi), 0);
  MakeFile("/g", "secret");
  ASSERT_EQ(fs_.Rename(root_, "/g", "/f", 0), 0);
  std::string data;
  EXPECT_EQ(fs_.Read(root_, "/f", &data, 100, 0, fi), EBADF);
  EXPECT_EQ(data, "");
  size_t written = 0;
  EXPECT_EQ(fs_.Write(root_, "/f", "x", 0, fi, &written), EBADF);
  struct stat st;
  EXPECT_EQ(fs_.Getattr(root_, "/f", &fi, &st), EBADF);
  FileInfo never_opened;
  never_opened.fh = 12345;
  EXPECT_EQ(fs_.Truncate(root_, "/f", 0, &never_opened), EBADF);
  EXPECT_EQ(ReadAll("/f"), "secret");
}

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

TEST_F(MemoryFsTest, Fallocate) {
  FileInfo fi = CreateOpen("/f", root_);
  ASSERT_EQ(fs_.Fallocate(root_, "/f", 0, 0, 100, fi), 0);
  EXPECT_EQ(Stat("/f").st_size, 100);
  ASSERT_EQ(fs_.Fallocate(root_, "/f", FALLOC_FL_KEEP_SIZE, 0, 1000, fi), 0);
  EXPECT_EQ(Stat("/f").st_size, 100);
  ASSERT_EQ(fs_.Fallocate(root_, "/f", 0, 10, 10, fi), 0);  // inside: no-op
  EXPECT_EQ(Stat("/f").st_size, 100);
  EXPECT_EQ(
      fs_.Fallocate(root_, "/f", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                    10, fi),
      EOPNOTSUPP);
  EXPECT_EQ(fs_.Fallocate(root_, "/f", 0, 0, 0, fi), EINVAL);
  fs_.Release(root_, "/f", fi);
}

TEST_F(MemoryFsTest, CopyFileRange) {
  MakeFile("/src", "0123456789");
  FileInfo in, out;
  ASSERT_EQ(fs_.Open(root_, "/src", &in), 0);
  out = CreateOpen("/dst", root_);
  size_t copied = 0;
  ASSERT_EQ(
      fs_.CopyFileRange(root_, "/src", in, 2, "/dst", out, 4, 100, 0, &copied),
      0);
  EXPECT_EQ(copied, 8u);
  EXPECT_EQ(ReadAll("/dst"), std::string(4, '\0') + "23456789");
  ASSERT_EQ(
      fs_.CopyFileRange(root_, "/src", in, 50, "/dst", out, 0, 10, 0, &copied),
      0);
  EXPECT_EQ(copied, 0u);
  EXPECT_EQ(
      fs_.CopyFileRange(root_, "/src", in, 0, "/src", in, 5, 8, 0, &copied),
      EINVAL);  // overlapping ranges in one file
  ASSERT_EQ(
      fs_.CopyFileRange(root_, "/src", in, 0, "/src", in, 10, 5, 0, &copied),
      0);
  EXPECT_EQ(ReadAll("/src"), "012345678901234");
  fs_.Release(root_, "/src", in);
  fs_.Release(root_, "/dst", out);
}

TEST_F(MemoryFsTest, LseekDataAndHole) {
  MakeFile("/f", "0123456789");
  FileInfo fi;
  ASSERT_EQ(fs_.Open(root_, "/f", &fi), 0);
  off_t result = -1;
  ASSERT_EQ(fs_.Lseek(root_, "/f", 3, SEEK_DATA, fi, &result), 0);
  EXPECT_EQ(result, 3);
  ASSERT_EQ(fs_.Lseek(root_, "/f", 3, SEEK_HOLE, fi, &result), 0);
  EXPECT_EQ(result, 10);
  EXPECT_EQ(fs_.Lseek(root_, "/f", 10, SEEK_DATA, fi, &result), ENXIO);
  EXPECT_EQ(fs_.Lseek(root_, "/f", 10, SEEK_HOLE, fi, &result), ENXIO);
  EXPECT_EQ(fs_.Lseek(root_, "/f", 0, SEEK_END, fi, &result), EINVAL);
  fs_.Release(root_, "/f", fi);
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

TEST_F(MemoryFsTest, StatfsAndCapacity) {
  MemoryFs::Options options;
  options.capacity_bytes = 1 << 20;
  options.max_inodes = 3;
  MemoryFs small(options);
  struct statvfs st;
  ASSERT_EQ(small.Statfs(root_, "/", &st), 0);
  EXPECT_EQ(st.f_namemax, 255u);
  EXPECT_EQ(st.f_blocks * st.f_frsize, uint64_t{1} << 20);
  EXPECT_EQ(st.f_bfree, st.f_blocks);
  EXPECT_EQ(st.f_ffree, 2u);

  FileInfo fi;
  ASSERT_EQ(small.Create(root_, "/f", S_IFREG | 0644, &fi), 0);
  size_t written;
  ASSERT_EQ(small.Write(root_, "/f", std::string(8192, 'x'), 0, fi, &written),
            0);
  ASSERT_EQ(small.Statfs(root_, "/", &st), 0);
  EXPECT_EQ(st.f_bfree, st.f_blocks - 2);
  EXPECT_EQ(st.f_ffree, 1u);
  EXPECT_EQ(small.Write(root_, "/f", "x", 2 << 20, fi, &written), EFBIG);
  EXPECT_EQ(small.Truncate(root_, "/f", (1 << 20) + 1, &fi), EFBIG);
  ASSERT_EQ(small.Mkdir(root_, "/d", 0755), 0);
  EXPECT_EQ(small.Mkdir(root_, "/e", 0755), ENOSPC);

  // Space comes back when the last name and the last handle are gone.
  ASSERT_EQ(small.Unlink(root_, "/f"), 0);
  ASSERT_EQ(small.Statfs(root_, "/", &st), 0);
  EXPECT_EQ(st.f_bfree, st.f_blocks - 2);
  ASSERT_EQ(small.Release(root_, "", fi), 0);
  ASSERT_EQ(small.Statfs(root_, "/", &st), 0);
  EXPECT_EQ(st.f_bfree, st.f_blocks);
  EXPECT_EQ(st.f_ffree, 1u);
}

TEST_F(MemoryFsTest, AccessReportsExistenceOnly) {
  MakeFile("/f", "");
  EXPECT_EQ(fs_.Access(User(5, 5), "/f", R_OK | W_OK), 0);
  EXPECT_EQ(fs_.Access(root_, "/missing", F_OK), ENOENT);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
