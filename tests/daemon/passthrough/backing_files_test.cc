#include "daemon/passthrough/backing_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

class BackingFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(); }

  void Make() {
    BackingFiles::Options o;
    o.kernel_enabled = [this] { return kernel_; };
    o.register_backing = [this](int fd) {
      ++registrations_;
      if (refuse_ != 0) return -refuse_;
      EXPECT_GE(fcntl(fd, F_GETFD), 0);  // still open while registered
      int id = next_id_++;
      live_.insert(id);
      return id;
    };
    o.unregister_backing = [this](int32_t id) {
      EXPECT_EQ(live_.erase(id), 1u) << "closed twice or never opened: " << id;
    };
    o.on_change = [this](uint64_t node, int32_t id) {
      changes_ += std::to_string(node) + ":" + std::to_string(id) + " ";
    };
    o.log_name = "test";
    backing_ = std::make_unique<BackingFiles>(std::move(o));
  }

  // A file of its own, already unlinked.
  static UniqueFd TempFile() {
    char name[] = "/tmp/backing_files_test.XXXXXX";
    UniqueFd file(mkstemp(name));
    if (file.valid()) unlink(name);
    return file;
  }
  // A descriptor of a file (the checks ran before BackingFiles).
  UniqueFd Fd() { return UniqueFd(open("/etc/hostname", O_RDONLY)); }
  struct stat StatOf(dev_t dev, ino_t ino) {
    struct stat st = {};
    st.st_dev = dev;
    st.st_ino = ino;
    return st;
  }

  bool kernel_ = true;
  int refuse_ = 0;
  int registrations_ = 0;
  int next_id_ = 1;
  std::set<int32_t> live_;
  std::string changes_;  // on_change calls, "node:id "
  std::unique_ptr<BackingFiles> backing_;
};

TEST_F(BackingFilesTest, AnOpenGetsABackingIdReleasedWithIt) {
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 1);
  EXPECT_FALSE(d.direct_io);
  EXPECT_EQ(backing_->registered(), 1u);
  EXPECT_EQ(backing_->passed_through(), 1u);
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
  EXPECT_EQ(backing_->registered(), 0u);
}

TEST_F(BackingFilesTest, OpensOfOneNodeShareTheId) {
  auto a = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  auto b = backing_->Open(11, 1, Fd(), StatOf(1, 100), true, false);
  EXPECT_EQ(a.backing_id, b.backing_id);
  EXPECT_EQ(registrations_, 1);
  EXPECT_TRUE(backing_->WritablePassthrough(1));
  backing_->Release(11);
  EXPECT_FALSE(backing_->WritablePassthrough(1));
  EXPECT_EQ(live_.size(), 1u);  // still used by open 10
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
}

TEST_F(BackingFilesTest, TheBackingFileOfWritersIsKeptForItsSize) {
  UniqueFd file = TempFile();
  ASSERT_TRUE(file.valid());
  struct stat st;
  ASSERT_EQ(fstat(file.get(), &st), 0);
  // A reader's descriptor is not kept.
  backing_->Open(10, 1, UniqueFd(dup(file.get())), st, false, false);
  EXPECT_FALSE(backing_->StatWritten(1, &st));
  backing_->Open(11, 1, UniqueFd(dup(file.get())), st, true, false);
  backing_->Open(12, 1, UniqueFd(dup(file.get())), st, true, false);
  // Writes the daemon never sees show in the kept descriptor's fstat.
  ASSERT_EQ(pwrite(file.get(), "hello", 5, 0), 5);
  struct stat seen;
  ASSERT_TRUE(backing_->StatWritten(1, &seen));
  EXPECT_EQ(seen.st_size, 5);
  EXPECT_FALSE(backing_->StatWritten(2, &seen));
  // Kept while a writer is left, closed with the last one.
  backing_->Release(11);
  EXPECT_TRUE(backing_->StatWritten(1, &seen));
  backing_->Release(12);
  EXPECT_FALSE(backing_->StatWritten(1, &seen));
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
}

