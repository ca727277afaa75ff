// WriteBehind: Order: which queued ops share a message, and which wait for
// which.

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

TEST_F(WriteBehindTest, ChangesOfOnePathGoInSeparateMessagesInOrder) {
  Make();
  PutFile("/x", 1);
  PutFile("/f", 5);

  Send(ChmodOp("/x", 0600));  // in flight: what follows queues
  Send(ChmodOp("/f", 0600));
  Send(UtimensOp("/f", Now(), Now()));
  Send(ChmodOp("/f", 0640));
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(wb_->queued(), 4u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0600u);
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"utimens /f"});
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_TRUE(next_.all(3));
  EXPECT_EQ(next_.ops(3), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(3, 0).chmod().mode(), 0640u);
  next_.Complete(3);
  EXPECT_EQ(next_.calls(), 4u);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, SecondChangeOfAPathWaitsForTheFirstsMessage) {
  Make();
  PutFile("/f", 5);
  Reply* first = Send(ChmodOp("/f", 0600));
  Reply* second = Send(ChmodOp("/f", 0640));
  EXPECT_TRUE(first->answered());
  EXPECT_TRUE(second->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.op(0, 0).chmod().mode(), 0600u);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0640u);
}

TEST_F(WriteBehindTest, UnrelatedChangesShareAMessageAndDependentsWait) {
  Make();
  PutFile("/x", 1);
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);

  Send(ChmodOp("/x", 0600));  // in flight
  Reply* a = Send(UnlinkOp("/d/a"));
  Reply* b = Send(UnlinkOp("/d/b"));
  EXPECT_TRUE(a->answered());
  EXPECT_TRUE(b->answered());
  // The directory's attributes wait for the unlinks that change them.
  Reply* dir = Send(GetattrOp("/d"));
  EXPECT_FALSE(dir->answered());
  // What is unrelated goes on at once.
  Reply* e = Send(GetattrOp("/e"));
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"getattr /e"});
  EXPECT_EQ(next_.op(1, 0).deadline_unix_ms(), kDeadlineMs);
  next_.Complete(1);
  EXPECT_TRUE(e->answered());

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_TRUE(next_.all(2));
  EXPECT_EQ(next_.ops(2), (Strings{"unlink /d/a", "unlink /d/b"}));
  EXPECT_FALSE(dir->answered());

  // The unlinks may finish in either order; the getattr goes after both.
  next_.CompleteOp(2, 1, v1::OpResult());
  EXPECT_EQ(next_.calls(), 3u);
  next_.CompleteOp(2, 0, v1::OpResult());
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /d"});
  EXPECT_EQ(next_.op(3, 0).id(), dir->id);
  EXPECT_FALSE(dir->answered());

  v1::OpResult backend;
  *backend.mutable_getattr()->mutable_attr() = AttrOf(42, S_IFDIR | 0700);
  next_.CompleteOp(3, 0, backend);
  ASSERT_TRUE(dir->answered());
  EXPECT_EQ(dir->result.id(), dir->id);
  EXPECT_EQ(dir->result.getattr().attr().ino(), 42u);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AnOpAboveAnUnlinkInFlightWaitsForIt) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  Send(UnlinkOp("/d/a"));
  ASSERT_EQ(next_.calls(), 1u);  // in flight

  Reply* dir = Send(GetattrOp("/d"));
  // A sibling name, not below /d (sent before the getattr of "/", which
  // it would have to wait for once that is queued).
  Reply* other = Send(GetattrOp("/da"));
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"getattr /da"});
  Reply* root = Send(GetattrOp("/"));
  Reply* self = Send(GetattrOp("/d/a"));
  EXPECT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(dir->answered());

  next_.Complete(0);
  // The three touch one another (and /d/a), so one message each.
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_TRUE(next_.all(2));
  EXPECT_EQ(next_.ops(2), Strings{"getattr /d"});
  next_.Complete(2, EIO);
  EXPECT_EQ(dir->posix_errno(), EIO);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /"});
  next_.Complete(3);
  ASSERT_EQ(next_.calls(), 5u);
  EXPECT_EQ(next_.ops(4), Strings{"getattr /d/a"});
  next_.Complete(4, ENOENT);
  EXPECT_TRUE(root->answered());
  EXPECT_EQ(self->posix_errno(), ENOENT);
  EXPECT_FALSE(other->answered());
  next_.Complete(1);
  EXPECT_TRUE(other->answered());
}

