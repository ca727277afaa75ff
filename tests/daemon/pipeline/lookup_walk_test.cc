// LookupWalk alone, over a made-up listing of names "n00".."n99" (the
// distance is the difference of their numbers, or 0 going backwards).

#include "daemon/pipeline/lookup_walk.h"

#include <string>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

size_t Distance(absl::string_view /*dir*/, absl::string_view from,
                absl::string_view to) {
  const int a = std::stoi(std::string(from.substr(1)));
  const int b = std::stoi(std::string(to.substr(1)));
  return b > a ? static_cast<size_t>(b - a) : 0;
}

LookupWalk::Ahead Miss(LookupWalk& walk, const std::string& path) {
  return walk.Miss(path, Distance);
}

// The second miss of a walk from `first` to `second`: what it fetches.
size_t SecondMissStep(const std::string& first, const std::string& second) {
  LookupWalk walk;
  EXPECT_FALSE(Miss(walk, first).fetch);
  LookupWalk::Ahead next = Miss(walk, second);
  EXPECT_TRUE(next.fetch);
  return next.step;
}

TEST(LookupWalkTest, ALoneMissFetchesNothing) {
  LookupWalk walk;
  EXPECT_FALSE(Miss(walk, "/d/n00").fetch);
  // Another directory: alone again.
  EXPECT_FALSE(Miss(walk, "/e/n05").fetch);
  EXPECT_FALSE(Miss(walk, "/d/n01").fetch);
}

TEST(LookupWalkTest, TheStrideIsCountedFromTheLastNameAsked) {
  EXPECT_EQ(SecondMissStep("/d/n00", "/d/n01"), 1u);
  LookupWalk walk;
  Miss(walk, "/d/n00");
  Miss(walk, "/d/n01");
  // Names answered from the cache move the caller on.
  for (int i = 2; i < 10; ++i) walk.Hit("/d/n0" + std::to_string(i));
  EXPECT_EQ(Miss(walk, "/d/n10").step, 1u);
  // A hit elsewhere does not.
  walk.Hit("/e/n50");
  EXPECT_EQ(Miss(walk, "/d/n15").step, 5u);
}

TEST(LookupWalkTest, AStrideHoldsUntilItChanges) {
  LookupWalk walk;
  Miss(walk, "/d/n00");
  EXPECT_EQ(Miss(walk, "/d/n19").step, 19u);
  walk.Hit("/d/n38");
  EXPECT_EQ(Miss(walk, "/d/n57").step, 19u);
  // The same name again says nothing new.
  EXPECT_EQ(Miss(walk, "/d/n57").step, 19u);
  // Another stride: every name from then on in this directory.
  EXPECT_EQ(Miss(walk, "/d/n60").step, 1u);
  EXPECT_EQ(Miss(walk, "/d/n80").step, 1u);
  // Backwards counts as one.
  LookupWalk other;
  Miss(other, "/d/n50");
  EXPECT_EQ(Miss(other, "/d/n10").step, 1u);
  // A new directory starts afresh.
  Miss(walk, "/e/n00");
  EXPECT_EQ(Miss(walk, "/e/n03").step, 3u);
}

TEST(LookupWalkTest, TheRootsChildrenAreInTheRoot) {
  EXPECT_EQ(SecondMissStep("/n00", "/n02"), 2u);
}

}  // namespace
}  // namespace fusehost
