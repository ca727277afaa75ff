// Batcher over a fake BatchSink that records each message and lets the test
// finish it.

#include "daemon/pipeline/batcher.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/pipeline/op_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {
namespace {

// Records messages; Finish(i) answers every op of message i with success and
// then reports the message finished. Also the OpTransport the batcher
// cancels and waits on.
class FakeSink : public BatchSink, public CountingTransport {
 public:
  void SendBatch(std::vector<PendingOp> ops, std::function<void()> sent,
                 bool in_order) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(Message{std::move(ops), std::move(sent), in_order});
  }
  bool InOrder(size_t i) {
    absl::MutexLock lock(&mu_);
    return messages_[i].in_order;
  }
  void Send(v1::Op, Done) override { ADD_FAILURE() << "Send on the sink"; }

  size_t messages() {
    absl::MutexLock lock(&mu_);
    return messages_.size();
  }
  // Paths of message i's ops, in order.
  std::vector<std::string> Paths(size_t i) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> paths;
    for (const PendingOp& p : messages_.at(i).ops) paths.push_back(PathOf(p.op));
    return paths;
  }
  std::vector<uint64_t> Ids(size_t i) {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> ids;
    for (const PendingOp& p : messages_.at(i).ops) ids.push_back(p.op.id());
    return ids;
  }
  // Finishes message i: answers its ops with success, then reports it
  // finished (without the sink's lock: that may send the next message).
  // Returns false if it was finished already.
  bool Finish(size_t i) {
    std::vector<std::pair<uint64_t, Done>> dones;
    std::function<void()> sent;
    {
      absl::MutexLock lock(&mu_);
      Message& m = messages_.at(i);
      if (m.sent == nullptr) return false;
      for (PendingOp& p : m.ops) dones.emplace_back(p.op.id(), std::move(p.done));
      sent = std::move(m.sent);
      m.sent = nullptr;
    }
    for (auto& [id, done] : dones) {
      v1::OpResult result;
      result.set_id(id);
      done(result);
    }
    sent();
    return true;
  }
  // Finishes every message not finished yet; returns how many.
  int FinishAll() {
    int n = 0;
    for (size_t i = first_open_; i < messages(); ++i) n += Finish(i);
    absl::MutexLock lock(&mu_);
    while (first_open_ < messages_.size() &&
           messages_[first_open_].sent == nullptr) {
      ++first_open_;
    }
    return n;
  }

  static std::string PathOf(const v1::Op& op) {
    if (op.has_release()) return op.release().path();
    if (op.has_read()) return op.read().path();
    if (op.has_readdir()) return op.readdir().path();
    if (op.has_opendir()) return op.opendir().path();
    return op.has_write() ? op.write().path() : op.getattr().path();
  }

 private:
  struct Message {
    std::vector<PendingOp> ops;
    std::function<void()> sent;
    bool in_order;
  };
  absl::Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  // Messages before this one are finished (FinishAll is single-threaded).
  size_t first_open_ = 0;
};

v1::Op GetattrOp(const std::string& path) {
  v1::Op op;
  op.set_id(99);  // the batcher renumbers
  op.mutable_getattr()->set_path(path);
  return op;
}
v1::Op WriteOp(const std::string& path, size_t bytes) {
  v1::Op op;
  op.mutable_write()->set_path(path);
  op.mutable_write()->set_data(std::string(bytes, 'x'));
  return op;
}

v1::Op ReadOp(const std::string& path, uint32_t bytes) {
  v1::Op op;
  op.mutable_read()->set_path(path);
  op.mutable_read()->set_size(bytes);
  return op;
}

// A listing as the prefetcher asks for it: no kernel request waits, so no
// deadline.
v1::Op ReaddirAheadOp(const std::string& path) {
  v1::Op op;
  op.mutable_readdir()->set_path(path);
  return op;
}

v1::Op ReleaseOp(const std::string& path) {
  v1::Op op;
  op.mutable_release()->set_path(path);
  return op;
}

using Paths = std::vector<std::string>;

Batcher::Options Limits(int max_in_flight, int max_ops = 64,
                        size_t max_bytes = 4 << 20) {
  Batcher::Options options;
  options.max_in_flight = max_in_flight;
  options.max_ops = max_ops;
  options.max_bytes = max_bytes;
  return options;
}

