#include "daemon/passthrough/descriptor_check.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

class DescriptorCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/descriptor-check-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/f";
    int fd = open(file_.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  void TearDown() override {
    unlink(file_.c_str());
    rmdir(dir_.c_str());
  }

  absl::Status Check(int fd_flags, int open_flags) {
    int fd = open(file_.c_str(), fd_flags);
    EXPECT_GE(fd, 0);
    struct stat st;
    absl::Status s = CheckBackingDescriptor(fd, open_flags, &st);
    close(fd);
    return s;
  }

  std::string dir_, file_;
};

TEST_F(DescriptorCheckTest, RegularFileWithTheSameAccessModePasses) {
  EXPECT_TRUE(Check(O_RDONLY, O_RDONLY).ok());
  EXPECT_TRUE(Check(O_WRONLY, O_WRONLY | O_APPEND).ok());
  EXPECT_TRUE(Check(O_RDWR, O_RDWR | O_TRUNC).ok());
}

TEST_F(DescriptorCheckTest, AnotherAccessModeIsRefused) {
  // A read-only descriptor must not become a writable backing file.
  EXPECT_FALSE(Check(O_RDONLY, O_RDWR).ok());
  EXPECT_FALSE(Check(O_RDONLY, O_WRONLY).ok());
  // Nor a writable one a read-only open (exactly the open's mode).
  EXPECT_FALSE(Check(O_RDWR, O_RDONLY).ok());
}

TEST_F(DescriptorCheckTest, DirectoriesPipesSocketsAndPathsAreRefused) {
  struct stat st;
  int dir = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  EXPECT_FALSE(CheckBackingDescriptor(dir, O_RDONLY, &st).ok());
  close(dir);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_FALSE(CheckBackingDescriptor(pipe_fds[0], O_RDONLY, &st).ok());
  EXPECT_FALSE(CheckBackingDescriptor(pipe_fds[1], O_WRONLY, &st).ok());
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_FALSE(CheckBackingDescriptor(sv[0], O_RDWR, &st).ok());
  close(sv[0]);
  close(sv[1]);
  int path = open(file_.c_str(), O_PATH);
  ASSERT_GE(path, 0);
  EXPECT_FALSE(CheckBackingDescriptor(path, O_RDONLY, &st).ok());
  close(path);
  EXPECT_FALSE(CheckBackingDescriptor(-1, O_RDONLY, &st).ok());
}

TEST_F(DescriptorCheckTest, SetIdFilesAreOnlyPassedThroughForReading) {
  ASSERT_EQ(chmod(file_.c_str(), 04755), 0);
  EXPECT_FALSE(Check(O_RDWR, O_RDWR).ok());
  EXPECT_TRUE(Check(O_RDONLY, O_RDONLY).ok());
  ASSERT_EQ(chmod(file_.c_str(), 02775), 0);
  EXPECT_FALSE(Check(O_WRONLY, O_WRONLY).ok());
  // Set-group-ID without group execute is mandatory locking, not set-id.
  ASSERT_EQ(chmod(file_.c_str(), 02664), 0);
  EXPECT_TRUE(Check(O_WRONLY, O_WRONLY).ok());
}

TEST_F(DescriptorCheckTest, DevicesAreRefused) {
  struct stat st;
  int null = open("/dev/null", O_RDWR);
  ASSERT_GE(null, 0);
  EXPECT_FALSE(CheckBackingDescriptor(null, O_RDWR, &st).ok());
  close(null);
}

// A /proc/sys file checks the credentials of each read and write, which
// for a passthrough file are the daemon's (root's): never passed through,
// though a regular file opened the way the caller asks.
TEST_F(DescriptorCheckTest, FilesOfPseudoFilesystemsAreRefused) {
  for (const char* path : {"/proc/sys/kernel/ostype", "/proc/self/status",
                           "/sys/kernel/uevent_seqnum"}) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    struct stat st;
    absl::Status s = CheckBackingDescriptor(fd, O_RDONLY, &st);
    close(fd);
    EXPECT_FALSE(s.ok()) << path;
    EXPECT_NE(s.message().find("not local storage"), std::string::npos)
        << path << ": " << s;
  }
}

}  // namespace
}  // namespace fusehost
