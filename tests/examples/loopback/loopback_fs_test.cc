// Drives LoopbackFs directly (no mount, no gRPC) on a directory under
// TEST_TMPDIR and checks the results against the host directory itself.

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "examples/loopback/caller_credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/set_id_changes.h"

namespace fusehost {
namespace examples {
namespace {

using ::testing::UnorderedElementsAre;

constexpr uid_t kUser = 12345;
constexpr gid_t kGroup = 12345;

bool CanActAsOthers() {
  return geteuid() == 0 && CallerCredentials::ProcessCanSwitch();
}

class LoopbackFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/loopback.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << strerror(errno);
    // Looking up names in the root needs search permission there for other
    // users, as on the host; mkdtemp made it 0700.
    ASSERT_EQ(chmod(pattern.c_str(), 0755), 0);
    root_ = pattern;
    LoopbackFs::Options options;
    options.root = root_;
    auto fs = LoopbackFs::New(options);
    ASSERT_TRUE(fs.ok()) << fs.status();
    fs_ = *std::move(fs);
  }

  // The host path of mount path `path`.
  std::string Host(const std::string& path) const { return root_ + path; }

  // Creates `path` with `contents` through the filesystem and leaves it open
  // for reading and writing.
  FileInfo CreateOpen(const std::string& path, const std::string& contents,
                      mode_t mode = 0644, const Context& ctx = Self()) {
    FileInfo fi;
    fi.flags = O_RDWR;
    EXPECT_EQ(fs_->Create(ctx, path, S_IFREG | mode, &fi), 0) << path;
    size_t written = 0;
    EXPECT_EQ(fs_->Write(ctx, path, contents, 0, fi, &written), 0) << path;
    EXPECT_EQ(written, contents.size()) << path;
    return fi;
  }

  // Creates `path` with `contents` through the filesystem.
  void MakeFile(const std::string& path, const std::string& contents,
                mode_t mode = 0644, const Context& ctx = Self()) {
    EXPECT_EQ(fs_->Release(ctx, path, CreateOpen(path, contents, mode, ctx)),
              0);
  }

  std::string ReadAll(const std::string& path) {
    FileInfo fi;
    fi.flags = O_RDONLY;
    EXPECT_EQ(fs_->Open(Self(), path, &fi), 0);
    std::string data;
    EXPECT_EQ(fs_->Read(Self(), path, &data, 1 << 16, 0, fi), 0);
    EXPECT_EQ(fs_->Release(Self(), path, fi), 0);
    return data;
  }

  struct stat Stat(const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(fs_->Getattr(Self(), path, nullptr, &st), 0) << path;
    return st;
  }

  std::string root_;
  std::unique_ptr<LoopbackFs> fs_;
};

TEST(LoopbackFsNewTest, RefusesMissingRootAndFiles) {
  LoopbackFs::Options options;
  options.root = "/nonexistent/loopback/root";
  auto missing = LoopbackFs::New(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              ::testing::HasSubstr("/nonexistent/loopback/root"));
  options.root = "/proc/self/status";
  EXPECT_FALSE(LoopbackFs::New(options).ok());
}

TEST_F(LoopbackFsTest, InitLeavesLocksToTheKernelByDefault) {
  InitResult init = fs_->Init(MountInfo());
  EXPECT_EQ(init.posix_errno, 0);
  EXPECT_FALSE(init.flock_locks);
  EXPECT_FALSE(init.posix_locks);
}

TEST(LoopbackFsOptionsTest, ForwardFlockAsksForFlock) {
  LoopbackFs::Options options;
  options.root = ::testing::TempDir();
  options.forward_flock = true;
  absl::StatusOr<std::unique_ptr<LoopbackFs>> fs = LoopbackFs::New(options);
  ASSERT_TRUE(fs.ok()) << fs.status();
  EXPECT_TRUE((*fs)->Init(MountInfo()).flock_locks);
}

TEST_F(LoopbackFsTest, CreateWriteReadAndUseAfterUnlink) {
  FileInfo fi = CreateOpen("/f", "hello world", 0640);
  ASSERT_EQ(fs_->Unlink(Self(), "/f"), 0);
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(Self(), "/f", nullptr, &st), ENOENT);
  EXPECT_EQ(access(Host("/f").c_str(), F_OK), -1);

