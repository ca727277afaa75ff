// KernelRequest: one reply per request, counted once; a second reply or
// none at all is a broken invariant.

#include "daemon/fuse/kernel_request.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

TEST(KernelRequest, AReplyIsRecordedWithItsErrno) {
  MountStats stats;
  {
    FakeRequest req(KernelOp::kUnlink, &stats);
    req.ReplyError(EACCES);
    EXPECT_TRUE(req.replied());
  }
  {
    FakeRequest req(KernelOp::kUnlink, &stats);
    req.ReplyError(0);
  }
  MountStats::Snapshot s = stats.Snap();
  ASSERT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops[0].count, 2u);
  EXPECT_EQ(s.ops[0].errors, 1u);
}

TEST(KernelRequest, ANegativeEntryCountsAsEnoent) {
  MountStats stats;
  FakeRequest req(KernelOp::kLookup, &stats);
  EXPECT_TRUE(req.ReplyEntry(KernelEntry()));
  EXPECT_EQ(stats.Snap().ops[0].errors, 1u);
}

TEST(KernelRequestDeathTest, ASecondReplyAborts) {
  EXPECT_DEATH(
      {
        FakeRequest req(KernelOp::kRead);
        req.ReplyData("x");
        req.ReplyError(EIO);
      },
      "second reply to a read request");
}

TEST(KernelRequestDeathTest, NoReplyAtAllAborts) {
  EXPECT_DEATH({ FakeRequest req(KernelOp::kOpen); },
               "open request was dropped without a reply");
}

}  // namespace
}  // namespace fusehost
