// WriteBehind: Creates answered early, and the writes, flushes and releases on
// their handles.

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

TEST_F(WriteBehindTest, ACreateOfANameKnownAbsentIsAnsweredAtOnce) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1, S_IFDIR | 02775);  // set-gid: new files get its group
  cache_.PutNewDirectory("/d", absl::Hours(1));
  v1::Attr dir = Cached("/d");

  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0640));
  ASSERT_TRUE(create->answered());
  EXPECT_EQ(create->posix_errno(), 0);
  EXPECT_EQ(create->result.id(), create->id);
  const v1::Attr& attr = create->result.create().attr();
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(attr.uid(), 1001u);
  EXPECT_EQ(attr.gid(), dir.gid());
  EXPECT_EQ(attr.nlink(), 1u);
  EXPECT_EQ(attr.size(), 0u);
  EXPECT_EQ(attr.ino(), 0u);  // the kernel's node id stands for it
  EXPECT_ATTR_EQ(attr.mtime(), kNowTs);
  EXPECT_ATTR_EQ(attr.ctime(), kNowTs);
  EXPECT_ATTR_EQ(create->result.parent_attr().mtime(), kNowTs);
  const uint64_t token = create->result.create().open().fh();
  ASSERT_NE(token, 0u);
  EXPECT_FALSE(create->result.create().open().noflush());
  EXPECT_TRUE(handles_.FlushesHere(token));  // the backend has no handle yet
  // Sent at once, as the kernel asked, without a descriptor to hand over.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"create /d/f"});
  EXPECT_EQ(next_.op(0, 0).create().flags(),
            static_cast<uint32_t>(O_WRONLY | O_CREAT | O_EXCL));
  EXPECT_EQ(next_.op(0, 0).create().passthrough_tag(), 0u);

  // What the layer above keeps of the answer; then the file's writes,
  // flush and release are answered at once too, the write with the size
  // it leaves.
  cache_.PutAttr("/d/f", attr, absl::Hours(1), cache_.epoch());
  cache_.ListingAdd("/d", "f", ListingEntry{S_IFREG, 0});
  Reply* write = Send(WriteOp("/d/f", token, 3, "hello"));
  Reply* times = Send(UtimensOp("/d/f", Omit(), Set(5, 6)));
  Reply* flush = Send(FlushOp("/d/f", token));
  Reply* release = Send(ReleaseOp("/d/f", token));
  ASSERT_TRUE(write->answered() && times->answered() && flush->answered() &&
              release->answered());
  EXPECT_EQ(write->result.write().size(), 5u);
  EXPECT_EQ(write->result.write().attr().size(), 8u);
  EXPECT_EQ(wb_->deferred(), 5u);
  EXPECT_EQ(next_.calls(), 1u);  // all behind the create

  // The backend's handle is bound to the token before the next message.
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 77));
  int err = 0;
  EXPECT_EQ(Resolved(&handles_, WriteOp("/d/f", token, 0, "x"), &err), 77u);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(handles_.size(), 1u);  // the backend's token was retired
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"write /d/f", "utimens /d/f", "flush /d/f",
                                   "release /d/f"}));
  EXPECT_EQ(next_.op(1, 0).write().data(), "hello");
  next_.Complete(1);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ACreateEndsItsMessage) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* a = Send(CreateOp("/d/a", S_IFREG | 0644));
  Reply* b = Send(CreateOp("/d/b", S_IFREG | 0644));
  Reply* c = Send(CreateOp("/d/c", S_IFREG | 0644));
  ASSERT_TRUE(a->answered() && b->answered() && c->answered());
  ASSERT_EQ(next_.calls(), 1u);
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 1));
  // The ops after a create that carry its token need its handle.
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"create /d/b"});
  next_.CompleteOp(1, 0, Created(&handles_, next_.op(1, 0), 2));
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/c"});
}