  // The open file lives on, reachable by handle with an empty path.
  ASSERT_EQ(fs_->Getattr(Self(), "", &fi, &st), 0);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(st.st_nlink, 0u);
  std::string data;
  ASSERT_EQ(fs_->Read(Self(), "", &data, 5, 6, fi), 0);
  EXPECT_EQ(data, "world");
  ASSERT_EQ(fs_->Truncate(Self(), "", 5, &fi), 0);
  ASSERT_EQ(fs_->Chmod(Self(), "", 0600, &fi), 0);
  ASSERT_EQ(fs_->Getattr(Self(), "", &fi, &st), 0);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_mode, S_IFREG | 0600);
  data.clear();
  ASSERT_EQ(fs_->Read(Self(), "", &data, 100, 0, fi), 0);
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(fs_->Flush(Self(), "", fi), 0);
  EXPECT_EQ(fs_->Fsync(Self(), "", /*datasync=*/true, fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "", fi), 0);
}

TEST_F(LoopbackFsTest, CreateUsesModeAsGivenWithoutProcessUmask) {
  const mode_t old = umask(022);
  // On another thread, so that this thread can still see the process umask.
  std::thread creator([&] { MakeFile("/wide", "", 0666); });
  creator.join();
  EXPECT_EQ(Stat("/wide").st_mode, S_IFREG | 0666);
  EXPECT_EQ(umask(old), 022u) << "the process umask must stay";
}