class BatcherTest : public ::testing::Test {
 protected:
  void Make(Batcher::Options options) {
    batcher_ = std::make_unique<Batcher>(options, &sink_, &sink_);
  }
  // Sends `op`; records its result under its path.
  void Send(v1::Op op) {
    std::string path = FakeSink::PathOf(op);
    batcher_->Send(std::move(op), [this, path](const v1::OpResult& result) {
      absl::MutexLock lock(&mu_);
      results_.emplace_back(path, result.posix_errno());
    });
  }
  // Sends getattrs of "/<first>" .. "/<first + n - 1>".
  void SendGetattrs(int first, int n) {
    for (int i = first; i < first + n; ++i) Send(GetattrOp(absl::StrCat("/", i)));
  }
  // Getattrs of "/<first>" .. for SendAll or SendInOrder, their results
  // unheeded.
  static std::vector<PendingOp> UnheededGetattrs(int first, int n) {
    std::vector<PendingOp> group;
    for (int i = first; i < first + n; ++i) {
      group.push_back(PendingOp{GetattrOp(absl::StrCat("/", i)),
                                [](const v1::OpResult&) {}, nullptr});
    }
    return group;
  }
  std::vector<std::pair<std::string, int>> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

  FakeSink sink_;
  std::unique_ptr<Batcher> batcher_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, int>> results_ ABSL_GUARDED_BY(mu_);
};

TEST_F(BatcherTest, OpsGoOutAloneBelowTheInFlightLimit) {
  Make(Limits(3));
  SendGetattrs(0, 3);
  ASSERT_EQ(sink_.messages(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sink_.Paths(i), Paths{absl::StrCat("/", i)});
    EXPECT_EQ(sink_.Ids(i), std::vector<uint64_t>{1});
  }
  // A finished message frees its slot: the next op goes out alone at once.
  ASSERT_TRUE(sink_.Finish(1));
  SendGetattrs(3, 1);
  ASSERT_EQ(sink_.messages(), 4u);
  EXPECT_EQ(sink_.Paths(3), Paths{"/3"});
}

TEST_F(BatcherTest, OpsBeyondTheLimitQueueAndGoOutTogether) {
  Make(Limits(2));
  SendGetattrs(0, 5);
  ASSERT_EQ(sink_.messages(), 2u);  // "/2" .. "/4" wait

  ASSERT_TRUE(sink_.Finish(0));
  ASSERT_EQ(sink_.messages(), 3u);
  EXPECT_EQ(sink_.Paths(2), (Paths{"/2", "/3", "/4"}));
  EXPECT_EQ(sink_.Ids(2), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(results().size(), 1u);

  // Nothing queued: finishing sends nothing.
  ASSERT_EQ(sink_.FinishAll(), 2);
  EXPECT_EQ(sink_.messages(), 3u);
  EXPECT_EQ(results().size(), 5u);
  // Both slots are free again.
  SendGetattrs(5, 2);
  EXPECT_EQ(sink_.messages(), 5u);
}

TEST_F(BatcherTest, QueuedOpsPastTheirDeadlineFailWithoutBeingSent) {
  Make(Limits(1));
  Send(GetattrOp("/busy"));
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  v1::Op late = GetattrOp("/late");
  late.set_deadline_unix_ms(now_ms - 1);  // its kernel request ran out
  v1::Op timely = GetattrOp("/timely");
  timely.set_deadline_unix_ms(now_ms + 60000);
  Send(std::move(late));
  Send(std::move(timely));
  Send(GetattrOp("/none"));  // no deadline of its own
  ASSERT_EQ(sink_.messages(), 1u);
  ASSERT_TRUE(sink_.Finish(0));
  ASSERT_EQ(sink_.messages(), 2u);
  EXPECT_EQ(sink_.Paths(1), (Paths{"/timely", "/none"}));
  auto r = results();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1], std::make_pair(std::string("/late"), ETIMEDOUT));
}