// A backend that fills in the handle of an earlier op gets a file's create,
// writes and release in one message, and the next file's with them; the
// creates say which token their handle becomes.
TEST_F(WriteBehindTest, CreatesShareAMessageWhenTheBackendTakesTheirHandles) {
  Make(1024, /*in_order=*/true, /*creates=*/true, /*posix_acl=*/false,
       /*takes_handles=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  PutFile("/d/old", 5);
  // In flight while the files are made: they queue behind it.
  Reply* chmod = Send(ChmodOp("/d/old", 0600));
  ASSERT_TRUE(chmod->answered());
  ASSERT_EQ(next_.calls(), 1u);
  std::vector<uint64_t> tokens;
  for (const char* name : {"/d/a", "/d/b"}) {
    Reply* create = Send(CreateOp(name, S_IFREG | 0644));
    ASSERT_TRUE(create->answered());
    const uint64_t token = create->result.create().open().fh();
    tokens.push_back(token);
    cache_.PutAttr(name, create->result.create().attr(), absl::Hours(1),
                   cache_.epoch());
    cache_.ListingAdd("/d", std::string(name).substr(3),
                      ListingEntry{S_IFREG, 0});
    ASSERT_TRUE(Send(WriteOp(name, token, 0, "data"))->answered());
    ASSERT_TRUE(Send(ReleaseOp(name, token))->answered());
  }
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.in_order(1));
  EXPECT_EQ(next_.ops(1),
            (Strings{"create /d/a", "write /d/a", "release /d/a", "create /d/b",
                     "write /d/b", "release /d/b"}));
  EXPECT_EQ(next_.creates_token(1, 0), tokens[0]);
  EXPECT_EQ(next_.creates_token(1, 1), 0u);
  EXPECT_EQ(next_.creates_token(1, 3), tokens[1]);

  // Said otherwise (a restarted backend), a create ends its message again.
  takes_handles_ = false;
  Reply* c = Send(CreateOp("/d/c", S_IFREG | 0644));
  ASSERT_TRUE(c->answered());
  const uint64_t token = c->result.create().open().fh();
  cache_.PutAttr("/d/c", c->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  cache_.ListingAdd("/d", "c", ListingEntry{S_IFREG, 0});
  ASSERT_TRUE(Send(ReleaseOp("/d/c", token))->answered());
  next_.CompleteOp(1, 0, Created(&handles_, next_.op(1, 0), 1));
  for (size_t j = 1; j < 6; ++j) {
    v1::OpResult done;
    if (j == 3) {
      done = Created(&handles_, next_.op(1, j), 2);
    } else {
      done.mutable_empty();
    }
    next_.CompleteOp(1, j, done);
  }
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/c"});
  EXPECT_EQ(next_.creates_token(2, 0), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ACreateWaitsUnlessTheNameIsKnownAbsent) {
  Make(1024, /*in_order=*/false, /*creates=*/true);
  PutDir("/unlisted", 1);
  PutDir("/listed", 2);
  Listing listing;
  listing.emplace("there", ListingEntry{S_IFREG, 3});
  cache_.PutListing("/listed", listing, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/uncached", absl::Hours(1));

  Reply* unlisted = Send(CreateOp("/unlisted/f", S_IFREG | 0644));
  Reply* there = Send(CreateOp("/listed/there", S_IFREG | 0644));
  Reply* setid = Send(CreateOp("/listed/s", S_IFREG | 02755));
  Reply* no_dir = Send(CreateOp("/uncached/f", S_IFREG | 0644));
  EXPECT_FALSE(unlisted->answered() || there->answered() || setid->answered() ||
               no_dir->answered());
  EXPECT_EQ(wb_->deferred(), 0u);
  EXPECT_EQ(next_.calls(), 4u);  // forwarded, as without write-behind

  // Without a handle map, no create is answered early.
  Make(1024, false, /*creates=*/false);
  Reply* plain = Send(CreateOp("/listed/new", S_IFREG | 0644));
  EXPECT_FALSE(plain->answered());
}

TEST_F(WriteBehindTest, ARefusedCreateIsReportedAndFailsItsHandle) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0644));
  ASSERT_TRUE(create->answered());
  const uint64_t token = create->result.create().open().fh();
  cache_.PutAttr("/d/f", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  Reply* write = Send(WriteOp("/d/f", token, 0, "data"));
  ASSERT_TRUE(write->answered());

  v1::OpResult refused;
  refused.set_posix_errno(EEXIST);  // another client made the name
  next_.CompleteOp(0, 0, refused);
  EXPECT_EQ(failures(), (std::vector<Strings>{Strings{"/d/f", "/d"}}));
  int err = 0;
  Resolved(&handles_, WriteOp("/d/f", token, 0, "x"), &err);
  EXPECT_EQ(err, EEXIST);
  // The write behind it fails so too; the next fsync reports the first.
  ASSERT_EQ(next_.calls(), 2u);
  next_.Complete(1, EEXIST);
  EXPECT_EQ(wb_->failed(), 2u);
  int reported = -1;
  wb_->Settle([&](int e) { reported = e; });
  EXPECT_EQ(reported, EEXIST);
}

