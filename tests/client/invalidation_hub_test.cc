#include "client/invalidation_hub.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

std::string Describe(const std::vector<v1::Invalidation>& notices) {
  std::string out;
  for (const v1::Invalidation& n : notices) {
    out += v1::Invalidation::Kind_Name(n.kind()) + ":" + n.path() + " ";
  }
  return out;
}

TEST(InvalidationHubTest, DropsNoticesWithoutSubscribers) {
  InvalidationHub hub;
  hub.Publish(v1::Invalidation::CHANGED, "/before");
  auto subscription = hub.Subscribe(/*mount_id=*/1);
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
  EXPECT_TRUE(notices.empty()) << Describe(notices);
}

TEST(InvalidationHubTest, DeliversToEverySubscriberInOrder) {
  InvalidationHub hub;
  auto first = hub.Subscribe(/*mount_id=*/1);
  auto second = hub.Subscribe(/*mount_id=*/1);
  hub.Publish(v1::Invalidation::CHANGED, "/a");
  hub.Publish(v1::Invalidation::REMOVED, "/b");
  hub.Publish(v1::Invalidation::SUBTREE, "/c");
  for (auto* subscription : {first.get(), second.get()}) {
    std::vector<v1::Invalidation> notices;
    ASSERT_TRUE(subscription->Take(absl::Seconds(1), &notices));
    EXPECT_EQ(Describe(notices), "CHANGED:/a REMOVED:/b SUBTREE:/c ");
  }
}

TEST(InvalidationHubTest, PublishExceptSkipsTheStreamsOfOneMount) {
  InvalidationHub hub;
  auto one = hub.Subscribe(/*mount_id=*/1);
  auto two = hub.Subscribe(/*mount_id=*/2);
  auto also_two = hub.Subscribe(/*mount_id=*/2);
  hub.PublishExcept(2, v1::Invalidation::CHANGED, "/made-by-2");
  hub.PublishExcept(1, v1::Invalidation::REMOVED, "/made-by-1");
  hub.Publish(v1::Invalidation::SUBTREE, "/outside");
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(one->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "CHANGED:/made-by-2 SUBTREE:/outside ");
  for (auto* subscription : {two.get(), also_two.get()}) {
    ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
    EXPECT_EQ(Describe(notices), "REMOVED:/made-by-1 SUBTREE:/outside ");
  }
}

TEST(InvalidationHubTest, OverflowCollapsesToSubtreeOfRoot) {
  InvalidationHub hub;
  auto subscription = hub.Subscribe(/*mount_id=*/1, /*max_queued=*/3);
  for (int i = 0; i < 3; ++i) {
    hub.Publish(v1::Invalidation::CHANGED, "/" + std::to_string(i));
  }
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "CHANGED:/0 CHANGED:/1 CHANGED:/2 ");

  for (int i = 0; i < 10; ++i) {
    hub.Publish(v1::Invalidation::CHANGED, "/" + std::to_string(i));
  }
  ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "SUBTREE:/ ");

  // Once the collapsed queue was taken, notices queue normally again.
  hub.Publish(v1::Invalidation::REMOVED, "/x");
  ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "REMOVED:/x ");
}

TEST(InvalidationHubTest, OverflowOfOneSubscriberLeavesOthersAlone) {
  InvalidationHub hub;
  auto small = hub.Subscribe(/*mount_id=*/1, /*max_queued=*/1);
  auto large = hub.Subscribe(/*mount_id=*/1);
  hub.Publish(v1::Invalidation::CHANGED, "/a");
  hub.Publish(v1::Invalidation::CHANGED, "/b");
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(small->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "SUBTREE:/ ");
  ASSERT_TRUE(large->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "CHANGED:/a CHANGED:/b ");
}

TEST(InvalidationHubTest, TakeWaitsForNotices) {
  InvalidationHub hub;
  auto subscription = hub.Subscribe(/*mount_id=*/1);
  std::thread publisher([&hub] {
    absl::SleepFor(absl::Milliseconds(20));
    hub.Publish(v1::Invalidation::CHANGED, "/late");
  });
  std::vector<v1::Invalidation> notices;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (notices.empty() && absl::Now() < deadline) {
    ASSERT_TRUE(subscription->Take(absl::Seconds(5), &notices));
  }
  publisher.join();
  EXPECT_EQ(Describe(notices), "CHANGED:/late ");
}

TEST(InvalidationHubTest, TakeTimesOutEmpty) {
  InvalidationHub hub;
  auto subscription = hub.Subscribe(/*mount_id=*/1);
  std::vector<v1::Invalidation> notices(1);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(subscription->Take(absl::Milliseconds(20), &notices));
  EXPECT_TRUE(notices.empty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(15));
}

TEST(InvalidationHubTest, CloseWakesAWaitingTake) {
  InvalidationHub hub;
  auto subscription = hub.Subscribe(/*mount_id=*/1);
  hub.Publish(v1::Invalidation::CHANGED, "/dropped");
  std::thread closer([&subscription] {
    absl::SleepFor(absl::Milliseconds(20));
    subscription->Close();
  });
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(subscription->Take(absl::ZeroDuration(), &notices));
  const absl::Time start = absl::Now();
  EXPECT_FALSE(subscription->Take(absl::Seconds(10), &notices));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  closer.join();
  hub.Publish(v1::Invalidation::CHANGED, "/after");
  EXPECT_FALSE(subscription->Take(absl::ZeroDuration(), &notices));
  EXPECT_TRUE(notices.empty());
}

TEST(InvalidationHubTest, UnsubscribesOnDestruction) {
  InvalidationHub hub;
  auto kept = hub.Subscribe(/*mount_id=*/1);
  hub.Subscribe(/*mount_id=*/1).reset();
  hub.Publish(v1::Invalidation::CHANGED, "/a");  // must not touch the freed one
  std::vector<v1::Invalidation> notices;
  ASSERT_TRUE(kept->Take(absl::ZeroDuration(), &notices));
  EXPECT_EQ(Describe(notices), "CHANGED:/a ");
}

}  // namespace
}  // namespace fusehost