TEST_F(BatcherTest, MaxOpsSplitsMessages) {
  Make(Limits(1, 2));
  SendGetattrs(0, 6);
  ASSERT_EQ(sink_.messages(), 1u);
  std::vector<Paths> expected = {
      {"/0"}, {"/1", "/2"}, {"/3", "/4"}, {"/5"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(sink_.messages(), i + 1);
    EXPECT_EQ(sink_.Paths(i), expected[i]);
    ASSERT_TRUE(sink_.Finish(i));
  }
  EXPECT_EQ(sink_.messages(), expected.size());
  EXPECT_EQ(results().size(), 6u);
}

TEST_F(BatcherTest, MaxBytesSplitsMessagesByWritePayload) {
  Make(Limits(1, 64, 10));
  Send(WriteOp("/w0", 1));
  Send(WriteOp("/w1", 6));
  Send(WriteOp("/w2", 6));
  Send(WriteOp("/w3", 3));
  Send(GetattrOp("/g"));  // no payload
  Send(WriteOp("/big", 25));  // alone, above the limit
  Send(WriteOp("/w4", 1));
  std::vector<Paths> expected = {
      {"/w0"}, {"/w1"}, {"/w2", "/w3", "/g"}, {"/big"}, {"/w4"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(sink_.messages(), i + 1);
    EXPECT_EQ(sink_.Paths(i), expected[i]);
    ASSERT_TRUE(sink_.Finish(i));
  }
  EXPECT_EQ(results().size(), 7u);
}

TEST_F(BatcherTest, MaxBytesCountsTheDataReadsAskFor) {
  Make(Limits(1, 64, 10));
  Send(GetattrOp("/g"));
  Send(ReadOp("/r0", 6));
  Send(ReadOp("/r1", 6));
  Send(ReadOp("/r2", 3));
  std::vector<Paths> expected = {{"/g"}, {"/r0"}, {"/r1", "/r2"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(sink_.messages(), i + 1);
    EXPECT_EQ(sink_.Paths(i), expected[i]);
    ASSERT_TRUE(sink_.Finish(i));
  }
  EXPECT_EQ(results().size(), 4u);
}

TEST_F(BatcherTest, LargeReadsAndWritesGoOutAloneAtOnce) {
  Batcher::Options options = Limits(1);
  options.alone_bytes = 1 << 20;
  Make(options);
  Send(GetattrOp("/g0"));  // takes the one slot
  Send(ReadOp("/r0", 1 << 20));
  Send(ReadOp("/r1", 1 << 20));
  Send(WriteOp("/w0", 1 << 20));
  // Not held back by the slot, nor put together.
  ASSERT_EQ(sink_.messages(), 4u);
  EXPECT_EQ(sink_.Paths(1), Paths{"/r0"});
  EXPECT_EQ(sink_.Paths(2), Paths{"/r1"});
  EXPECT_EQ(sink_.Paths(3), Paths{"/w0"});
  // Nor do they take slots: smaller ops still wait for the first one.
  Send(ReadOp("/small", 4096));
  Send(GetattrOp("/g1"));
  ASSERT_EQ(sink_.messages(), 4u);
  ASSERT_TRUE(sink_.Finish(1));
  ASSERT_TRUE(sink_.Finish(2));
  ASSERT_EQ(sink_.messages(), 4u);
  ASSERT_TRUE(sink_.Finish(0));
  ASSERT_EQ(sink_.messages(), 5u);
  EXPECT_EQ(sink_.Paths(4), (Paths{"/small", "/g1"}));
  ASSERT_TRUE(sink_.Finish(3));
  ASSERT_TRUE(sink_.Finish(4));
  EXPECT_EQ(results().size(), 6u);
  batcher_->WaitIdle();
}

TEST_F(BatcherTest, ListingsFetchedAheadHaveALaneOfTheirOwn) {
  Make(Limits(1));
  Send(GetattrOp("/g0"));  // takes the one slot
  Send(ReaddirAheadOp("/d0"));
  // Not held back by the kernel's slot.
  ASSERT_EQ(sink_.messages(), 2u);
  EXPECT_EQ(sink_.Paths(1), Paths{"/d0"});
  for (int i = 1; i <= 5; ++i) Send(ReaddirAheadOp(absl::StrCat("/d", i)));
  // Nor do they take the kernel's: its next op waits for /g0 alone.
  Send(GetattrOp("/g1"));
  ASSERT_EQ(sink_.messages(), 2u);
  // Their own slot passes on to the next of them, in the order asked,
  // twice as many each time.
  ASSERT_TRUE(sink_.Finish(1));
  ASSERT_EQ(sink_.messages(), 3u);
  EXPECT_EQ(sink_.Paths(2), (Paths{"/d1", "/d2"}));
  ASSERT_TRUE(sink_.Finish(0));
  ASSERT_EQ(sink_.messages(), 4u);
  EXPECT_EQ(sink_.Paths(3), Paths{"/g1"});
  ASSERT_TRUE(sink_.Finish(2));
  ASSERT_EQ(sink_.messages(), 5u);
  EXPECT_EQ(sink_.Paths(4), (Paths{"/d3", "/d4", "/d5"}));
  ASSERT_TRUE(sink_.Finish(4));
  // The lane went idle: the next walk's first listing goes alone again.
  Send(ReaddirAheadOp("/e0"));
  Send(ReaddirAheadOp("/e1"));
  ASSERT_EQ(sink_.messages(), 6u);
  EXPECT_EQ(sink_.Paths(5), Paths{"/e0"});
  ASSERT_TRUE(sink_.Finish(5));
  ASSERT_EQ(sink_.messages(), 7u);
  EXPECT_EQ(sink_.Paths(6), Paths{"/e1"});
  ASSERT_TRUE(sink_.Finish(6));
  // A listing the kernel asked for (with a deadline) is any op.
  v1::Op asked = ReaddirAheadOp("/asked");
  asked.set_deadline_unix_ms(absl::ToUnixMillis(absl::Now()) + 60000);
  Send(std::move(asked));
  ASSERT_EQ(sink_.messages(), 7u);  // waits for /g1's slot
  ASSERT_TRUE(sink_.Finish(3));
  ASSERT_EQ(sink_.messages(), 8u);
  EXPECT_EQ(sink_.Paths(7), Paths{"/asked"});
  EXPECT_EQ(sink_.FinishAll(), 1);
  EXPECT_EQ(results().size(), 11u);
  batcher_->WaitIdle();
}

TEST_F(BatcherTest, ListingsFetchedAheadGoAtMostSixteenToAMessage) {
  Make(Limits(1));
  Send(ReaddirAheadOp("/d0"));
  for (int i = 1; i <= 40; ++i) Send(ReaddirAheadOp(absl::StrCat("/d", i)));
  std::vector<size_t> sizes;
  for (size_t m = 0; m < sink_.messages(); ++m) {
    sizes.push_back(sink_.Paths(m).size());
    ASSERT_TRUE(sink_.Finish(m));
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 2, 4, 8, 16, 10}));
  EXPECT_EQ(results().size(), 41u);
  batcher_->WaitIdle();
}

TEST_F(BatcherTest, CancelAllFailsListingsQueuedAheadAndWaitIdleCoversThem) {
  Make(Limits(1));
  Send(ReaddirAheadOp("/d0"));
  Send(ReaddirAheadOp("/d1"));
  ASSERT_EQ(sink_.messages(), 1u);
  absl::Notification idle;
  std::thread waiter([&] {
    batcher_->WaitIdle();
    idle.Notify();
  });
  EXPECT_FALSE(idle.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  batcher_->CancelAll();
  using Result = std::pair<std::string, int>;
  EXPECT_EQ(results(), (std::vector<Result>{{"/d1", ECANCELED}}));
  EXPECT_FALSE(idle.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  ASSERT_TRUE(sink_.Finish(0));
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(10)));
  waiter.join();
  EXPECT_EQ(sink_.messages(), 1u);
}

TEST_F(BatcherTest, CancelAllFailsQueuedOpsAndCancelsTheTransport) {
  Make(Limits(1));
  SendGetattrs(0, 3);
  ASSERT_EQ(sink_.messages(), 1u);
  batcher_->CancelAll();
  EXPECT_EQ(sink_.cancels(), 1);
  using Result = std::pair<std::string, int>;
  EXPECT_EQ(results(),
            (std::vector<Result>{{"/1", ECANCELED}, {"/2", ECANCELED}}));

  // The message in flight finishes as the transport says; nothing follows.
  ASSERT_TRUE(sink_.Finish(0));
  EXPECT_EQ(sink_.messages(), 1u);
  EXPECT_EQ(results().size(), 3u);
  batcher_->WaitIdle();  // returns: nothing in flight
}

TEST_F(BatcherTest, WaitIdleReturnsOnceEveryMessageFinished) {
  Make(Limits(1));
  SendGetattrs(0, 3);
  absl::Notification idle;
  std::thread waiter([&] {
    batcher_->WaitIdle();
    idle.Notify();
  });
  EXPECT_FALSE(idle.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  ASSERT_TRUE(sink_.Finish(0));  // sends "/1" and "/2" together
  EXPECT_FALSE(idle.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  ASSERT_TRUE(sink_.Finish(1));
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(10)));
  waiter.join();
  EXPECT_EQ(results().size(), 3u);
  EXPECT_EQ(sink_.waits(), 1);  // and then waited on the transport
}

TEST_F(BatcherTest, ConcurrentSendsDeliverEveryOpExactlyOnce) {
  Make(Limits(2, 16));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::atomic<bool> stop{false};
  // Finishes messages as they come, like a backend.
  std::thread backend([&] {
    while (!stop.load()) {
      if (sink_.FinishAll() == 0) std::this_thread::yield();
    }
  });
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([this, t] { SendGetattrs(t * kPerThread, kPerThread); });
  }
  for (std::thread& t : senders) t.join();
  batcher_->WaitIdle();
  stop = true;
  backend.join();

  constexpr int kOps = kThreads * kPerThread;
  std::vector<int> delivered(kOps), completed(kOps);
  for (size_t i = 0; i < sink_.messages(); ++i) {
    for (const std::string& path : sink_.Paths(i)) {
      ++delivered.at(std::stoi(path.substr(1)));
    }
  }
  for (const auto& [path, err] : results()) {
    EXPECT_EQ(err, 0);
    ++completed.at(std::stoi(path.substr(1)));
  }
  for (int i = 0; i < kOps; ++i) {
    ASSERT_EQ(delivered[i], 1) << "op /" << i;
    ASSERT_EQ(completed[i], 1) << "op /" << i;
  }
  // Under contention ops shared messages.
  EXPECT_LT(sink_.messages(), static_cast<size_t>(kOps));
}

