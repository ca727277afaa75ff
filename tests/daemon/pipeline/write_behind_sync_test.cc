// WriteBehind: fsync and its errors, the bounds of the queue, draining and
// cancelling.

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

TEST_F(WriteBehindTest, FsyncWaitsForEverythingQueuedAndGoesAlone) {
  Make();
  PutFile("/a", 1);
  PutFile("/b", 2);
  PutFile("/c", 3);
  Send(ChmodOp("/a", 0600));  // in flight
  Send(ChmodOp("/b", 0600));
  Reply* sync = Send(FsyncOp("/z", 9));  // touches nothing queued, yet waits
  Send(ChmodOp("/c", 0600));
  EXPECT_FALSE(sync->answered());
  ASSERT_EQ(next_.calls(), 1u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chmod /b"});
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"fsync /z"});
  EXPECT_FALSE(sync->answered());
  next_.Complete(2);
  ASSERT_TRUE(sync->answered());
  EXPECT_EQ(sync->posix_errno(), 0);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"chmod /c"});

  // With nothing queued, an fsync goes on at once.
  next_.Complete(3);
  Reply* idle = Send(FsyncdirOp("/", 10));
  ASSERT_EQ(next_.calls(), 5u);
  EXPECT_FALSE(next_.all(4));
  next_.Complete(4);
  EXPECT_EQ(idle->posix_errno(), 0);
}

TEST_F(WriteBehindTest, AFailedChangeIsReportedOnceByTheNextFsync) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  Reply* unlink = Send(UnlinkOp("/d/a"));
  ASSERT_TRUE(unlink->answered());
  next_.Complete(0, EACCES);
  EXPECT_EQ(unlink->calls, 1);  // told success already; not again
  EXPECT_EQ(unlink->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  // The caches are told what the early answer made them believe.
  EXPECT_EQ(failures(), std::vector<Strings>{(Strings{"/d/a", "/d"})});

  Reply* sync = Send(FsyncOp("/elsewhere", 4));
  ASSERT_EQ(next_.calls(), 2u);
  next_.Complete(1);  // the backend says 0
  EXPECT_EQ(sync->posix_errno(), EACCES);
  EXPECT_EQ(sync->result.id(), sync->id);

  Reply* again = Send(FsyncOp("/elsewhere", 4));
  ASSERT_EQ(next_.calls(), 3u);
  next_.Complete(2);
  EXPECT_EQ(again->posix_errno(), 0);
}

TEST_F(WriteBehindTest, AnFsyncQueuedBehindAFailingChangeReportsIt) {
  Make();
  PutFile("/f", 5);
  Send(ChmodOp("/f", 0600, /*fh=*/3));
  Reply* sync = Send(FsyncdirOp("/", 4));
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0, EPERM);
  EXPECT_EQ(failures(), std::vector<Strings>{Strings{"/f"}});
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"fsyncdir /"});
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), EPERM);
}

TEST_F(WriteBehindTest, AnFsyncsOwnErrorComesFirstAndKeepsTheOther) {
  Make();
  PutFile("/f", 5);
  PutFile("/g", 6);
  Send(ChmodOp("/f", 0600));
  next_.Complete(0, EACCES);
  Send(ChmodOp("/g", 0600));
  next_.Complete(1, EROFS);  // the first failure is the one reported
  EXPECT_EQ(wb_->failed(), 2u);
  EXPECT_EQ(failures(), (std::vector<Strings>{Strings{"/f"}, Strings{"/g"}}));

  Reply* sync = Send(FsyncOp("/f", 1));
  next_.Complete(2, EIO);
  EXPECT_EQ(sync->posix_errno(), EIO);
  Reply* again = Send(FsyncOp("/f", 1));
  next_.Complete(3);
  EXPECT_EQ(again->posix_errno(), EACCES);
  Reply* clean = Send(FsyncOp("/f", 1));
  next_.Complete(4);
  EXPECT_EQ(clean->posix_errno(), 0);
}