TEST_F(LoopbackFsTest, CreateHonoursExclusive) {
  MakeFile("/f", "x");
  FileInfo fi;
  fi.flags = O_WRONLY | O_CREAT | O_EXCL;
  EXPECT_EQ(fs_->Create(Self(), "/f", S_IFREG | 0644, &fi), EEXIST);
  // Without O_EXCL an existing file is opened, as open(O_CREAT) would.
  fi.flags = O_WRONLY | O_CREAT | O_TRUNC;
  ASSERT_EQ(fs_->Create(Self(), "/f", S_IFREG | 0644, &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/f", fi), 0);
  EXPECT_EQ(Stat("/f").st_size, 0);
}

TEST_F(LoopbackFsTest, OpenHonoursFlags) {
  MakeFile("/f", "0123456789");
  FileInfo fi;
  fi.flags = O_WRONLY | O_APPEND;
  ASSERT_EQ(fs_->Open(Self(), "/f", &fi), 0);
  size_t written = 0;
  // O_APPEND: the offset is ignored.
  ASSERT_EQ(fs_->Write(Self(), "/f", "ab", 0, fi, &written), 0);
  ASSERT_EQ(fs_->Release(Self(), "/f", fi), 0);
  EXPECT_EQ(ReadAll("/f"), "0123456789ab");

  fi = FileInfo();
  fi.flags = O_WRONLY | O_TRUNC;
  ASSERT_EQ(fs_->Open(Self(), "/f", &fi), 0);
  ASSERT_EQ(fs_->Release(Self(), "/f", fi), 0);
  EXPECT_EQ(ReadAll("/f"), "");

  // O_DIRECT: unaligned buffers still work.
  fi = FileInfo();
  fi.flags = O_RDWR | O_DIRECT;
  ASSERT_EQ(fs_->Open(Self(), "/f", &fi), 0);
  ASSERT_EQ(fs_->Write(Self(), "/f", "odd", 1, fi, &written), 0);
  std::string data;
  ASSERT_EQ(fs_->Read(Self(), "/f", &data, 3, 1, fi), 0);
  EXPECT_EQ(data, "odd");
  ASSERT_EQ(fs_->Release(Self(), "/f", fi), 0);

  fi = FileInfo();
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(Self(), "/missing", &fi), ENOENT);
  ASSERT_EQ(fs_->Mkdir(Self(), "/d", 0755), 0);
  fi.flags = O_WRONLY;
  EXPECT_EQ(fs_->Open(Self(), "/d", &fi), EISDIR);
}

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

TEST_F(LoopbackFsTest, FlockIsPerOpen) {
  MakeFile("/f", "");
  FileInfo first;
  FileInfo second;
  ASSERT_EQ(fs_->Open(Self(), "/f", &first), 0);
  ASSERT_EQ(fs_->Open(Self(), "/f", &second), 0);
  ASSERT_EQ(fs_->Flock(Self(), "/f", first, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(fs_->Flock(Self(), "/f", second, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  ASSERT_EQ(fs_->Flock(Self(), "/f", first, LOCK_UN), 0);
  EXPECT_EQ(fs_->Flock(Self(), "/f", second, LOCK_SH | LOCK_NB), 0);
  EXPECT_EQ(fs_->Release(Self(), "/f", first), 0);
  EXPECT_EQ(fs_->Release(Self(), "/f", second), 0);
}

TEST_F(LoopbackFsTest, FallocateCopyFileRangeAndSeekData) {
  FileInfo in = CreateOpen("/in", "abcdef");
  FileInfo out = CreateOpen("/out", "");

  size_t copied = 0;
  ASSERT_EQ(
      fs_->CopyFileRange(Self(), "/in", in, 2, "/out", out, 1, 3, 0, &copied),
      0);
  EXPECT_EQ(copied, 3u);
  EXPECT_EQ(ReadAll("/out"), std::string("\0cde", 4));

  ASSERT_EQ(fs_->Fallocate(Self(), "/out", 0, 0, 1 << 20, out), 0);
  EXPECT_EQ(Stat("/out").st_size, 1 << 20);
  EXPECT_EQ(fs_->Fallocate(Self(), "/out", -1, 0, 1, out), EOPNOTSUPP);

  off_t at = -1;
  ASSERT_EQ(fs_->Lseek(Self(), "/in", 0, SEEK_DATA, in, &at), 0);
  EXPECT_EQ(at, 0);
  ASSERT_EQ(fs_->Lseek(Self(), "/in", 0, SEEK_HOLE, in, &at), 0);
  EXPECT_EQ(at, 6);
  EXPECT_EQ(fs_->Lseek(Self(), "/in", 7, SEEK_DATA, in, &at), ENXIO);

  EXPECT_EQ(fs_->Release(Self(), "/in", in), 0);
  EXPECT_EQ(fs_->Release(Self(), "/out", out), 0);
}

TEST_F(LoopbackFsTest, RefusesUnknownHandles) {
  FileInfo bogus;
  bogus.fh = uint64_t{1} << 40;
  std::string data;
  EXPECT_EQ(fs_->Read(Self(), "/f", &data, 1, 0, bogus), EBADF);
  EXPECT_EQ(fs_->Release(Self(), "/f", bogus), EBADF);
}

// The number of the descriptor that has the host file `host_path` open in
// this process, or -1.
int DescriptorOf(const std::string& host_path) {
  for (int fd = 0; fd < 1024; ++fd) {
    char link[PATH_MAX];
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(proc.c_str(), link, sizeof(link));
    if (n > 0 && std::string(link, static_cast<size_t>(n)) == host_path) {
      return fd;
    }
  }
  return -1;
}

TEST_F(LoopbackFsTest, DescriptorNumbersAreNoHandles) {
  FileInfo fi = CreateOpen("/secret", "secret data", 0600);
  const int fd = DescriptorOf(Host("/secret"));
  ASSERT_GE(fd, 0);
  FileInfo forged;
  forged.fh = static_cast<uint64_t>(fd);
  std::string data;
  EXPECT_EQ(fs_->Read(Self(), "/secret", &data, 100, 0, forged), EBADF);
  EXPECT_EQ(data, "");
  EXPECT_EQ(fs_->Release(Self(), "/secret", fi), 0);
}

TEST_F(LoopbackFsTest, ReleasedHandleNeverReachesALaterOpen) {
  // One open is released; the next open gets the same descriptor number
  // from the kernel. The first handle must not reach the second file.
  FileInfo first = CreateOpen("/first", "first");
  ASSERT_EQ(fs_->Release(Self(), "/first", first), 0);
  FileInfo second = CreateOpen("/second", "second secret", 0600);
  EXPECT_NE(first.fh, second.fh);
  std::string data;
  EXPECT_EQ(fs_->Read(Self(), "/first", &data, 100, 0, first), EBADF);
  EXPECT_EQ(data, "");
  size_t written = 0;
  EXPECT_EQ(fs_->Write(Self(), "/first", "overwritten", 0, first, &written),
            EBADF);
  EXPECT_EQ(fs_->Release(Self(), "/first", first), EBADF);
  // The second open is intact and still open.
  EXPECT_EQ(fs_->Read(Self(), "/second", &data, 100, 0, second), 0);
  EXPECT_EQ(data, "second secret");
  EXPECT_EQ(fs_->Release(Self(), "/second", second), 0);
}

// ---------------------------------------------------------------------------
// Acting as the caller (needs root).
// ---------------------------------------------------------------------------

class LoopbackFsAsCallerTest : public LoopbackFsTest {
 protected:
  void SetUp() override {
    if (!CanActAsOthers()) {
      GTEST_SKIP() << "needs root (CAP_SETUID and CAP_SETGID)";
    }
    LoopbackFsTest::SetUp();
    ASSERT_TRUE(fs_->acts_as_caller());
    // A directory everyone may create in, as /tmp.
    ASSERT_EQ(fs_->Mkdir(Self(), "/pub", 01777), 0);
  }

  // A second LoopbackFs of the same root that acts as itself for every
  // caller; null if it cannot be made.
  std::unique_ptr<LoopbackFs> NotActingAsCaller() {
    LoopbackFs::Options options;
    options.root = root_;
    options.act_as_caller = false;
    auto fs = LoopbackFs::New(options);
    EXPECT_TRUE(fs.ok()) << fs.status();
    return fs.ok() ? *std::move(fs) : nullptr;
  }
};

TEST_F(LoopbackFsAsCallerTest, NewFilesBelongToTheCaller) {
  const Context user = User(kUser, kGroup);
  MakeFile("/pub/f", "x", 0600, user);
  ASSERT_EQ(fs_->Mkdir(user, "/pub/d", 0700), 0);
  ASSERT_EQ(fs_->Symlink(user, "f", "/pub/s"), 0);
  ASSERT_EQ(fs_->Mknod(user, "/pub/p", S_IFIFO | 0600, 0), 0);
  for (const char* path : {"/pub/f", "/pub/d", "/pub/s", "/pub/p"}) {
    struct stat st = {};
    ASSERT_EQ(lstat(Host(path).c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, kUser) << path;
    EXPECT_EQ(st.st_gid, kGroup) << path;
  }
  // The thread is itself again afterwards.
  MakeFile("/pub/mine", "");
  EXPECT_EQ(Stat("/pub/mine").st_uid, 0u);
  // The caller's own file: xattrs through /proc/self/fd work as the caller.
  int rc = fs_->Setxattr(user, "/pub/f", "user.k", "v", 0);
  EXPECT_TRUE(rc == 0 || rc == ENOTSUP) << rc;
}

TEST_F(LoopbackFsAsCallerTest, PermissionsAreTheCallers) {
  MakeFile("/pub/secret", "root only", 0600);
  const Context user = User(kUser, kGroup);
  FileInfo fi;
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(user, "/pub/secret", &fi), EACCES);
  EXPECT_EQ(fs_->Access(user, "/pub/secret", R_OK), EACCES);
  EXPECT_EQ(fs_->Access(user, "/pub/secret", F_OK), 0);
  EXPECT_EQ(fs_->Chmod(user, "/pub/secret", 0644, nullptr), EPERM);
  EXPECT_EQ(fs_->Chown(user, "/pub/secret", kUser, kGroup, nullptr), EPERM);
  EXPECT_EQ(fs_->Truncate(user, "/pub/secret", 0, nullptr), EACCES);
  // Sticky directory: only the owner may remove.
  EXPECT_EQ(fs_->Unlink(user, "/pub/secret"), EPERM);
  std::string value;
  int rc = fs_->Getxattr(user, "/pub/secret", "user.k", &value);
  EXPECT_TRUE(rc == EACCES || rc == ENOTSUP) << rc;

  // Search permission on the way down counts too.
  ASSERT_EQ(fs_->Mkdir(Self(), "/closed", 0700), 0);
  MakeFile("/closed/f", "", 0644);
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(user, "/closed/f", nullptr, &st), EACCES);

  // Root itself may do all of it.
  EXPECT_EQ(fs_->Open(Self(), "/pub/secret", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/secret", fi), 0);
}

TEST_F(LoopbackFsAsCallerTest, SupplementaryGroupsCount) {
  MakeFile("/pub/g", "group data", 0640);
  ASSERT_EQ(fs_->Chown(Self(), "/pub/g", 0, 777, nullptr), 0);
  FileInfo fi;
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(User(kUser, kGroup), "/pub/g", &fi), EACCES);
  ASSERT_EQ(fs_->Open(User(kUser, kGroup, {777}), "/pub/g", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/g", fi), 0);
  // ... and the primary group.
  ASSERT_EQ(fs_->Open(User(kUser, 777), "/pub/g", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/g", fi), 0);
}

TEST_F(LoopbackFsAsCallerTest, ReaddirStatsAsTheCaller) {
  // Readable but not searchable: names and types, but no attributes.
  ASSERT_EQ(fs_->Mkdir(Self(), "/pub/rd", 0755), 0);
  MakeFile("/pub/rd/f", "");
  ASSERT_EQ(fs_->Chmod(Self(), "/pub/rd", 0744, nullptr), 0);
  const Context user = User(kUser, kGroup);
  FileInfo fi;
  ASSERT_EQ(fs_->Opendir(user, "/pub/rd", &fi), 0);
  std::vector<DirEntry> entries;
  bool eof = false;
  ASSERT_EQ(fs_->Readdir(user, "/pub/rd", 0, fi, &entries, &eof), 0);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "f");
  EXPECT_FALSE(entries[0].has_attr);
  EXPECT_TRUE(S_ISREG(entries[0].st.st_mode));
  EXPECT_EQ(fs_->Releasedir(user, "/pub/rd", fi), 0);

  ASSERT_EQ(fs_->Chmod(Self(), "/pub/rd", 0700, nullptr), 0);
  EXPECT_EQ(fs_->Opendir(user, "/pub/rd", &fi), EACCES);
}

TEST_F(LoopbackFsAsCallerTest, ConcurrentCallersDoNotMix) {
  constexpr int kThreads = 8;
  constexpr int kFilesEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const Context user = User(kUser + t, kGroup + t);
      for (int i = 0; i < kFilesEach; ++i) {
        const std::string path =
            "/pub/" + std::to_string(t) + "." + std::to_string(i);
        FileInfo fi;
        fi.flags = O_WRONLY;
        ASSERT_EQ(fs_->Create(user, path, S_IFREG | 0600, &fi), 0);
        ASSERT_EQ(fs_->Release(user, path, fi), 0);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kFilesEach; ++i) {
      struct stat st = {};
      const std::string path =
          Host("/pub/" + std::to_string(t) + "." + std::to_string(i));
      ASSERT_EQ(lstat(path.c_str(), &st), 0) << path;
      EXPECT_EQ(st.st_uid, kUser + t) << path;
      EXPECT_EQ(st.st_gid, kGroup + t) << path;
    }
  }
}

// The permission and set-id bits of `path` on the host.
mode_t HostPerms(const std::string& host_path) {
  struct stat st = {};
  EXPECT_EQ(lstat(host_path.c_str(), &st), 0) << host_path;
  return st.st_mode & 07777;
}

TEST_F(LoopbackFsAsCallerTest, WritersMayDropSetIdBitsOnly) {
  // Before another user's write, the kernel asks for exactly this chmod in
  // that user's name: the set-id bits gone, nothing else changed.
  const Context owner = User(kUser, kGroup);
  const Context writer = User(kUser + 1, kGroup + 1);
  MakeFile("/pub/f", "x", 0777, owner);
  auto set = [&](mode_t mode) {
    ASSERT_EQ(fs_->Chmod(owner, "/pub/f", mode, nullptr), 0);
  };
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, nullptr), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 0777u);
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 02777, nullptr), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 02777u);
  // Anything more is chmod(2), the owner's alone.
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0666, nullptr), EPERM);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 07777, nullptr), EPERM);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0, nullptr), EPERM);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 06777u);
  // S_ISGID without group execute is no privilege a write takes away.
  set(02767);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0767, nullptr), EPERM);
  // Only for someone who may write the file: by permission, or through a
  // handle open for writing.
  set(04755);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0755, nullptr), EPERM);
  set(04777);
  FileInfo reading;
  reading.flags = O_RDONLY;
  ASSERT_EQ(fs_->Open(writer, "/pub/f", &reading), 0);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, &reading), EPERM);
  FileInfo writing;
  writing.flags = O_WRONLY;
  ASSERT_EQ(fs_->Open(writer, "/pub/f", &writing), 0);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, &writing), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 0777u);
  EXPECT_EQ(fs_->Release(writer, "/pub/f", reading), 0);
  EXPECT_EQ(fs_->Release(writer, "/pub/f", writing), 0);
}

