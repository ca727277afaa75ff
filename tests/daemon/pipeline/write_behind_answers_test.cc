// WriteBehind: Early answers: which changes are answered at once, with what,
// and which wait for the backend.

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

TEST_F(WriteBehindTest, ChmodOfACachedPathIsAnsweredAtOnce) {
  Make();
  PutFile("/f", 5);
  v1::Attr want = Cached("/f");
  want.set_mode(S_IFREG | 04700);
  *want.mutable_ctime() = kNowTs;

  // Type bits in the request are not the file's to change.
  Reply* r = Send(ChmodOp("/f", S_IFDIR | 04700));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->calls, 1);
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_EQ(r->posix_errno(), 0);
  ASSERT_TRUE(r->result.has_entry());
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);
  EXPECT_EQ(wb_->deferred(), 1u);

  // It still goes to the backend, in a message of its own, with no
  // deadline (no kernel request waits for it).
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(next_.ops(0), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(0, 0).id(), r->id);
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), 0);
  EXPECT_EQ(next_.op(0, 0).chmod().mode(), uint32_t{S_IFDIR | 04700});
  EXPECT_EQ(wb_->queued(), 1u);

  // The backend's answer is not passed on a second time.
  next_.Complete(0);
  EXPECT_EQ(r->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
  // The cache itself is not the layer's to change.
  EXPECT_EQ(Cached("/f").mode(), uint32_t{S_IFREG | 0644});
}

TEST_F(WriteBehindTest, ChownOfACachedPathIsAnsweredAtOnce) {
  Make();
  PutFile("/f", 5);
  // A set-gid directory: only files have set-id bits a chown may drop.
  PutDir("/sgid", 6, S_IFDIR | 02775);

  v1::Attr want = Cached("/f");
  want.set_uid(2000);  // the gid is left as it was
  *want.mutable_ctime() = kNowTs;
  Reply* r = Send(ChownOp("/f", 2000, std::nullopt));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);

  want = Cached("/sgid");
  want.set_gid(300);
  *want.mutable_ctime() = kNowTs;
  Reply* dir = Send(ChownOp("/sgid", std::nullopt, 300));
  ASSERT_TRUE(dir->answered());
  EXPECT_ATTR_EQ(dir->result.entry().attr(), want);

  EXPECT_EQ(wb_->deferred(), 2u);
  EXPECT_EQ(next_.calls(), 1u);  // the second waits for the first message
  EXPECT_EQ(next_.ops(0), Strings{"chown /f"});
}

TEST_F(WriteBehindTest, UtimensAppliesSetNowAndOmit) {
  Make();
  PutFile("/f", 5);
  PutFile("/g", 6);

  // atime set, mtime to the daemon's now.
  v1::Attr want = Cached("/f");
  *want.mutable_atime() = Ts(12345, 678);
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  Reply* r = Send(UtimensOp("/f", Set(12345, 678), Now()));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);

  // atime left alone, mtime set.
  want = Cached("/g");
  *want.mutable_mtime() = Ts(99, 1);
  *want.mutable_ctime() = kNowTs;
  Reply* g = Send(UtimensOp("/g", Omit(), Set(99, 1)));
  ASSERT_TRUE(g->answered());
  EXPECT_ATTR_EQ(g->result.entry().attr(), want);

  // atime to now, mtime left alone.
  want = Cached("/g");
  *want.mutable_atime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  Reply* g2 = Send(UtimensOp("/g", Now(), Omit()));
  ASSERT_TRUE(g2->answered());
  EXPECT_ATTR_EQ(g2->result.entry().attr(), want);
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, ChownOfASetIdFileWaitsForTheBackend) {
  Make();
  PutFile("/suid", 5, S_IFREG | 04755);
  PutFile("/sgid", 6, S_IFREG | 02755);

  Reply* r = Send(ChownOp("/suid", 0, 0));
  EXPECT_FALSE(r->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_FALSE(next_.all(0));  // forwarded as it came
  EXPECT_EQ(next_.ops(0), Strings{"chown /suid"});
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), kDeadlineMs);

  Reply* g = Send(ChownOp("/sgid", std::nullopt, 0));
  EXPECT_FALSE(g->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chown /sgid"});
  EXPECT_EQ(wb_->deferred(), 0u);
  EXPECT_EQ(wb_->queued(), 0u);

  // The backend's answer (set-uid dropped) is what the caller gets.
  v1::OpResult backend;
  *backend.mutable_entry()->mutable_attr() = AttrOf(5, S_IFREG | 0755);
  next_.CompleteOp(0, 0, backend);
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_EQ(r->result.entry().attr().mode(), uint32_t{S_IFREG | 0755});
  next_.Complete(1, EPERM);
  ASSERT_TRUE(g->answered());
  EXPECT_EQ(g->posix_errno(), EPERM);
  EXPECT_EQ(wb_->failed(), 0u);  // not a deferred op's failure
}

