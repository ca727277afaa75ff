// RunSession (client/session_runner.h) over an in-memory stream.

#include "client/session_runner.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(10);

// Batches pushed by the test are read in order; Close ends the reading.
class FakeStream final : public SessionStream<v1::Batch, v1::BatchResult> {
 public:
  void Push(uint64_t sequence) {
    v1::Batch batch;
    batch.set_sequence(sequence);
    batch.add_ops()->set_id(sequence);
    absl::MutexLock lock(&mu_);
    queued_.push_back(std::move(batch));
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool Read(v1::Batch* batch) override {
    absl::MutexLock lock(&mu_);
    EXPECT_FALSE(reading_) << "two threads read at once";
    reading_ = true;
    mu_.Await(absl::Condition(this, &FakeStream::Readable));
    reading_ = false;
    if (queued_.empty()) return false;
    *batch = std::move(queued_.front());
    queued_.pop_front();
    return true;
  }

  bool Write(const v1::BatchResult& result) override {
    absl::MutexLock lock(&mu_);
    written_.push_back(result.sequence());
    return true;
  }

  std::vector<uint64_t> written() {
    absl::MutexLock lock(&mu_);
    return written_;
  }

  // The sequences answered, in order; waits until there are `n`.
  std::vector<uint64_t> WaitForWritten(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return written_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), kPatience);
    return written_;
  }

 private:
  bool Readable() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return closed_ || !queued_.empty();
  }

  absl::Mutex mu_;
  std::deque<v1::Batch> queued_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> written_ ABSL_GUARDED_BY(mu_);
};

void Echo(const v1::Batch& batch, v1::BatchResult* result) {
  result->add_results()->set_id(batch.ops(0).id());
  result->set_sequence(batch.sequence());
}

using BatchFn = std::function<void(const v1::Batch&, v1::BatchResult*)>;

TEST(SessionRunnerTest, AnswersEveryBatchWithItsSequence) {
  FakeStream stream;
  for (uint64_t s : {5, 6, 7}) stream.Push(s);
  stream.Close();
  RunSession(stream, 4, BatchFn(&Echo));
  std::vector<uint64_t> written = stream.WaitForWritten(3);
  std::sort(written.begin(), written.end());
  EXPECT_EQ(written, (std::vector<uint64_t>{5, 6, 7}));
}

TEST(SessionRunnerTest, ABatchThatBlocksHoldsOnlyItsOwnThread) {
  FakeStream stream;
  absl::Notification release;
  std::thread session([&] {
    RunSession(stream, 4,
               BatchFn([&](const v1::Batch& batch, v1::BatchResult* r) {
                 if (batch.sequence() == 1) release.WaitForNotification();
                 Echo(batch, r);
               }));
  });
  stream.Push(1);
  stream.Push(2);
  stream.Push(3);
  // 2 and 3 are answered while 1 waits.
  std::vector<uint64_t> written = stream.WaitForWritten(2);
  std::sort(written.begin(), written.end());
  EXPECT_EQ(written, (std::vector<uint64_t>{2, 3}));
  release.Notify();
  EXPECT_EQ(stream.WaitForWritten(3).size(), 3u);
  stream.Close();
  session.join();
}

TEST(SessionRunnerTest, RunsNoMoreBatchesAtOnceThanItsThreads) {
  FakeStream stream;
  std::atomic<int> running{0}, most{0};
  absl::Notification go;
  std::thread session([&] {
    RunSession(stream, 2,
               BatchFn([&](const v1::Batch& batch, v1::BatchResult* r) {
                 int now = ++running;
                 int seen = most.load();
                 while (now > seen && !most.compare_exchange_weak(seen, now)) {
                 }
                 go.WaitForNotificationWithTimeout(absl::Milliseconds(200));
                 --running;
                 Echo(batch, r);
               }));
  });
  for (uint64_t s = 1; s <= 6; ++s) stream.Push(s);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(most.load(), 2);
  go.Notify();
  EXPECT_EQ(stream.WaitForWritten(6).size(), 6u);
  stream.Close();
  session.join();
  EXPECT_EQ(most.load(), 2);
}

TEST(SessionRunnerTest, ReturnsOnlyOnceTheBatchesRunningAreAnswered) {
  FakeStream stream;
  stream.Push(1);
  absl::Notification started;
  std::thread closer([&] {
    started.WaitForNotification();
    stream.Close();  // ends the reading while batch 1 runs
  });
  RunSession(stream, 4,
             BatchFn([&](const v1::Batch& batch, v1::BatchResult* r) {
               started.Notify();
               absl::SleepFor(absl::Milliseconds(50));
               Echo(batch, r);
             }));
  closer.join();
  EXPECT_EQ(stream.written(), (std::vector<uint64_t>{1}));
}

}  // namespace
}  // namespace fusehost