TEST_F(BackingFilesTest, TheFileOfTheDaemonsOwnOpensIsKeptForTheirFstat) {
  UniqueFd file = TempFile();
  ASSERT_TRUE(file.valid());
  ASSERT_EQ(pwrite(file.get(), "old", 3, 0), 3);
  struct stat st;
  ASSERT_EQ(fstat(file.get(), &st), 0);
  // A reader the backend opened has its handle there: nothing is kept. A
  // writer's file is kept, for StatWritten only.
  backing_->Open(10, 1, UniqueFd(dup(file.get())), st, false, false);
  backing_->Open(13, 1, UniqueFd(dup(file.get())), st, true, false);
  struct stat seen;
  EXPECT_FALSE(backing_->StatOpen(1, &seen));
  backing_->Release(13);
  // The daemon's own readers: kept while one is left.
  backing_->Open(11, 1, UniqueFd(dup(file.get())), st, false, false,
                 /*daemons_own=*/true);
  backing_->Open(12, 1, UniqueFd(dup(file.get())), st, false, false,
                 /*daemons_own=*/true);
  ASSERT_TRUE(backing_->StatOpen(1, &seen));
  EXPECT_EQ(seen.st_ino, st.st_ino);
  EXPECT_EQ(seen.st_size, 3);
  // Not a writer's: StatWritten still says no one writes around the daemon.
  EXPECT_FALSE(backing_->StatWritten(1, &seen));
  backing_->Release(11);
  EXPECT_TRUE(backing_->StatOpen(1, &seen));
  backing_->Release(12);
  EXPECT_FALSE(backing_->StatOpen(1, &seen));
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
}

TEST_F(BackingFilesTest, AnInheritedWriterKeepsTheNextWritersFile) {
  UniqueFd file = TempFile();
  ASSERT_TRUE(file.valid());
  struct stat st;
  ASSERT_EQ(fstat(file.get(), &st), 0);
  backing_->Inherit(1, 7, {{20, /*writable=*/true}});
  live_.insert(7);
  backing_->Open(21, 1, UniqueFd(dup(file.get())), st, true, false);
  struct stat seen;
  ASSERT_TRUE(backing_->StatWritten(1, &seen));
  // The new writer goes; the inherited one still writes around the daemon.
  backing_->Release(21);
  EXPECT_TRUE(backing_->StatWritten(1, &seen));
  backing_->Release(20);
  EXPECT_FALSE(backing_->StatWritten(1, &seen));
  EXPECT_TRUE(live_.empty());
}