TEST_F(WriteBehindTest, ChangesOfUncachedPathsWaitForTheBackend) {
  Make();
  Reply* chmod = Send(ChmodOp("/nowhere", 0600));
  Reply* chown = Send(ChownOp("/nowhere", 1, 1));
  Reply* utimens = Send(UtimensOp("/nowhere", Now(), Now()));
  EXPECT_FALSE(chmod->answered());
  EXPECT_FALSE(chown->answered());
  EXPECT_FALSE(utimens->answered());
  ASSERT_EQ(next_.calls(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(next_.all(i));
  EXPECT_EQ(wb_->deferred(), 0u);
  next_.Complete(0, ENOENT);
  EXPECT_EQ(chmod->posix_errno(), ENOENT);
}

TEST_F(WriteBehindTest, UnlinkOfACachedFileAnswersWithNewParentTimes) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 5);
  v1::Attr want = Cached("/d");
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;

  Reply* r = Send(UnlinkOp("/d/a"));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_TRUE(r->result.has_empty());
  ASSERT_TRUE(r->result.has_parent_attr());
  EXPECT_ATTR_EQ(r->result.parent_attr(), want);
  EXPECT_EQ(wb_->deferred(), 1u);

  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(next_.ops(0), Strings{"unlink /d/a"});
  next_.Complete(0);
  EXPECT_EQ(r->calls, 1);
}

TEST_F(WriteBehindTest, UnlinkOfADirectoryOrAnUncachedPathWaits) {
  Make();
  PutDir("/d", 2);
  PutDir("/d/sub", 3);
  PutFile("/e/f", 4);  // its directory is not cached

  Reply* dir = Send(UnlinkOp("/d/sub"));
  Reply* uncached = Send(UnlinkOp("/d/nothing"));
  Reply* no_parent = Send(UnlinkOp("/e/f"));
  EXPECT_FALSE(dir->answered());
  EXPECT_FALSE(uncached->answered());
  EXPECT_FALSE(no_parent->answered());
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(0), Strings{"unlink /d/sub"});
  EXPECT_EQ(next_.ops(1), Strings{"unlink /d/nothing"});
  EXPECT_EQ(next_.ops(2), Strings{"unlink /e/f"});
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(next_.all(i));

  next_.Complete(0, EISDIR);
  next_.Complete(1, ENOENT);
  next_.Complete(2);
  EXPECT_EQ(dir->posix_errno(), EISDIR);
  EXPECT_EQ(uncached->posix_errno(), ENOENT);
  ASSERT_TRUE(no_parent->answered());
  EXPECT_EQ(no_parent->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 0u);
}

// rm -rf: a directory whose every name was unlinked early is known empty
// from its listing; its rmdir is answered at once and goes behind them.
TEST_F(WriteBehindTest, RmdirOfADirectoryKnownEmptyIsAnsweredAtOnce) {
  Make();
  v1::Attr top = AttrOf(1, S_IFDIR | 0755);
  top.set_nlink(4);  // two subdirectories
  cache_.PutAttr("/t", top, absl::Hours(1), cache_.epoch());
  PutDir("/t/d", 2);
  PutFile("/t/d/a", 3);
  Listing listing;
  listing.emplace("a", ListingEntry{S_IFREG, 3});
  cache_.PutListing("/t/d", listing, absl::Hours(1), cache_.epoch());

  Reply* unlink = Send(UnlinkOp("/t/d/a"));
  ASSERT_TRUE(unlink->answered());
  ASSERT_EQ(next_.calls(), 1u);  // in flight
  // What the layer above does with the unlink's answer.
  cache_.MarkRemoved("/t/d/a", absl::Hours(1));
  cache_.ListingRemove("/t/d", "a");

  v1::Attr want = Cached("/t");
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  want.set_nlink(3);
  Reply* rmdir = Send(RmdirOp("/t/d"));
  ASSERT_TRUE(rmdir->answered());
  EXPECT_EQ(rmdir->posix_errno(), 0);
  EXPECT_EQ(rmdir->result.id(), rmdir->id);
  EXPECT_TRUE(rmdir->result.has_empty());
  EXPECT_ATTR_EQ(rmdir->result.parent_attr(), want);
  EXPECT_EQ(wb_->deferred(), 2u);

  // It goes to the backend after the unlink it depends on.
  EXPECT_EQ(next_.calls(), 1u);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"rmdir /t/d"});
  EXPECT_EQ(next_.op(1, 0).deadline_unix_ms(), 0);
  next_.Complete(1);
  EXPECT_EQ(rmdir->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);

  // A directory made through the daemon is known empty too; a parent that
  // does not count its subdirectories in its links keeps its count.
  PutDir("/t/new", 4);
  cache_.PutNewDirectory("/t/new", absl::Hours(1));
  PutDir("/flat", 5);
  v1::Attr flat = AttrOf(5, S_IFDIR | 0755);
  flat.set_nlink(1);
  cache_.PutAttr("/flat", flat, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/flat/sub", absl::Hours(1));
  Reply* made = Send(RmdirOp("/t/new"));
  Reply* in_flat = Send(RmdirOp("/flat/sub"));
  ASSERT_TRUE(made->answered());
  ASSERT_TRUE(in_flat->answered());
  EXPECT_EQ(in_flat->result.parent_attr().nlink(), 1u);
  EXPECT_EQ(wb_->deferred(), 4u);
}

