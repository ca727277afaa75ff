// Drives LoopbackFs directly (no mount, no gRPC) on a directory under
// TEST_TMPDIR and checks the results against the host directory itself:
// construction and init, and the operations on open files (opening,
// creating, reading and writing, flock, fallocate, copy_file_range, lseek,
// handles). Names, attributes and acting as the caller are tested in
// loopback_fs_*_test.cc.

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/loopback/loopback_fs_fixture.h"

namespace fusehost {
namespace examples {
namespace {

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
}  // namespace
}  // namespace examples
}  // namespace fusehost