TEST_F(WriteBehindTest, BeyondMaxQueuedChangesWaitForTheirAnswer) {
  Make(/*max_queued=*/2);
  PutFile("/a", 1);
  PutFile("/b", 2);
  PutFile("/c", 3);
  PutFile("/e", 4);
  Reply* a = Send(ChmodOp("/a", 0600));  // in flight, still counted
  Reply* b = Send(ChmodOp("/b", 0600));  // queued
  Reply* c = Send(ChmodOp("/c", 0600));
  EXPECT_TRUE(a->answered());
  EXPECT_TRUE(b->answered());
  EXPECT_FALSE(c->answered());
  EXPECT_EQ(wb_->deferred(), 2u);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"chmod /c"});
  next_.Complete(1);
  ASSERT_TRUE(c->answered());
  EXPECT_EQ(c->posix_errno(), 0);

  // A finished message makes room again.
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /b"});
  Reply* e = Send(ChmodOp("/e", 0600));
  EXPECT_TRUE(e->answered());
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, DrainWaitsForWhatIsInFlight) {
  Make();
  PutFile("/f", 5);
  EXPECT_TRUE(wb_->Drain(absl::Now()));  // nothing to wait for
  Send(ChmodOp("/f", 0600));
  EXPECT_FALSE(wb_->Drain(absl::Now() + absl::Milliseconds(20)));
  EXPECT_EQ(wb_->queued(), 1u);

  // A completion on another thread wakes a waiting Drain.
  std::thread backend([this] {
    absl::SleepFor(absl::Milliseconds(30));
    next_.Complete(0);
  });
  EXPECT_TRUE(wb_->Drain(absl::Now() + absl::Seconds(30)));
  backend.join();
  EXPECT_EQ(wb_->queued(), 0u);

  wb_->WaitIdle();
  EXPECT_EQ(next_.waits(), 1);
}

TEST_F(WriteBehindTest, CancelAllFailsWhatIsQueued) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  Send(ChmodOp("/x", 0600));  // in flight
  Reply* chmod = Send(ChmodOp("/a", 0600));
  Reply* waiting = Send(GetattrOp("/x"));
  EXPECT_TRUE(chmod->answered());
  EXPECT_FALSE(waiting->answered());
  EXPECT_EQ(wb_->queued(), 3u);

  wb_->CancelAll();
  EXPECT_EQ(next_.cancels(), 1);
  ASSERT_TRUE(waiting->answered());
  EXPECT_EQ(waiting->posix_errno(), ECANCELED);
  EXPECT_EQ(waiting->result.id(), waiting->id);
  EXPECT_EQ(chmod->calls, 1);  // answered once, early
  // The dropped change never reached the backend: a failure like any.
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(), std::vector<Strings>{Strings{"/a"}});
  EXPECT_EQ(wb_->queued(), 1u);  // the message in flight is the next layer's
  EXPECT_FALSE(wb_->Drain(absl::Now()));

  next_.Complete(0, ECANCELED);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(next_.calls(), 1u);  // nothing left to send
  EXPECT_EQ(wb_->failed(), 2u);

  Reply* sync = Send(FsyncOp("/a", 1));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ECANCELED);
}

