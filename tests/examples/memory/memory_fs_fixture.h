// The fixture of the MemoryFs unit tests (memory_fs*_test.cc): a MemoryFs
// whose root anyone may write, with helpers that make, read and age files
// through it.

#ifndef FUSE_HOSTD_TESTS_EXAMPLES_MEMORY_MEMORY_FS_FIXTURE_H_
#define FUSE_HOSTD_TESTS_EXAMPLES_MEMORY_MEMORY_FS_FIXTURE_H_

#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "examples/memory/memory_fs.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace examples {

// A MemoryFs (fs_) with a root directory of mode 0777; root_ is a request by
// root.
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

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_EXAMPLES_MEMORY_MEMORY_FS_FIXTURE_H_
