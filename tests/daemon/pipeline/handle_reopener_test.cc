// HandleReopener: ops on a handle of a gone backend instance wait for one
// reopen of their file, then go again; a file that cannot be reopened loses
// its handle; a backend away again leaves the handle to a later try.

#include "daemon/pipeline/handle_reopener.h"

#include <cerrno>
#include <functional>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

class HandleReopenerTest : public ::testing::Test {
 protected:
  HandleReopenerTest()
      : reopener_(
            &handles_,
            [this](v1::Op op,
                   std::function<void(const v1::OpResult&, uint64_t)> done) {
              reopens_.push_back(std::move(op));
              answer_reopen_.push_back(std::move(done));
            },
            [this](std::vector<RoutedOp> ops) {
              for (RoutedOp& r : ops) resent_.push_back(std::move(r));
            },
            "/mnt") {
    handles_.SawInstance(1);
    v1::Op open;
    open.mutable_caller()->set_uid(1000);
    open.mutable_open()->set_path("/f");
    open.mutable_open()->set_flags(02);  // O_RDWR
    v1::OpResult r;
    r.mutable_open()->set_fh(5);
    handles_.IssueTokens(open, 1, &r);
    token_ = r.open().fh();
    handles_.SawInstance(2);  // the backend restarted
  }

  // A read on the token; its result lands in *errno_out.
  RoutedOp Read(int* errno_out) {
    RoutedOp r;
    r.pending.op.mutable_read()->set_path("/f");
    r.pending.op.mutable_read()->set_fh(token_);
    r.pending.done = [errno_out](const v1::OpResult& res) {
      *errno_out = res.posix_errno();
    };
    return r;
  }

  // Resolves a read of the token as the channel would.
  HandleRoute Resolve() {
    v1::Op read;
    read.mutable_read()->set_fh(token_);
    return handles_.Resolve(&read);
  }

  HandleMap handles_;
  HandleReopener reopener_;
  uint64_t token_ = 0;
  std::vector<v1::Op> reopens_;
  std::vector<std::function<void(const v1::OpResult&, uint64_t)>>
      answer_reopen_;
  std::vector<RoutedOp> resent_;
};

TEST_F(HandleReopenerTest, OpsOnOneHandleShareOneReopenThenGoAgain) {
  int e1 = -1, e2 = -1;
  reopener_.Hold(token_, "/f", Read(&e1));
  reopener_.Hold(token_, "/f", Read(&e2));
  ASSERT_EQ(reopens_.size(), 1u);
  EXPECT_EQ(reopens_[0].open().path(), "/f");
  EXPECT_EQ(reopens_[0].caller().uid(), 1000u);
  EXPECT_TRUE(resent_.empty());

  v1::OpResult opened;
  opened.mutable_open()->set_fh(9);
  answer_reopen_[0](opened, 2);
  ASSERT_EQ(resent_.size(), 2u);
  EXPECT_EQ(resent_[0].reroutes, 1);
  EXPECT_EQ(e1, -1) << "not answered: sent again";
  v1::Op read = resent_[0].pending.op;
  ASSERT_EQ(handles_.Resolve(&read).kind, HandleRoute::kSend);
  EXPECT_EQ(read.read().fh(), 9u);
  EXPECT_EQ(read.handle_instance(), 2u);
}

TEST_F(HandleReopenerTest, AFileWithoutANameIsLostWithEstale) {
  int e = -1;
  reopener_.Hold(token_, "", Read(&e));
  EXPECT_TRUE(reopens_.empty());
  EXPECT_EQ(e, ESTALE);
  HandleRoute route = Resolve();
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, ESTALE);
}

TEST_F(HandleReopenerTest, AFileGoneFromItsPathIsLostWithEstale) {
  int e = -1;
  reopener_.Hold(token_, "/f", Read(&e));
  answer_reopen_[0](ErrorResult(1, ENOENT), 2);
  EXPECT_EQ(e, ESTALE);
  EXPECT_EQ(Resolve().posix_errno, ESTALE);
  EXPECT_TRUE(resent_.empty());
}

TEST_F(HandleReopenerTest, AnyOtherRefusalIsLostWithEio) {
  int e = -1;
  reopener_.Hold(token_, "/f", Read(&e));
  answer_reopen_[0](ErrorResult(1, EACCES), 2);
  EXPECT_EQ(e, EIO);
  EXPECT_EQ(Resolve().posix_errno, EIO);
}

TEST_F(HandleReopenerTest, AReplyWithoutAHandleIsLostWithEio) {
  int e = -1;
  reopener_.Hold(token_, "/f", Read(&e));
  v1::OpResult empty;
  empty.mutable_empty();
  answer_reopen_[0](empty, 2);
  EXPECT_EQ(e, EIO);
}

TEST_F(HandleReopenerTest, ABackendAwayAgainLeavesTheHandleToALaterTry) {
  int e = -1;
  reopener_.Hold(token_, "/f", Read(&e));
  answer_reopen_[0](ErrorResult(1, ENOTCONN), 0);
  EXPECT_EQ(e, ENOTCONN);
  EXPECT_EQ(Resolve().kind, HandleRoute::kReopen);
  int again = -1;
  reopener_.Hold(token_, "/f", Read(&again));
  EXPECT_EQ(reopens_.size(), 2u) << "reopened anew";
}

TEST_F(HandleReopenerTest, AnOpHeldTooOftenFailsWithEio) {
  int e = -1;
  RoutedOp op = Read(&e);
  op.reroutes = HandleReopener::kMaxReroutes;
  reopener_.Hold(token_, "/f", std::move(op));
  EXPECT_EQ(e, EIO);
  EXPECT_TRUE(reopens_.empty());
}

}  // namespace
}  // namespace fusehost