TEST_F(LoopbackFsAsCallerTest, WritesByOthersClearSetIdBitsAsTheBackendToo) {
  // Not acting as the caller, a root backend writes with CAP_FSETID: the
  // host kernel then keeps the bits, and the loopback must clear them.
  std::unique_ptr<LoopbackFs> fs = NotActingAsCaller();
  ASSERT_NE(fs, nullptr);
  for (const SetIdChange& change : SetIdChanges()) {
    for (const Context& ctx : {User(kUser, kGroup), Self()}) {
      SCOPED_TRACE(std::string(change.name) + " by uid " +
                   std::to_string(ctx.uid));
      const std::string path =
          "/pub/" + std::string(change.name) + "." + std::to_string(ctx.uid);
      MakeFile(path, "data", 0777);
      ASSERT_EQ(chmod(Host(path).c_str(), 06777), 0);
      FileInfo fi;
      fi.flags = O_RDWR;
      ASSERT_EQ(fs->Open(Self(), path, &fi), 0);
      EXPECT_EQ(change.run(*fs, ctx, path, fi), 0);
      EXPECT_EQ(fs->Release(Self(), path, fi), 0);
      // Root keeps them; anyone else's change clears both (group execute
      // is set).
      EXPECT_EQ(HostPerms(Host(path)), ctx.uid == 0 ? 06777u : 0777u);
    }
  }
}

TEST_F(LoopbackFsAsCallerTest, WithoutSwitchingEverythingRunsAsTheBackend) {
  std::unique_ptr<LoopbackFs> fs = NotActingAsCaller();
  ASSERT_NE(fs, nullptr);
  EXPECT_FALSE(fs->acts_as_caller());
  FileInfo fi;
  fi.flags = O_WRONLY;
  ASSERT_EQ(fs->Create(User(kUser, kGroup), "/pub/f", S_IFREG | 0600, &fi), 0);
  EXPECT_EQ(fs->Release(User(kUser, kGroup), "/pub/f", fi), 0);
  EXPECT_EQ(Stat("/pub/f").st_uid, geteuid());
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
