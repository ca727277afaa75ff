// WriteBehind: Renames answered early, and the ops queued around them.

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/pipeline/write_behind_fixture.h"

namespace fusehost {
namespace write_behind_testing {
namespace {

// A rename, described: "rename /a /b".
std::string RenameOf(const v1::Op& op) {
  return "rename " + op.rename().old_path() + " " + op.rename().new_path();
}

TEST_F(WriteBehindTest, ARenameToANameKnownAbsentIsAnsweredAtOnce) {
  Make();
  PutDir("/d", 1);
  PutDir("/e", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);
  Listing d;
  d.emplace("a", ListingEntry{S_IFREG, 3});
  d.emplace("b", ListingEntry{S_IFREG, 4});
  cache_.PutListing("/d", d, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/e", absl::Hours(1));
  v1::Attr d_after = Cached("/d");
  *d_after.mutable_mtime() = kNowTs;
  *d_after.mutable_ctime() = kNowTs;
  v1::Attr e_after = Cached("/e");
  *e_after.mutable_mtime() = kNowTs;
  *e_after.mutable_ctime() = kNowTs;

  // Within one directory: its attributes only.
  Reply* within = Send(RenameOp("/d/a", "/d/c"));
  ASSERT_TRUE(within->answered());
  EXPECT_EQ(within->posix_errno(), 0);
  EXPECT_EQ(within->result.id(), within->id);
  EXPECT_TRUE(within->result.has_empty());
  EXPECT_ATTR_EQ(within->result.parent_attr(), d_after);
  EXPECT_FALSE(within->result.has_old_parent_attr());
  // Into another (RENAME_NOREPLACE: the name is known absent): both, no
  // link count changed.
  Reply* across = Send(RenameOp("/d/b", "/e/b", RENAME_NOREPLACE));
  ASSERT_TRUE(across->answered());
  EXPECT_EQ(across->posix_errno(), 0);
  EXPECT_ATTR_EQ(across->result.parent_attr(), e_after);
  EXPECT_ATTR_EQ(across->result.old_parent_attr(), d_after);
  EXPECT_EQ(wb_->deferred(), 2u);

  // Both go to the backend as asked, with no deadline; the second after
  // the first, whose directory it shares.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(RenameOf(next_.op(0, 0)), "rename /d/a /d/c");
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), 0);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(RenameOf(next_.op(1, 0)), "rename /d/b /e/b");
  EXPECT_EQ(next_.op(1, 0).rename().flags(),
            static_cast<uint32_t>(RENAME_NOREPLACE));
  next_.Complete(1);
  EXPECT_EQ(within->calls, 1);
  EXPECT_EQ(across->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
}

// The editor's save: a new file renamed over the old one, whose attributes
// are cached (no listing needed: either way the rename succeeds).
TEST_F(WriteBehindTest, ARenameOverACachedFileOfOneNameIsAnsweredAtOnce) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/new", 3);
  PutFile("/d/old", 4);
  Reply* r = Send(RenameOp("/d/new", "/d/old"));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_TRUE(r->result.has_empty());
  EXPECT_EQ(r->result.parent_attr().mtime().DebugString(),
            kNowTs.DebugString());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(RenameOf(next_.op(0, 0)), "rename /d/new /d/old");
}

TEST_F(WriteBehindTest, ARenameWaitsUnlessItsOutcomeIsKnown) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/f", 2);
  PutFile("/d/g", 3);
  PutDir("/d/sub", 4);
  PutDir("/d/sub2", 5);
  v1::Attr linked = AttrOf(6, S_IFREG | 0644);
  linked.set_nlink(2);
  cache_.PutAttr("/d/linked", linked, absl::Hours(1), cache_.epoch());
  PutFile("/e/f", 7);  // its directory is not cached
  Listing d;
  for (const char* name : {"f", "g", "sub", "sub2", "linked", "unlisted"}) {
    d.emplace(name, ListingEntry{S_IFREG, 0});
  }
  cache_.PutListing("/d", d, absl::Hours(1), cache_.epoch());
  PutDir("/nolist", 8);  // attributes, but no listing

  std::vector<Reply*> waiting = {
      // A directory moves a subtree.
      Send(RenameOp("/d/sub", "/d/moved")),
      // A file of several names.
      Send(RenameOp("/d/linked", "/d/moved")),
      // A source the daemon has no attributes of.
      Send(RenameOp("/d/unknown", "/d/moved")),
      // A target that may be anything: listed, but not cached.
      Send(RenameOp("/d/f", "/d/unlisted")),
      // Nor known absent: its directory's listing is not cached.
      Send(RenameOp("/d/f", "/nolist/x")),
      // A directory as the target (EISDIR), or a file of several names.
      Send(RenameOp("/d/f", "/d/sub2")),
      Send(RenameOp("/d/f", "/d/linked")),
      // RENAME_NOREPLACE over a name that is there (EEXIST).
      Send(RenameOp("/d/f", "/d/g", RENAME_NOREPLACE)),
      // RENAME_EXCHANGE, RENAME_WHITEOUT.
      Send(RenameOp("/d/f", "/d/g", RENAME_EXCHANGE)),
      Send(RenameOp("/d/f", "/d/new", RENAME_WHITEOUT)),
      // A directory whose attributes are not cached.
      Send(RenameOp("/e/f", "/d/new")),
  };
  for (size_t i = 0; i < waiting.size(); ++i) {
    EXPECT_FALSE(waiting[i]->answered()) << i;
  }
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), waiting.size());
  for (size_t i = 0; i < waiting.size(); ++i) {
    EXPECT_FALSE(next_.all(i)) << i;
    EXPECT_EQ(next_.op(i, 0).deadline_unix_ms(), kDeadlineMs) << i;
  }
}