TEST_F(WriteBehindTest, WritesBeyondTheByteBoundWaitBehindTheCreate) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0644));
  const uint64_t token = create->result.create().open().fh();
  cache_.PutAttr("/d/f", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  const std::string big((64 << 20) - 1, 'x');
  Reply* first = Send(WriteOp("/d/f", token, 0, big));
  Reply* second = Send(WriteOp("/d/f", token, big.size(), "yz"));
  EXPECT_TRUE(first->answered());
  EXPECT_FALSE(second->answered());
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 5));
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"write /d/f"});
  next_.Complete(2);
  EXPECT_TRUE(second->answered());
}

TEST_F(WriteBehindTest, WithAclsACreateWaitsUntilTheDirectoryHasNoDefaultAcl) {
  Make(1024, /*in_order=*/true, /*creates=*/true, /*posix_acl=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  // Its default ACL unknown: the create goes on, after a question.
  Reply* first = Send(CreateOp("/d/a", S_IFREG | 0644, 1001, 50));
  EXPECT_FALSE(first->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(0), Strings{"getxattr /d"});
  EXPECT_EQ(next_.op(0, 0).getxattr().name(), "system.posix_acl_default");
  EXPECT_EQ(next_.op(0, 0).caller().uid(), 1001u);
  EXPECT_EQ(next_.ops(1), Strings{"create /d/a"});
  // Asked once while the answer is on its way.
  Reply* second = Send(CreateOp("/d/b", S_IFREG | 0644));
  EXPECT_FALSE(second->answered());
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/b"});
  v1::OpResult none;
  none.set_posix_errno(ENODATA);
  next_.CompleteOp(0, 0, none);
  Reply* third = Send(CreateOp("/d/c", S_IFREG | 0644));
  EXPECT_TRUE(third->answered());

  // A directory made in one whose default ACL is unknown: that is asked
  // while the mkdir goes (the caching layer then knows the new directory's:
  // none where its parent has none).
  PutDir("/e", 3);
  const size_t before = next_.calls();
  v1::Op mkdir;
  mkdir.mutable_caller()->set_uid(1002);
  mkdir.mutable_mkdir()->set_path("/e/sub");
  mkdir.mutable_mkdir()->set_mode(0755);
  Reply* made = Send(mkdir);
  EXPECT_FALSE(made->answered());
  ASSERT_EQ(next_.calls(), before + 2);
  EXPECT_EQ(next_.ops(before), Strings{"getxattr /e"});
  EXPECT_EQ(next_.op(before, 0).getxattr().name(), "system.posix_acl_default");
  EXPECT_EQ(next_.op(before, 0).caller().uid(), 1002u);
  EXPECT_EQ(next_.ops(before + 1), Strings{"mkdir /e/sub"});
  // Asked already (the answer is on its way): no second question.
  Reply* again = Send(mkdir);
  EXPECT_FALSE(again->answered());
  ASSERT_EQ(next_.calls(), before + 3);
  EXPECT_EQ(next_.ops(before + 2), Strings{"mkdir /e/sub"});

  // A directory with a default ACL: its creates go on.
  PutDir("/acl", 2);
  cache_.PutNewDirectory("/acl", absl::Hours(1));
  const std::string acl = "some ACL";
  cache_.PutXattr("/acl", "system.posix_acl_default", &acl, absl::Hours(1),
                  cache_.epoch());
  const size_t calls = next_.calls();
  Reply* in_acl = Send(CreateOp("/acl/f", S_IFREG | 0644));
  EXPECT_FALSE(in_acl->answered());
  EXPECT_EQ(next_.calls(), calls + 1);  // the create alone
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
