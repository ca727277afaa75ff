// Drives MemoryFs directly (no mount, no gRPC): its open files (writing and
// reading with holes, appends, truncating opens, unlinked open files,
// handles, fallocate, copy_file_range, lseek) and its capacity (statfs).
// Names and attributes are tested in memory_fs_*_test.cc.

#include "examples/memory/memory_fs.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/memory/memory_fs_fixture.h"

namespace fusehost {
namespace examples {
namespace {

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

TEST_F(MemoryFsTest, ReadOnlyOpensSendSmallFilesWholeWhenAsked) {
  MakeFile("/f", "hello");
  FileInfo asked;
  asked.flags = O_RDONLY;
  asked.contents_up_to = 5;
  ASSERT_EQ(fs_.Open(root_, "/f", &asked), 0);
  EXPECT_TRUE(asked.has_contents);
  EXPECT_EQ(asked.contents, "hello");
  // Not asked, asked for less than the file (it grew), or not read-only.
  FileInfo unasked;
  unasked.flags = O_RDONLY;
  ASSERT_EQ(fs_.Open(root_, "/f", &unasked), 0);
  EXPECT_FALSE(unasked.has_contents);
  FileInfo smaller;
  smaller.flags = O_RDONLY;
  smaller.contents_up_to = 4;
  ASSERT_EQ(fs_.Open(root_, "/f", &smaller), 0);
  EXPECT_FALSE(smaller.has_contents);
  FileInfo writing;
  writing.flags = O_RDWR;
  writing.contents_up_to = 5;
  ASSERT_EQ(fs_.Open(root_, "/f", &writing), 0);
  EXPECT_FALSE(writing.has_contents);
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
}  // namespace
}  // namespace examples
}  // namespace fusehost
