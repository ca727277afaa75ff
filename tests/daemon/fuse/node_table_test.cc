#include "daemon/fuse/node_table.h"

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

constexpr uint64_t kRoot = NodeTable::kRootId;

// A table with /dir, /dir/file and /dir/sub/deep, each looked up once.
class NodeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = table_.AddLookup(kRoot, "dir");
    file_ = table_.AddLookup(dir_, "file");
    sub_ = table_.AddLookup(dir_, "sub");
    deep_ = table_.AddLookup(sub_, "deep");
    ASSERT_NE(dir_, 0u);
    ASSERT_NE(file_, 0u);
    ASSERT_NE(sub_, 0u);
    ASSERT_NE(deep_, 0u);
  }

  NodeTable table_;
  uint64_t dir_ = 0;
  uint64_t file_ = 0;
  uint64_t sub_ = 0;
  uint64_t deep_ = 0;
};

TEST(NodeTableBasicsTest, RootIsSlashAndPermanent) {
  NodeTable table;
  EXPECT_EQ(table.PathOf(kRoot), "/");
  EXPECT_EQ(table.size(), 1u);
  table.Forget(kRoot, 1000);  // the kernel never forgets the root; harmless
  EXPECT_EQ(table.PathOf(kRoot), "/");
  EXPECT_EQ(table.size(), 1u);
}

TEST(NodeTableBasicsTest, UnknownIdHasNoPath) {
  NodeTable table;
  EXPECT_EQ(table.PathOf(42), std::nullopt);
  EXPECT_EQ(table.ChildPath(42, "x"), std::nullopt);
}

TEST(NodeTableBasicsTest, AddLookupOnUnknownParentReturnsZero) {
  NodeTable table;
  EXPECT_EQ(table.AddLookup(42, "x"), 0u);
  EXPECT_EQ(table.size(), 1u);
}

TEST(NodeTableBasicsTest, ForgetOfUnknownIdIsIgnored) {
  NodeTable table;
  table.Forget(42, 1);
  EXPECT_EQ(table.size(), 1u);
}

TEST_F(NodeTableTest, PathsAndChildPaths) {
  EXPECT_EQ(table_.PathOf(dir_), "/dir");
  EXPECT_EQ(table_.PathOf(file_), "/dir/file");
  EXPECT_EQ(table_.PathOf(deep_), "/dir/sub/deep");
  EXPECT_EQ(table_.ChildPath(kRoot, "a"), "/a");
  EXPECT_EQ(table_.ChildPath(dir_, "new"), "/dir/new");
  EXPECT_EQ(table_.ChildPath(sub_, "x"), "/dir/sub/x");
  EXPECT_EQ(table_.size(), 5u);
}

TEST_F(NodeTableTest, AddLookupReturnsSameIdAndCountsReferences) {
  EXPECT_EQ(table_.AddLookup(dir_, "file"), file_);
  EXPECT_EQ(table_.AddLookup(dir_, "file"), file_);  // three references now
  EXPECT_EQ(table_.size(), 5u);

  table_.Forget(file_, 2);
  EXPECT_EQ(table_.PathOf(file_), "/dir/file");
  table_.Forget(file_, 1);
  EXPECT_EQ(table_.PathOf(file_), std::nullopt);
  EXPECT_EQ(table_.size(), 4u);
}

TEST_F(NodeTableTest, SameNameInOtherDirectoryIsAnotherNode) {
  uint64_t other = table_.AddLookup(sub_, "file");
  EXPECT_NE(other, file_);
  EXPECT_EQ(table_.PathOf(other), "/dir/sub/file");
}

TEST_F(NodeTableTest, ForgetToZeroErasesAndNameGetsNewId) {
  table_.Forget(file_, 1);
  EXPECT_EQ(table_.PathOf(file_), std::nullopt);
  EXPECT_EQ(table_.size(), 4u);

  uint64_t again = table_.AddLookup(dir_, "file");
  EXPECT_NE(again, 0u);
  EXPECT_NE(again, file_);  // ids are not reused
  EXPECT_EQ(table_.PathOf(again), "/dir/file");
}