TEST_F(WriteBehindTest, ANextLayerThatAnswersInsideSendAllIsFine) {
  Make();
  next_.AnswerAtOnce();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  PutFile("/d/b", 3);
  Reply* chmod = Send(ChmodOp("/d/a", 0600));
  Reply* again = Send(ChmodOp("/d/a", 0640));
  Reply* unlink = Send(UnlinkOp("/d/b"));
  Reply* sync = Send(FsyncOp("/d/a", 1));
  for (Reply* r : {chmod, again, unlink, sync}) {
    ASSERT_TRUE(r->answered());
    EXPECT_EQ(r->calls, 1);
    EXPECT_EQ(r->posix_errno(), 0);
  }
  EXPECT_EQ(next_.calls(), 4u);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, DeferredCountsEarlyAnswersOnly) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  PutFile("/d/b", 3);
  PutFile("/s", 4, S_IFREG | 04755);
  EXPECT_EQ(wb_->deferred(), 0u);
  Send(ChmodOp("/d/a", 0600));
  Send(UtimensOp("/d/b", Now(), Now()));
  Send(ChownOp("/s", 1, 1));         // set-uid: not early
  Send(ChmodOp("/uncached", 0600));  // not cached: not early
  Send(GetattrOp("/d"));             // not a change at all
  Send(UnlinkOp("/d/b"));
  EXPECT_EQ(wb_->deferred(), 3u);
  // Answering each call in turn sends the rest.
  for (size_t i = 0; i < next_.calls(); ++i) next_.Complete(i);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->deferred(), 3u);
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ABackendThatKeepsOrderGetsTheQueueAsItStands) {
  Make(1024, /*in_order=*/true);
  PutFile("/f", 2);
  PutFile("/g", 3);
  Reply* first = Send(ChmodOp("/f", 0600));
  ASSERT_TRUE(first->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.in_order(0));
  // Changes of one file, and a read of it, behind the one in flight.
  Reply* chown = Send(ChownOp("/f", 7, std::nullopt));
  Reply* times = Send(UtimensOp("/f", Omit(), Set(5, 6)));
  Reply* other = Send(ChmodOp("/g", 0640));
  Reply* read = Send(GetattrOp("/f"));
  EXPECT_TRUE(chown->answered() && times->answered() && other->answered());
  EXPECT_FALSE(read->answered());
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0);
  // One message of the changes, in the order they came (the backend runs
  // it so), then the read that waited for them, in one of its own (its
  // deadline is not theirs).
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.in_order(1));
  EXPECT_EQ(next_.ops(1), (Strings{"chown /f", "utimens /f", "chmod /g"}));
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), (Strings{"getattr /f"}));
  next_.Complete(2);
  EXPECT_TRUE(read->answered());
  EXPECT_TRUE(wb_->Drain(absl::Now()));
}

TEST_F(WriteBehindTest, SettleWaitsForTheQueueAndReportsItsError) {
  Make();
  PutFile("/a", 2);
  int settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, 0);  // nothing queued
  Send(ChmodOp("/a", 0600));
  ASSERT_EQ(next_.calls(), 1u);
  Reply* later = Send(ChmodOp("/a", 0640));
  settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, -1);
  next_.Complete(0, EACCES);
  // The second chmod went on; the Settle waits for it too, sends nothing.
  EXPECT_EQ(settled, -1);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"chmod /a"}));
  next_.Complete(1);
  EXPECT_EQ(settled, EACCES);
  EXPECT_TRUE(later->answered());
  settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, 0);  // reported once
  EXPECT_EQ(next_.calls(), 2u);
}

TEST_F(WriteBehindTest,
       ABackendWithoutFsyncHasItAnsweredOnceTheQueueIsThrough) {
  Make();
  PutFile("/a", 2);
  Reply* first = Send(FsyncOp("/a", 9));
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0, ENOSYS);
  // Not ENOSYS: the kernel would stop sending fsync, and errors of changes
  // answered early would never be reported.
  EXPECT_EQ(first->posix_errno(), 0);
  Send(ChmodOp("/a", 0600));
  ASSERT_EQ(next_.calls(), 2u);
  Reply* second = Send(FsyncOp("/a", 9));
  EXPECT_FALSE(second->answered());
  next_.Complete(1, EPERM);
  EXPECT_EQ(second->posix_errno(), EPERM);
  // No fsync ever went to the backend again.
  EXPECT_EQ(next_.calls(), 2u);
  Reply* third = Send(FsyncOp("/a", 9));
  EXPECT_EQ(third->posix_errno(), 0);
  EXPECT_EQ(next_.calls(), 2u);
  // An fsyncdir is asked of the backend as before.
  Send(FsyncdirOp("/", 4));
  EXPECT_EQ(next_.calls(), 3u);
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