// Ops that belong together go out at once, in messages of max_ops, even
// while the window of messages in flight is full.
Batcher::Options Holding(absl::Duration hold) {
  Batcher::Options options;
  options.hold_releases = hold;
  return options;
}

TEST_F(BatcherTest, HeldReleasesRideInTheNextMessage) {
  Make(Holding(absl::Hours(1)));  // the timer never fires here
  Send(ReleaseOp("/r1"));
  Send(ReleaseOp("/r2"));
  EXPECT_EQ(sink_.messages(), 0u);
  EXPECT_EQ(results().size(), 0u);
  Send(GetattrOp("/g"));
  ASSERT_EQ(sink_.messages(), 1u);
  EXPECT_EQ(sink_.Paths(0), (Paths{"/g", "/r2", "/r1"}));
  EXPECT_EQ(sink_.Ids(0), (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_TRUE(sink_.Finish(0));
  EXPECT_EQ(results().size(), 3u);
}

TEST_F(BatcherTest, WithoutHoldingReleasesGoAsAnyOp) {
  Make(Limits(4));
  Send(ReleaseOp("/r"));
  ASSERT_EQ(sink_.messages(), 1u);
  EXPECT_EQ(sink_.Paths(0), Paths{"/r"});
}

TEST_F(BatcherTest, AHeldReleaseGoesAloneWhenNothingElseComes) {
  Make(Holding(absl::Milliseconds(5)));
  Send(ReleaseOp("/r"));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (sink_.messages() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(sink_.messages(), 1u);
  EXPECT_EQ(sink_.Paths(0), Paths{"/r"});
  ASSERT_TRUE(sink_.Finish(0));
  EXPECT_EQ(results().size(), 1u);
}

TEST_F(BatcherTest, WaitIdleSendsHeldReleasesWithoutWaitingForTheTimer) {
  Make(Holding(absl::Hours(1)));
  Send(ReleaseOp("/r"));
  absl::Notification idle;
  std::thread waiter([&] {
    batcher_->WaitIdle();
    idle.Notify();
  });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (sink_.messages() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(sink_.messages(), 1u);
  EXPECT_FALSE(idle.HasBeenNotified());  // not idle before its answer
  ASSERT_TRUE(sink_.Finish(0));
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(10)));
  waiter.join();
  EXPECT_EQ(results().size(), 1u);
}

TEST_F(BatcherTest, CancelAllFailsHeldReleases) {
  Make(Holding(absl::Hours(1)));
  Send(ReleaseOp("/r"));
  batcher_->CancelAll();
  using Result = std::pair<std::string, int>;
  EXPECT_EQ(results(), (std::vector<Result>{{"/r", ECANCELED}}));
  EXPECT_EQ(sink_.messages(), 0u);
}

TEST_F(BatcherTest, SendAllGoesOutAtOnceInFullMessages) {
  Make(Limits(/*max_in_flight=*/1, /*max_ops=*/3));
  SendGetattrs(0, 1);
  ASSERT_EQ(sink_.messages(), 1u);
  std::vector<PendingOp> group;
  for (int i = 10; i < 17; ++i) {
    std::string path = absl::StrCat("/", i);
    group.push_back(PendingOp{GetattrOp(path),
                              [this, path](const v1::OpResult& r) {
                                absl::MutexLock lock(&mu_);
                                results_.emplace_back(path, r.posix_errno());
                              },
                              nullptr});
  }
  batcher_->SendAll(std::move(group));
  ASSERT_EQ(sink_.messages(), 4u);
  EXPECT_EQ(sink_.Paths(1), (Paths{"/10", "/11", "/12"}));
  EXPECT_EQ(sink_.Paths(3), (Paths{"/16"}));
  EXPECT_EQ(sink_.Ids(1), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(sink_.Ids(3), (std::vector<uint64_t>{1}));
  // Their slots are given back: afterwards single ops flow as before.
  EXPECT_EQ(sink_.FinishAll(), 4);
  EXPECT_EQ(results().size(), 8u);
  SendGetattrs(20, 1);
  ASSERT_EQ(sink_.messages(), 5u);
  EXPECT_EQ(sink_.FinishAll(), 1);
  batcher_->WaitIdle();
}

TEST_F(BatcherTest, SendAllTakesTheSizeTheBackendAsksForAndOnlyIt) {
  Batcher::Options options = Limits(/*max_in_flight=*/1, /*max_ops=*/3);
  options.max_ops_together = 5;
  Make(options);
  SendGetattrs(0, 8);  // one goes out, seven queue
  ASSERT_EQ(sink_.messages(), 1u);
  batcher_->SendAll(UnheededGetattrs(10, 7));
  ASSERT_EQ(sink_.messages(), 3u);
  EXPECT_EQ(sink_.Paths(1), (Paths{"/10", "/11", "/12", "/13", "/14"}));
  EXPECT_EQ(sink_.Paths(2), (Paths{"/15", "/16"}));
  // The queued ops keep max_ops.
  while (sink_.FinishAll() > 0) {
  }
  ASSERT_EQ(sink_.messages(), 6u);
  EXPECT_EQ(sink_.Paths(3), (Paths{"/1", "/2", "/3"}));
  EXPECT_EQ(sink_.Paths(4), (Paths{"/4", "/5", "/6"}));
  EXPECT_EQ(sink_.Paths(5), (Paths{"/7"}));
  EXPECT_EQ(results().size(), 8u);
  batcher_->WaitIdle();
}

TEST_F(BatcherTest, SendInOrderIsOneMessageTheBackendRunsInOrder) {
  Make(Limits(/*max_in_flight=*/1, /*max_ops=*/3));
  SendGetattrs(0, 1);  // the window is full: SendInOrder does not wait
  batcher_->SendInOrder(UnheededGetattrs(10, 5));
  ASSERT_EQ(sink_.messages(), 2u);
  EXPECT_FALSE(sink_.InOrder(0));
  EXPECT_TRUE(sink_.InOrder(1));
  EXPECT_EQ(sink_.Paths(1), (Paths{"/10", "/11", "/12", "/13", "/14"}));
  EXPECT_EQ(sink_.Ids(1), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(sink_.FinishAll(), 2);
  batcher_->WaitIdle();
}


}  // namespace
}  // namespace fusehost