TEST_F(NodeTableTest, RemoveDetachesWhileReferenced) {
  table_.Remove(dir_, "file");
  EXPECT_EQ(table_.PathOf(file_), "");
  EXPECT_EQ(table_.size(), 5u);

  // The name is free: a new file there is a new node.
  uint64_t replacement = table_.AddLookup(dir_, "file");
  EXPECT_NE(replacement, file_);
  EXPECT_EQ(table_.PathOf(replacement), "/dir/file");
  EXPECT_EQ(table_.PathOf(file_), "");

  table_.Forget(file_, 1);
  EXPECT_EQ(table_.PathOf(file_), std::nullopt);
  EXPECT_EQ(table_.PathOf(replacement), "/dir/file");
}

TEST_F(NodeTableTest, RemoveOfUnknownNameIsIgnored) {
  table_.Remove(dir_, "nothing");
  table_.Remove(42, "file");
  EXPECT_EQ(table_.PathOf(file_), "/dir/file");
  EXPECT_EQ(table_.size(), 5u);
}

TEST_F(NodeTableTest, ChildrenOfDetachedDirectoryHaveNoPath) {
  table_.Remove(kRoot, "dir");
  EXPECT_EQ(table_.PathOf(dir_), "");
  EXPECT_EQ(table_.PathOf(file_), "");
  EXPECT_EQ(table_.PathOf(sub_), "");
  EXPECT_EQ(table_.PathOf(deep_), "");
  EXPECT_EQ(table_.ChildPath(dir_, "x"), "");
  EXPECT_EQ(table_.ChildPath(sub_, "x"), "");
}

TEST_F(NodeTableTest, RenameMovesSubtree) {
  uint64_t dest = table_.AddLookup(kRoot, "dest");
  table_.Rename(dir_, "sub", dest, "moved", /*exchange=*/false);

  EXPECT_EQ(table_.PathOf(sub_), "/dest/moved");
  EXPECT_EQ(table_.PathOf(deep_), "/dest/moved/deep");
  EXPECT_EQ(table_.ChildPath(sub_, "x"), "/dest/moved/x");
  EXPECT_EQ(table_.PathOf(file_), "/dir/file");  // untouched sibling
  EXPECT_EQ(table_.AddLookup(dest, "moved"), sub_);
  EXPECT_NE(table_.AddLookup(dir_, "sub"), sub_);  // old name is free
}

TEST_F(NodeTableTest, RenameOfDirectoryUpdatesDescendants) {
  table_.Rename(kRoot, "dir", kRoot, "renamed", /*exchange=*/false);
  EXPECT_EQ(table_.PathOf(dir_), "/renamed");
  EXPECT_EQ(table_.PathOf(file_), "/renamed/file");
  EXPECT_EQ(table_.PathOf(deep_), "/renamed/sub/deep");
}

TEST_F(NodeTableTest, RenameOverExistingNameDetachesTarget) {
  table_.Rename(dir_, "file", dir_, "sub", /*exchange=*/false);

  EXPECT_EQ(table_.PathOf(file_), "/dir/sub");
  EXPECT_EQ(table_.PathOf(sub_), "");   // renamed over, still referenced
  EXPECT_EQ(table_.PathOf(deep_), "");  // its subtree went with it
  EXPECT_EQ(table_.AddLookup(dir_, "sub"), file_);
  EXPECT_EQ(table_.size(), 5u);
}

TEST_F(NodeTableTest, RenameExchangeSwapsNodes) {
  table_.Rename(dir_, "file", dir_, "sub", /*exchange=*/true);

  EXPECT_EQ(table_.PathOf(file_), "/dir/sub");
  EXPECT_EQ(table_.PathOf(sub_), "/dir/file");
  EXPECT_EQ(table_.PathOf(deep_), "/dir/file/deep");
  EXPECT_EQ(table_.AddLookup(dir_, "sub"), file_);
  EXPECT_EQ(table_.AddLookup(dir_, "file"), sub_);
}

TEST_F(NodeTableTest, RenameExchangeAcrossDirectories) {
  table_.Rename(dir_, "file", sub_, "deep", /*exchange=*/true);
  EXPECT_EQ(table_.PathOf(file_), "/dir/sub/deep");
  EXPECT_EQ(table_.PathOf(deep_), "/dir/file");
}

TEST_F(NodeTableTest, RenameOfUnknownSourceStillDetachesTarget) {
  // The kernel never looked up the source; the target loses its name anyway.
  table_.Rename(dir_, "never-seen", dir_, "file", /*exchange=*/false);
  EXPECT_EQ(table_.PathOf(file_), "");
}

