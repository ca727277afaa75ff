// MetadataCache's operations on subtrees: dropping, clearing, marking
// removed and renaming a path with everything below it, never touching
// neighbours that share its prefix.

#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/metadata_cache_fixture.h"

namespace fusehost {
namespace {

// /a, its descendants, and neighbours that share its prefix.
class MetadataCacheTreeTest : public MetadataCacheTest {
 protected:
  void SetUp() override {
    Put("/", 1);
    Put("/a", 2);
    PutList("/a", {"x"});
    Put("/a/x", 3);
    Put("/a/x/y", 4);
    cache_.PutSymlink("/a/x/link", "t", kLong, cache_.epoch());
    Put("/a-b", 5);
    Put("/ab", 6);
    Put("/a0", 7);
    Put("/z", 8);
    Put("/z/old", 9);
  }

  void ExpectNeighboursKept() {
    EXPECT_EQ(InoOf("/"), 1);
    EXPECT_EQ(InoOf("/a-b"), 5);
    EXPECT_EQ(InoOf("/ab"), 6);
    EXPECT_EQ(InoOf("/a0"), 7);
  }
};

TEST_F(MetadataCacheTreeTest, DropSubtreeTouchesOnlyThePathAndBelow) {
  cache_.DropSubtree("/a");
  EXPECT_EQ(InoOf("/a"), 0);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  EXPECT_EQ(cache_.GetSymlink("/a/x/link"), std::nullopt);
  ExpectNeighboursKept();
  EXPECT_EQ(InoOf("/z/old"), 9);
  EXPECT_EQ(cache_.size(), 6u);
}

TEST_F(MetadataCacheTreeTest, DropSubtreeOfRootClearsAll) {
  cache_.DropSubtree("/");
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(MetadataCacheTreeTest, ClearForgetsAll) {
  cache_.Clear();
  EXPECT_EQ(cache_.size(), 0u);
  EXPECT_EQ(InoOf("/a"), 0);
}

TEST_F(MetadataCacheTreeTest, MarkRemovedLeavesANegativeEntry) {
  cache_.MarkRemoved("/a", kLong);
  EXPECT_EQ(InoOf("/a"), -1);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  ExpectNeighboursKept();

  cache_.MarkRemoved("/z", absl::ZeroDuration());  // no negative caching
  EXPECT_EQ(InoOf("/z"), 0);
  EXPECT_EQ(InoOf("/z/old"), 0);
}

TEST_F(MetadataCacheTreeTest, RenameMovesTheSubtreeAndReplacesTheTarget) {
  cache_.Rename("/a", "/z", /*exchange=*/false);
  EXPECT_EQ(InoOf("/z"), 2);
  EXPECT_TRUE(HasListing("/z"));
  EXPECT_EQ(InoOf("/z/x"), 3);
  EXPECT_EQ(InoOf("/z/x/y"), 4);
  EXPECT_EQ(cache_.GetSymlink("/z/x/link"), "t");
  EXPECT_EQ(InoOf("/z/old"), 0);  // replaced
  EXPECT_EQ(InoOf("/a"), 0);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  ExpectNeighboursKept();
}

TEST_F(MetadataCacheTreeTest, RenameIntoANewName) {
  cache_.Rename("/a/x", "/n", /*exchange=*/false);
  EXPECT_EQ(InoOf("/n"), 3);
  EXPECT_EQ(InoOf("/n/y"), 4);
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a"), 2);  // the parent itself is the caller's business
}

TEST_F(MetadataCacheTreeTest, RenameExchangeSwaps) {
  cache_.Rename("/a", "/z", /*exchange=*/true);
  EXPECT_EQ(InoOf("/z"), 2);
  EXPECT_EQ(InoOf("/z/x/y"), 4);
  EXPECT_TRUE(HasListing("/z"));
  EXPECT_EQ(InoOf("/z/old"), 0);
  EXPECT_EQ(InoOf("/a"), 8);
  EXPECT_EQ(InoOf("/a/old"), 9);
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_FALSE(HasListing("/a"));
  ExpectNeighboursKept();
}
}  // namespace
}  // namespace fusehost