TEST_F(BackingFilesTest, AnotherFileForTheSameNodeIsNotAnsweredOnIt) {
  backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  auto d = backing_->Open(11, 1, Fd(), StatOf(1, 200), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_TRUE(d.needs_new_node);
  backing_->Release(11);  // never recorded
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
  EXPECT_FALSE(
      backing_->Open(12, 1, Fd(), StatOf(1, 200), false, false).needs_new_node);
}

TEST_F(BackingFilesTest,
       AnOpenWithoutADescriptorBesidePassthroughNeedsANewNode) {
  // The kernel refuses any open of an inode in passthrough mode that is
  // not passed through, direct I/O included.
  backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  auto d = backing_->Open(11, 1, UniqueFd(), {}, true, /*direct_io=*/true);
  EXPECT_TRUE(d.needs_new_node);
  EXPECT_EQ(d.backing_id, 0);
  backing_->Release(10);
  d = backing_->Open(12, 1, UniqueFd(), {}, true, /*direct_io=*/true);
  EXPECT_FALSE(d.needs_new_node);
  EXPECT_TRUE(d.direct_io);
}

TEST_F(BackingFilesTest, NoPassthroughBesideCachedOpens) {
  auto cached = backing_->Open(10, 1, UniqueFd(), {}, false, false);
  EXPECT_EQ(cached.backing_id, 0);
  EXPECT_FALSE(cached.direct_io);
  auto d = backing_->Open(11, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_FALSE(d.direct_io);  // a cached open itself
  EXPECT_EQ(registrations_, 0);
  backing_->Release(10);
  d = backing_->Open(12, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 0);  // open 11 still goes through the cache
  backing_->Release(11);
  backing_->Release(12);
  d = backing_->Open(13, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_GT(d.backing_id, 0);
}

TEST_F(BackingFilesTest, InheritedOpensKeepTheirIdForNewOnesAndCloseIt) {
  // A previous daemon registered id 40 for node 1 and the kernel holds two
  // opens with it: a new open must name the same id (the kernel fails
  // another backing file, or none, with EIO), and the last release
  // closes it.
  live_.insert(40);
  backing_->Inherit(1, 40, {{7, false}, {8, true}});
  EXPECT_EQ(changes_, "");
  EXPECT_TRUE(backing_->WritablePassthrough(1));
  struct stat st;
  EXPECT_FALSE(backing_->StatWritten(1, &st));  // its file is not held
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 40);
  EXPECT_EQ(registrations_, 0);
  // The file is known from that open on: another one is not passed through.
  EXPECT_TRUE(
      backing_->Open(11, 1, Fd(), StatOf(1, 101), false, false).needs_new_node);
  backing_->Release(8);
  EXPECT_FALSE(backing_->WritablePassthrough(1));
  backing_->Release(7);
  backing_->Release(11);
  EXPECT_EQ(live_.count(40), 1u);
  backing_->Release(10);
  EXPECT_TRUE(live_.empty());
  EXPECT_EQ(changes_, "1:0 ");
}

TEST_F(BackingFilesTest, InheritedOpensWithoutAnIdAreCached) {
  backing_->Inherit(1, 0, {{7, false}});
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_FALSE(d.direct_io);
  EXPECT_EQ(registrations_, 0);
  backing_->Release(7);
  backing_->Release(10);
  EXPECT_GT(
      backing_->Open(12, 1, Fd(), StatOf(1, 100), false, false).backing_id, 0);
  EXPECT_EQ(changes_, "1:1 ");
}

TEST_F(BackingFilesTest, AnInheritedIdNoOpenUsesIsClosed) {
  live_.insert(40);
  backing_->Inherit(3, 40, {});
  EXPECT_TRUE(live_.empty());
  EXPECT_EQ(changes_, "3:0 ");
  EXPECT_EQ(backing_->registered(), 0u);
}

TEST_F(BackingFilesTest, ARefusedReplyGivesTheIdBack) {
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  ASSERT_GT(d.backing_id, 0);
  backing_->NotPassedThrough(10);
  EXPECT_TRUE(live_.empty());
  EXPECT_EQ(backing_->passed_through(), 0u);
  backing_->Release(10);  // nothing left to close
  EXPECT_TRUE(live_.empty());
}

TEST_F(BackingFilesTest, TheKernelsRefusalTurnsPassthroughOff) {
  refuse_ = EPERM;
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_FALSE(backing_->available());
  refuse_ = 0;
  d = backing_->Open(11, 2, Fd(), StatOf(1, 101), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_EQ(registrations_, 1);  // not asked again
}

TEST_F(BackingFilesTest, NothingBeforeTheKernelAgreed) {
  kernel_ = false;
  EXPECT_FALSE(backing_->available());
  auto d = backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  EXPECT_EQ(d.backing_id, 0);
  EXPECT_EQ(registrations_, 0);
}

TEST_F(BackingFilesTest, ManyOpensLeakNothing) {
  for (uint64_t fh = 1; fh <= 1000; ++fh) {
    auto d = backing_->Open(fh, fh % 7, Fd(), StatOf(1, fh % 7), fh % 2, false);
    ASSERT_GT(d.backing_id, 0);
  }
  for (uint64_t fh = 1; fh <= 1000; ++fh) backing_->Release(fh);
  EXPECT_TRUE(live_.empty());
  EXPECT_EQ(backing_->registered(), 0u);
}

TEST_F(BackingFilesTest, CloseAllGivesEveryIdBack) {
  backing_->Open(10, 1, Fd(), StatOf(1, 100), false, false);
  backing_->Open(11, 2, Fd(), StatOf(1, 101), false, false);
  backing_->CloseAll();
  EXPECT_TRUE(live_.empty());
  EXPECT_FALSE(backing_->available());
  backing_->Release(10);  // late releases are harmless
  backing_.reset();
  EXPECT_TRUE(live_.empty());
}

}  // namespace
}  // namespace fusehost