TEST_F(NodeTableTest, OpenHandleTracking) {
  EXPECT_EQ(table_.AnyOpenHandle(file_), std::nullopt);

  table_.AddOpenHandle(file_, 7);
  table_.AddOpenHandle(file_, 9);
  std::optional<uint64_t> any = table_.AnyOpenHandle(file_);
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(*any == 7 || *any == 9) << *any;

  table_.RemoveOpenHandle(file_, 7);
  EXPECT_EQ(table_.AnyOpenHandle(file_), 9u);
  table_.RemoveOpenHandle(file_, 12345);  // not open: ignored
  EXPECT_EQ(table_.AnyOpenHandle(file_), 9u);
  table_.RemoveOpenHandle(file_, 9);
  EXPECT_EQ(table_.AnyOpenHandle(file_), std::nullopt);
}

TEST_F(NodeTableTest, OpenHandleSurvivesUnlink) {
  table_.AddOpenHandle(file_, 5);
  table_.Remove(dir_, "file");
  EXPECT_EQ(table_.PathOf(file_), "");
  EXPECT_EQ(table_.AnyOpenHandle(file_), 5u);
}

TEST_F(NodeTableTest, OpenHandlesOnUnknownNodeAreIgnored) {
  table_.AddOpenHandle(42, 1);
  EXPECT_EQ(table_.AnyOpenHandle(42), std::nullopt);
  table_.RemoveOpenHandle(42, 1);
  EXPECT_EQ(table_.AnyOpenHandle(file_), std::nullopt);
}

TEST_F(NodeTableTest, ForgetUnderflowAborts) {
  EXPECT_DEATH(table_.Forget(file_, 2),
               absl::StrCat("underflow on node ", file_));
}

TEST(NodeTableConcurrencyTest, ConcurrentLookupsAndForgetsKeepCountsConsistent) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 2000;
  constexpr int kNames = 4;
  NodeTable table;
  uint64_t dir = table.AddLookup(kRoot, "dir");  // stays: never forgotten

  // Phase 1: every thread takes and drops references on shared names, so
  // nodes are created and erased under each other's feet.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&table, dir, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::string name = absl::StrCat("n", (i + t) % kNames);
        uint64_t id = table.AddLookup(dir, name);
        ASSERT_NE(id, 0u);
        ASSERT_EQ(table.PathOf(id), absl::StrCat("/dir/", name));
        table.Forget(id, 1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(table.size(), 2u);  // root and dir

  // Phase 2: every thread keeps its references; each name then holds exactly
  // kThreads * kRounds of them.
  threads.clear();
  std::vector<std::vector<uint64_t>> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&table, &seen, dir, t] {
      for (int i = 0; i < kRounds; ++i) {
        seen[t].push_back(
            table.AddLookup(dir, absl::StrCat("n", i % kNames)));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(table.size(), 2u + kNames);
  for (int n = 0; n < kNames; ++n) {
    uint64_t id = table.AddLookup(dir, absl::StrCat("n", n));  // one more
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(seen[t][n], id);
    uint64_t refs = uint64_t{kThreads} * kRounds / kNames + 1;
    table.Forget(id, refs - 1);
    EXPECT_EQ(table.PathOf(id), absl::StrCat("/dir/n", n));
    table.Forget(id, 1);
    EXPECT_EQ(table.PathOf(id), std::nullopt);
  }
  EXPECT_EQ(table.size(), 2u);
}

// A damaged journal may say a node is its own ancestor: replayed as
// written, PathOf would walk the cycle for ever (holding the table's lock).
TEST(NodeTableJournal, RecordsThatWouldMakeACycleAreNotFollowed) {
  NodeTable t;
  t.Restore(7, 7, "self", 1);         // its own parent
  EXPECT_EQ(t.PathOf(7), std::string());  // detached
  t.Restore(8, 9, "a", 1);            // parent not known yet
  t.Restore(9, 8, "b", 1);            // would close 8 -> 9 -> 8
  EXPECT_TRUE(t.PathOf(8).has_value());
  EXPECT_TRUE(t.PathOf(9).has_value());
  // A directory moved below itself.
  t.Restore(10, NodeTable::kRootId, "d", 1);
  t.Restore(11, 10, "sub", 1);
  t.Rename(NodeTable::kRootId, "d", 11, "d", /*exchange=*/false);
  EXPECT_EQ(t.PathOf(10), "/d");
  EXPECT_EQ(t.PathOf(11), "/d/sub");
}

}  // namespace
}  // namespace fusehost
