// The fixtures of the LoopbackFs unit tests (loopback_fs*_test.cc): a
// LoopbackFs on a fresh directory under TEST_TMPDIR, with helpers that make
// and read files through it, and the same acting as other users (root only).

#ifndef FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_LOOPBACK_FS_FIXTURE_H_
#define FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_LOOPBACK_FS_FIXTURE_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "examples/loopback/caller_credentials.h"
#include "examples/loopback/loopback_fs.h"
#include "gtest/gtest.h"
#include "tests/examples/callers.h"

namespace fusehost {
namespace examples {

constexpr uid_t kUser = 12345;
constexpr gid_t kGroup = 12345;

inline bool CanActAsOthers() {
  return geteuid() == 0 && CallerCredentials::ProcessCanSwitch();
}

// A LoopbackFs (fs_) of a fresh directory (root_) that acts as the caller
// where the process may.
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

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_LOOPBACK_FS_FIXTURE_H_
