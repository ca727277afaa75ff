// WriteBehind: Pace: changes answered early wait (Options::linger) for
// others to share their message, unless the message is full or someone
// waits for what is queued.

#include <sys/stat.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/daemon/pipeline/write_behind_fixture.h"

namespace fusehost {
namespace write_behind_testing {
namespace {

// The most ops a message of write-behind carries (kMaxOpsPerMessage).
constexpr int kFull = 64;

std::string FileName(int i) { return "/f" + std::to_string(i); }

TEST_F(WriteBehindTest, ChangesAnsweredEarlyWaitForOthersToShareTheirMessage) {
  linger_ = absl::Milliseconds(200);
  Make();
  for (int i = 0; i < 3; ++i) PutFile(FileName(i), 10 + i);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Send(ChmodOp(FileName(i), 0600))->answered());
  }
  EXPECT_EQ(next_.calls(), 0u);
  EXPECT_EQ(wb_->queued(), 3u);
  while (next_.calls() == 0 && absl::Now() - start < absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Sent once the first had waited its linger, all three together.
  const absl::Duration waited = absl::Now() - start;
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_GE(waited, linger_);
  EXPECT_EQ(next_.ops(0), (Strings{"chmod /f0", "chmod /f1", "chmod /f2"}));
  next_.Complete(0);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AFullMessageOfChangesGoesAtOnce) {
  linger_ = absl::Hours(1);
  Make();
  for (int i = 0; i <= kFull; ++i) PutFile(FileName(i), 10 + i);
  for (int i = 0; i < kFull - 1; ++i) Send(ChmodOp(FileName(i), 0600));
  EXPECT_EQ(next_.calls(), 0u);
  Send(ChmodOp(FileName(kFull - 1), 0600));
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0).size(), static_cast<size_t>(kFull));
  // The next change waits again, behind nothing in flight once answered.
  Send(ChmodOp(FileName(kFull), 0600));
  next_.Complete(0);
  EXPECT_EQ(next_.calls(), 1u);
  EXPECT_EQ(wb_->queued(), 1u);
}

TEST_F(WriteBehindTest, ASettleEndsTheWaitOfTheChangesBeforeIt) {
  linger_ = absl::Hours(1);
  Make();
  PutFile("/a", 1);
  PutFile("/b", 2);
  Send(ChmodOp("/a", 0600));
  Send(ChmodOp("/b", 0600));
  EXPECT_EQ(next_.calls(), 0u);
  int settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), (Strings{"chmod /a", "chmod /b"}));
  EXPECT_EQ(settled, -1);
  next_.Complete(0);
  EXPECT_EQ(settled, 0);
}

TEST_F(WriteBehindTest, ARequestWaitingBehindTheChangesEndsTheirWait) {
  linger_ = absl::Hours(1);
  Make();
  PutFile("/a", 1);
  Send(ChmodOp("/a", 0600));
  EXPECT_EQ(next_.calls(), 0u);
  // Not answered from the cache here (this layer never does): it touches
  // the queued chmod, so it waits behind it, and the chmod goes now.
  Reply* stat = Send(GetattrOp("/a"));
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"chmod /a"});
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"getattr /a"});
  next_.Complete(1);
  EXPECT_TRUE(stat->answered());
}

TEST_F(WriteBehindTest, ALayerWithChangesWaitingIsDestroyedAtOnce) {
  linger_ = absl::Hours(1);
  Make();
  PutFile("/a", 1);
  Send(ChmodOp("/a", 0600));
  const absl::Time start = absl::Now();
  wb_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(next_.calls(), 0u);
}

}  // namespace
}  // namespace write_behind_testing
}  // namespace fusehost
