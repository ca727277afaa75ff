#include "daemon/survival/restart_backoff.h"

#include <vector>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(RestartBackoffTest, DoublesWhileTheDaemonKeepsCrashingEarly) {
  RestartBackoff backoff;
  std::vector<absl::Duration> waits;
  for (int i = 0; i < 8; ++i) {
    waits.push_back(backoff.AfterCrash(absl::Milliseconds(50)));
  }
  EXPECT_EQ(waits, (std::vector<absl::Duration>{
                       absl::Milliseconds(100), absl::Milliseconds(200),
                       absl::Milliseconds(400), absl::Milliseconds(800),
                       absl::Milliseconds(1600), absl::Milliseconds(3200),
                       absl::Seconds(5), absl::Seconds(5)}));
}

TEST(RestartBackoffTest, StartsOverAfterADaemonThatRanLongEnough) {
  RestartBackoff backoff;
  for (int i = 0; i < 5; ++i) backoff.AfterCrash(absl::Seconds(1));
  EXPECT_EQ(backoff.AfterCrash(RestartBackoff::kSteady),
            absl::Milliseconds(100));
  EXPECT_EQ(backoff.AfterCrash(absl::Seconds(9)), absl::Milliseconds(200));
  EXPECT_EQ(backoff.AfterCrash(absl::Hours(1)), absl::Milliseconds(100));
}

TEST(RestartBackoffTest, ADaemonThatServedComesBackAtOnce) {
  // Killed again and again, each time after it had taken its mounts back
  // and said so: its mounts' programs wait, so no crash makes it slower.
  RestartBackoff backoff;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(backoff.AfterCrash(absl::Seconds(2), /*served=*/true),
              absl::Milliseconds(100));
  }
  // One that dies before serving backs off again.
  EXPECT_EQ(backoff.AfterCrash(absl::Milliseconds(5)), absl::Milliseconds(200));
}

}  // namespace
}  // namespace fusehost