TEST_F(WriteBehindTest, ARefusedRenameIsReportedWithBothNamesAndDirectories) {
  Make();
  PutDir("/d", 1);
  PutDir("/e", 2);
  PutFile("/d/a", 3);
  cache_.PutNewDirectory("/e", absl::Hours(1));
  Reply* rename = Send(RenameOp("/d/a", "/e/b"));
  ASSERT_TRUE(rename->answered());
  next_.Complete(0, ENOENT);  // another client removed it meanwhile
  EXPECT_EQ(rename->calls, 1);
  EXPECT_EQ(rename->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(),
            std::vector<Strings>{(Strings{"/d/a", "/e/b", "/d", "/e"})});
  Reply* sync = Send(FsyncdirOp("/d", 4));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ENOENT);
  Reply* again = Send(FsyncdirOp("/d", 4));
  next_.Complete(2);
  EXPECT_EQ(again->posix_errno(), 0);
}

// What was queued before the rename reaches the backend under the old
// name, what comes after under the new one (the layer above names it so),
// and none overtakes the rename.
TEST_F(WriteBehindTest, ChangesBeforeAndAfterARenameKeepTheirNamesAndOrder) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  Listing listing;
  listing.emplace("a", ListingEntry{S_IFREG, 2});
  cache_.PutListing("/d", listing, absl::Hours(1), cache_.epoch());
  ASSERT_TRUE(Send(ChmodOp("/d/a", 0600))->answered());
  ASSERT_TRUE(Send(RenameOp("/d/a", "/d/b"))->answered());
  // What the layer above does with the rename's answer.
  cache_.Rename("/d/a", "/d/b", /*exchange=*/false);
  cache_.MarkRemoved("/d/a", absl::Hours(1));
  cache_.DropListing("/d");
  ASSERT_TRUE(Send(ChmodOp("/d/b", 0640))->answered());
  Reply* stat = Send(GetattrOp("/d/b"));
  EXPECT_FALSE(stat->answered());
  EXPECT_EQ(wb_->deferred(), 3u);

  // One at a time: each touches what the one before touches.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"chmod /d/a"});
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(RenameOf(next_.op(1, 0)), "rename /d/a /d/b");
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /d/b"});
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /d/b"});
  next_.Complete(3);
  EXPECT_TRUE(stat->answered());
  EXPECT_EQ(wb_->failed(), 0u);
}

// A file created early, written, renamed and written again: the backend
// gets the create and the first write under the old name, then the
// rename, then the last write under the new one, through the handle.
TEST_F(WriteBehindTest, AFileCreatedEarlyIsRenamedBehindItsCreateAndWrites) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/tmp", S_IFREG | 0644));
  ASSERT_TRUE(create->answered());
  const uint64_t token = create->result.create().open().fh();
  // What the layer above keeps of the create's answer.
  cache_.PutAttr("/d/tmp", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  cache_.ListingAdd("/d", "tmp", ListingEntry{S_IFREG, 0});
  ASSERT_TRUE(Send(WriteOp("/d/tmp", token, 0, "first;"))->answered());
  Reply* rename = Send(RenameOp("/d/tmp", "/d/file"));
  ASSERT_TRUE(rename->answered());
  cache_.Rename("/d/tmp", "/d/file", /*exchange=*/false);
  cache_.DropAttr("/d/file");
  cache_.DropListing("/d");
  // The moved file's attributes were dropped: this write waits.
  Reply* last = Send(WriteOp("/d/file", token, 6, "last"));
  EXPECT_FALSE(last->answered());
  EXPECT_EQ(wb_->deferred(), 3u);

  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"create /d/tmp"});
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 77));
  ASSERT_EQ(next_.calls(), 2u);
  ASSERT_EQ(next_.ops(1).size(), 2u);
  EXPECT_EQ(next_.ops(1)[0], "write /d/tmp");
  EXPECT_EQ(RenameOf(next_.op(1, 1)), "rename /d/tmp /d/file");
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"write /d/file"});
  EXPECT_EQ(next_.op(2, 0).write().fh(), token);
  int err = 0;
  EXPECT_EQ(Resolved(&handles_, next_.op(2, 0), &err), 77u);
  EXPECT_EQ(err, 0);
  v1::OpResult written;
  written.mutable_write()->set_size(4);
  next_.CompleteOp(2, 0, written);
  EXPECT_EQ(last->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 0u);
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