TEST_F(WriteBehindTest, RmdirOfADirectoryNotKnownEmptyWaits) {
  Make();
  PutDir("/d", 1);
  // Attributes but no listing: what it holds is unknown.
  PutDir("/d/unlisted", 2);
  // A listing with a name left in it.
  PutDir("/d/full", 3);
  Listing full;
  full.emplace("x", ListingEntry{S_IFREG, 9});
  cache_.PutListing("/d/full", full, absl::Hours(1), cache_.epoch());
  // Known empty, but its directory's attributes are not cached.
  cache_.PutNewDirectory("/e/empty", absl::Hours(1));
  // Known empty only until its listing expired.
  cache_.PutNewDirectory("/d/expired", absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(5));

  Reply* unlisted = Send(RmdirOp("/d/unlisted"));
  Reply* nonempty = Send(RmdirOp("/d/full"));
  Reply* no_parent = Send(RmdirOp("/e/empty"));
  Reply* expired = Send(RmdirOp("/d/expired"));
  Reply* root = Send(RmdirOp("/"));
  for (Reply* r : {unlisted, nonempty, no_parent, expired, root}) {
    EXPECT_FALSE(r->answered());
  }
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_FALSE(next_.all(i));
    EXPECT_EQ(next_.op(i, 0).deadline_unix_ms(), kDeadlineMs);
  }
  next_.Complete(0, ENOTEMPTY);
  next_.Complete(1, ENOTEMPTY);
  EXPECT_EQ(unlisted->posix_errno(), ENOTEMPTY);
  EXPECT_EQ(nonempty->posix_errno(), ENOTEMPTY);
  EXPECT_EQ(wb_->failed(), 0u);
}

// A create in the directory waits behind a queued unlink there: the
// directory is not empty, whatever its listing said before.
TEST_F(WriteBehindTest, NoEarlyRmdirAboveARequestThatWaits) {
  Make();
  PutDir("/d", 1);
  PutDir("/d/sub", 2);
  PutFile("/d/sub/a", 3);
  cache_.PutNewDirectory("/d/sub", absl::Hours(1));
  Reply* unlink = Send(UnlinkOp("/d/sub/a"));
  ASSERT_TRUE(unlink->answered());
  v1::Op create;
  create.mutable_create()->set_path("/d/sub/a");
  Reply* created = Send(create);
  EXPECT_FALSE(created->answered());
  Reply* rmdir = Send(RmdirOp("/d/sub"));
  EXPECT_FALSE(rmdir->answered());
  EXPECT_EQ(wb_->deferred(), 1u);
}

TEST_F(WriteBehindTest, ARefusedRmdirIsReportedWithItsDirectory) {
  Make();
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d/sub", absl::Hours(1));
  Reply* rmdir = Send(RmdirOp("/d/sub"));
  ASSERT_TRUE(rmdir->answered());
  next_.Complete(0, ENOTEMPTY);
  EXPECT_EQ(rmdir->calls, 1);
  EXPECT_EQ(rmdir->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(), std::vector<Strings>{(Strings{"/d/sub", "/d"})});
  Reply* sync = Send(FsyncdirOp("/d", 4));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ENOTEMPTY);
}

// Each name of a hard-linked file is a path of its own: a change queued
// under one would not hold back ops under the others.
TEST_F(WriteBehindTest, NoChangeOfAFileWithSeveralNamesIsAnsweredEarly) {
  Make();
  PutDir("/d", 2);
  v1::Attr linked = AttrOf(5, S_IFREG | 0644);
  linked.set_nlink(2);
  cache_.PutAttr("/d/a", linked, absl::Hours(1), cache_.epoch());
  Reply* chmod = Send(ChmodOp("/d/a", 0600));
  Reply* chown = Send(ChownOp("/d/a", 1, 1));
  Reply* utimens = Send(UtimensOp("/d/a", Now(), Now()));
  Reply* unlink = Send(UnlinkOp("/d/a"));
  for (Reply* r : {chmod, chown, utimens, unlink}) {
    EXPECT_FALSE(r->answered());
  }
  EXPECT_EQ(wb_->deferred(), 0u);
}

// A rename of /d waits behind a queued change below it. A change of
// another name below /d, answered early now, would be answered as if the
// rename had not happened and reach the backend after it (at a path that
// is gone): it waits for its answer too.
TEST_F(WriteBehindTest, NoEarlyAnswerUnderARequestThatWaits) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);
  PutFile("/g", 5);
  Reply* first = Send(ChmodOp("/d/a", 0600));
  ASSERT_TRUE(first->answered());
  v1::Op rename;
  rename.mutable_rename()->set_old_path("/d");
  rename.mutable_rename()->set_new_path("/e");
  Reply* moved = Send(rename);
  EXPECT_FALSE(moved->answered());
  Reply* below = Send(ChmodOp("/d/b", 0600));
  EXPECT_FALSE(below->answered());
  Reply* elsewhere = Send(ChmodOp("/g", 0600));
  EXPECT_TRUE(elsewhere->answered());
  EXPECT_EQ(wb_->deferred(), 2u);
  EXPECT_EQ(wb_->queued(), 4u);
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