TEST_F(WriteBehindTest, SendAllHoldsBackOnlyWhatTouchesTheQueue) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/g", 4);
  Send(UnlinkOp("/d/a"));
  ASSERT_EQ(next_.calls(), 1u);

  std::vector<Reply*> r = SendAll(
      {GetattrOp("/d"), GetattrOp("/e"), ChmodOp("/g", 0600), GetattrOp("/f")});
  EXPECT_FALSE(r[0]->answered());
  EXPECT_TRUE(r[2]->answered());  // deferred, queued
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.ops(1), (Strings{"getattr /e", "getattr /f"}));

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  // The chmod of /g touches nothing of the getattr of /d, but goes in a
  // message of its own: one with a kernel request has that request's
  // deadline.
  EXPECT_EQ(next_.ops(2), (Strings{"getattr /d"}));
  next_.Complete(2);
  EXPECT_TRUE(r[0]->answered());
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), (Strings{"chmod /g"}));
  next_.Complete(3);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AMessagePassesOverWhatWaitsButNothingOvertakesIt) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  PutFile("/b", 3);
  Send(ChmodOp("/x", 0600));  // in flight
  Send(ChmodOp("/a", 0600));
  Send(ChmodOp("/a", 0640, /*fh=*/7));        // waits for the first
  Send(ChmodOp("/b", 0600));                  // touches neither
  Reply* release = Send(ReleaseOp("/c", 7));  // waits for the second
  ASSERT_EQ(next_.calls(), 1u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"chmod /a", "chmod /b"}));
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0600u);
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /a"});
  EXPECT_EQ(next_.op(2, 0).chmod().mode(), 0640u);
  EXPECT_FALSE(release->answered());
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"release /c"});
  next_.Complete(3);
  EXPECT_TRUE(release->answered());
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AnOpOnAHandleWaitsBehindAChangeThroughIt) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  Send(ChmodOp("/x", 0600));  // in flight
  Reply* chmod = Send(ChmodOp("/a", 0600, /*fh=*/7));
  EXPECT_TRUE(chmod->answered());
  // Another path, but the same open file.
  Reply* release = Send(ReleaseOp("/b", 7));
  Reply* other = Send(ReleaseOp("/c", 8));
  EXPECT_FALSE(release->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"release /c"});
  next_.Complete(1);
  EXPECT_TRUE(other->answered());

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /a"});  // not with the release
  EXPECT_EQ(next_.op(2, 0).chmod().fh(), 7u);
  EXPECT_FALSE(release->answered());
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"release /b"});
  next_.Complete(3);
  EXPECT_TRUE(release->answered());
  EXPECT_EQ(release->result.id(), release->id);
}

// To a backend that runs a message in order, a backlog goes in messages of
// up to 1,024 ops (to another, 64): behind a slow link, few round trips.
TEST_F(WriteBehindTest, InOrderABacklogGoesInOneMessage) {
  for (const bool in_order : {true, false}) {
    SCOPED_TRACE(in_order ? "in order" : "any order");
    Make(1024, in_order);
    PutFile("/x", 1);
    for (int i = 0; i < 100; ++i) PutFile("/f" + std::to_string(i), 10 + i);
    const size_t first = next_.calls();
    Send(ChmodOp("/x", 0600));  // in flight: what follows queues
    for (int i = 0; i < 100; ++i) Send(ChmodOp("/f" + std::to_string(i), 0600));
    ASSERT_EQ(next_.calls(), first + 1);
    next_.Complete(first);
    ASSERT_EQ(next_.calls(), first + 2);
    EXPECT_EQ(next_.ops(first + 1).size(), in_order ? 100u : 64u);
    EXPECT_EQ(next_.ops(first + 1).front(), "chmod /f0");
    next_.Complete(first + 1);
    if (!in_order) {
      ASSERT_EQ(next_.calls(), first + 3);
      EXPECT_EQ(next_.ops(first + 2).size(), 36u);
      EXPECT_EQ(next_.ops(first + 2).front(), "chmod /f64");
      next_.Complete(first + 2);
    }
    EXPECT_EQ(wb_->queued(), 0u);
  }
}

// A message carries at most 16 MiB of write data, however many ops it may
// hold; a larger write goes alone.
TEST_F(WriteBehindTest, AMessageCarriesAtMost16MiBOfWrites) {
  Make(1024, /*in_order=*/true, /*creates=*/true, /*posix_acl=*/false,
       /*takes_handles=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  PutFile("/d/old", 5);
  Send(ChmodOp("/d/old", 0600));  // in flight: what follows queues
  Reply* create = Send(CreateOp("/d/a", S_IFREG | 0644));
  ASSERT_TRUE(create->answered());
  const uint64_t token = create->result.create().open().fh();
  // As the caching layer above keeps the early answer.
  cache_.PutAttr("/d/a", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  const std::string six(6 << 20, 'x');
  const std::string twenty(20 << 20, 'y');
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Send(WriteOp("/d/a", token, i * six.size(), six))->answered());
  }
  ASSERT_TRUE(Send(WriteOp("/d/a", token, 4 * six.size(), twenty))->answered());
  ASSERT_TRUE(Send(ReleaseOp("/d/a", token))->answered());
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"create /d/a", "write /d/a", "write /d/a"}));
  next_.CompleteOp(1, 0, Created(&handles_, next_.op(1, 0), 7));
  v1::OpResult ok;
  ok.mutable_empty();
  next_.CompleteOp(1, 1, ok);
  next_.CompleteOp(1, 2, ok);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), (Strings{"write /d/a", "write /d/a"}));
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), (Strings{"write /d/a", "release /d/a"}));
  EXPECT_EQ(next_.op(3, 0).write().data().size(), twenty.size());
  next_.Complete(3);
  EXPECT_EQ(wb_->queued(), 0u);
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
