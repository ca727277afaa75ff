// MemoryBudget: nested limits, nothing taken on refusal.

#include "common/memory_budget.h"

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(MemoryBudget, ChargesUpToItsLimit) {
  MemoryBudget b(100);
  EXPECT_TRUE(b.TryCharge(60));
  EXPECT_FALSE(b.TryCharge(41));
  EXPECT_EQ(b.used(), 60u);
  EXPECT_TRUE(b.TryCharge(40));
  b.Release(100);
  EXPECT_EQ(b.used(), 0u);
}

TEST(MemoryBudget, AChildDrawsOnItsParent) {
  MemoryBudget daemon(100);
  MemoryBudget a(80, &daemon);
  MemoryBudget b(80, &daemon);
  EXPECT_TRUE(a.TryCharge(70));
  EXPECT_FALSE(b.TryCharge(40)) << "the daemon's limit holds for all mounts";
  EXPECT_EQ(b.used(), 0u) << "a refused charge takes nothing";
  EXPECT_TRUE(b.TryCharge(30));
  EXPECT_EQ(daemon.used(), 100u);
  {
    MemoryBudget gone(50, &daemon);
  }
  a.Release(70);
  EXPECT_EQ(daemon.used(), 30u);
}

TEST(MemoryBudget, ADestroyedChildGivesBackWhatItHeld) {
  MemoryBudget daemon(100);
  {
    MemoryBudget mount(100, &daemon);
    ASSERT_TRUE(mount.TryCharge(40));
  }
  EXPECT_EQ(daemon.used(), 0u);
}

}  // namespace
}  // namespace fusehost
