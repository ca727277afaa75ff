// BackendChannel against a real in-process gRPC server on a Unix socket.

#include "daemon/pipeline/backend_channel.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"
#include "tests/daemon/pipeline/in_process_backend.h"

namespace fusehost {
namespace {

using ::testing::HasSubstr;

// How long a test waits for something that should happen at once.
constexpr absl::Duration kPatience = absl::Seconds(10);

// A FileSystem backend whose Execute behaviour each test chooses. By default
// it answers every op of a batch with success and an empty result.
class FakeBackend final : public v1::FileSystem::Service {
 public:
  using ExecuteFn = std::function<grpc::Status(
      grpc::ServerContext*, const v1::Batch&, v1::BatchResult*)>;

  // Answers every op with posix_errno 0.
  static grpc::Status Echo(grpc::ServerContext*, const v1::Batch& batch,
                           v1::BatchResult* reply) {
    for (const v1::Op& op : batch.ops()) {
      v1::OpResult* r = reply->add_results();
      r->set_id(op.id());
      r->mutable_empty();
    }
    return grpc::Status::OK;
  }

  // Never answers: waits until the client goes away.
  static grpc::Status Hang(grpc::ServerContext* context, const v1::Batch&,
                           v1::BatchResult*) {
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }

  // Must be set before the server starts.
  void set_execute(ExecuteFn fn) { execute_ = std::move(fn); }
  void set_init_reply(v1::InitReply reply) { init_reply_ = std::move(reply); }

  grpc::Status Init(grpc::ServerContext*, const v1::InitRequest* request,
                    v1::InitReply* reply) override {
    absl::MutexLock lock(&mu_);
    init_requests_.push_back(*request);
    *reply = init_reply_;
    return grpc::Status::OK;
  }

  grpc::Status Execute(grpc::ServerContext* context, const v1::Batch* batch,
                       v1::BatchResult* reply) override {
    {
      absl::MutexLock lock(&mu_);
      batches_.push_back(*batch);
    }
    return execute_(context, *batch, reply);
  }

  // Waits until `n` batches arrived; false on timeout.
  bool WaitForBatches(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return batches_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), kPatience);
  }

  std::vector<v1::Batch> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

  std::vector<v1::InitRequest> init_requests() {
    absl::MutexLock lock(&mu_);
    return init_requests_;
  }

 private:
  ExecuteFn execute_ = &FakeBackend::Echo;
  v1::InitReply init_reply_;
  absl::Mutex mu_;
  std::vector<v1::Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::InitRequest> init_requests_ ABSL_GUARDED_BY(mu_);
};

v1::Op GetattrOp(uint64_t id, const std::string& path) {
  v1::Op op;
  op.set_id(id);
  op.mutable_getattr()->set_path(path);
  return op;
}

class BackendChannelTest : public InProcessBackendTest {
 protected:
  static constexpr uint64_t kMountId = 17;

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
      server_->Wait();
    }
    RemoveSocketDir();
  }

  // Serves `service` on the socket; nullptr serves no service at all. (gRPC
  // will not start a server without any, so then a generic service that
  // implements no method stands in: every call gets UNIMPLEMENTED.)
  void StartServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target_, grpc::InsecureServerCredentials());
    if (service != nullptr) {
      builder.RegisterService(service);
    } else {
      builder.RegisterCallbackGenericService(&no_service_);
    }
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr) << "cannot serve on " << target_;
  }

  std::unique_ptr<BackendChannel> Connect(
      absl::Duration call_timeout = absl::Seconds(30)) {
    BackendChannel::Options options;
    options.target = target_;
    options.mount_id = kMountId;
    options.call_timeout = call_timeout;
    return std::make_unique<BackendChannel>(options);
  }

  // Sends one op and waits for its completion.
  v1::OpResult SendAndWait(BackendChannel& channel, v1::Op op) {
    Completion c;
    channel.Send(std::move(op), c.Callback());
    EXPECT_TRUE(c.done.WaitForNotificationWithTimeout(kPatience));
    channel.WaitIdle();
    EXPECT_EQ(c.calls, 1);
    return c.result;
  }

  // Serves `execute` as the backend's Execute, sends `op` through a fresh
  // channel and returns its result.
  v1::OpResult ExecuteOne(FakeBackend::ExecuteFn execute, v1::Op op,
                          absl::Duration call_timeout = absl::Seconds(30)) {
    backend_.set_execute(std::move(execute));
    StartServer(&backend_);
    std::unique_ptr<BackendChannel> channel = Connect(call_timeout);
    return SendAndWait(*channel, std::move(op));
  }

  FakeBackend backend_;
  grpc::CallbackGenericService no_service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(BackendChannelTest, ResultIsMatchedByOpId) {
  v1::OpResult result = ExecuteOne(
      [](grpc::ServerContext*, const v1::Batch& batch, v1::BatchResult* reply) {
        uint64_t id = batch.ops(0).id();
        v1::OpResult* other = reply->add_results();
        other->set_id(id + 1);
        other->set_posix_errno(ENOENT);
        v1::OpResult* mine = reply->add_results();
        mine->set_id(id);
        mine->mutable_getattr()->mutable_attr()->set_size(42);
        return grpc::Status::OK;
      },
      GetattrOp(7, "/file"));
  EXPECT_EQ(result.id(), 7u);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_EQ(result.getattr().attr().size(), 42u);

  std::vector<v1::Batch> batches = backend_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].mount_id(), kMountId);
  ASSERT_EQ(batches[0].ops_size(), 1);
  EXPECT_EQ(batches[0].ops(0).id(), 7u);
  EXPECT_EQ(batches[0].ops(0).getattr().path(), "/file");
}

TEST_F(BackendChannelTest, ConcurrentSendsEachGetTheirOwnResult) {
  StartServer(&backend_);
  std::unique_ptr<BackendChannel> channel = Connect();
  constexpr int kOps = 20;
  std::vector<Completion> completions(kOps);
  for (int i = 0; i < kOps; ++i) {
    channel->Send(GetattrOp(100 + i, "/f"), completions[i].Callback());
  }
  channel->WaitIdle();
  for (int i = 0; i < kOps; ++i) {
    ASSERT_TRUE(completions[i].done.HasBeenNotified()) << i;
    EXPECT_EQ(completions[i].calls, 1);
    EXPECT_EQ(completions[i].result.id(), 100u + i);
    EXPECT_EQ(completions[i].result.posix_errno(), 0);
  }
}

TEST_F(BackendChannelTest, OkReplyWithoutTheOpsResultIsEio) {
  v1::OpResult result = ExecuteOne(
      [](grpc::ServerContext*, const v1::Batch& batch, v1::BatchResult* reply) {
        reply->add_results()->set_id(batch.ops(0).id() + 1);
        return grpc::Status::OK;
      },
      GetattrOp(3, "/x"));
  EXPECT_EQ(result.id(), 3u);
  EXPECT_EQ(result.posix_errno(), EIO);
  EXPECT_EQ(result.result_case(), v1::OpResult::RESULT_NOT_SET);
}

TEST_F(BackendChannelTest, BackendErrorStatusIsEio) {
  v1::OpResult result = ExecuteOne(
      [](grpc::ServerContext*, const v1::Batch&, v1::BatchResult* reply) {
        reply->add_results()->set_id(1);  // ignored: the status failed
        return grpc::Status(grpc::StatusCode::INTERNAL, "backend crashed");
      },
      GetattrOp(1, "/x"));
  EXPECT_EQ(result.id(), 1u);
  EXPECT_EQ(result.posix_errno(), EIO);
}

TEST_F(BackendChannelTest, SlowBackendTimesOut) {
  absl::Time start = absl::Now();
  v1::OpResult result = ExecuteOne(&FakeBackend::Hang, GetattrOp(5, "/slow"),
                                   absl::Milliseconds(200));
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.id(), 5u);
  EXPECT_EQ(result.posix_errno(), ETIMEDOUT);
  EXPECT_GE(took, absl::Milliseconds(150));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST_F(BackendChannelTest, NoServerIsEnotconnQuickly) {
  std::unique_ptr<BackendChannel> channel = Connect(absl::Seconds(30));

  absl::Time start = absl::Now();
  v1::OpResult result = SendAndWait(*channel, GetattrOp(9, "/x"));
  EXPECT_EQ(result.id(), 9u);
  EXPECT_EQ(result.posix_errno(), ENOTCONN);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(BackendChannelTest, InitReturnsTheReply) {
  v1::InitReply reply;
  reply.set_protocol_version(1);
  reply.set_posix_locks(true);
  reply.set_name("fake backend");
  backend_.set_init_reply(reply);
  StartServer(&backend_);
  std::unique_ptr<BackendChannel> channel = Connect();

  v1::InitRequest request;
  request.set_mount_id(kMountId);
  request.set_mountpoint("/mnt/x");
  request.add_options("cache=none");
  request.set_protocol_version(1);
  absl::StatusOr<v1::InitReply> got = channel->Init(request);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->protocol_version(), 1u);
  EXPECT_TRUE(got->posix_locks());
  EXPECT_FALSE(got->flock_locks());
  EXPECT_EQ(got->name(), "fake backend");

  std::vector<v1::InitRequest> requests = backend_.init_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].mount_id(), kMountId);
  EXPECT_EQ(requests[0].mountpoint(), "/mnt/x");
  ASSERT_EQ(requests[0].options_size(), 1);
  EXPECT_EQ(requests[0].options(0), "cache=none");
}

// A file the daemon created early (write_behind) goes to a backend that
// takes handles from earlier ops with its writes and release in one
// in-order message: they carry fh 0 and the create's id. To a backend that
// does not, the same ops would wait for a reopen.
TEST_F(BackendChannelTest, OpsOnAFileCreatedInTheMessageNameTheCreate) {
  v1::InitReply init;
  init.set_runs_batches_in_order(true);
  init.set_takes_handles_from_earlier_ops(true);
  backend_.set_init_reply(init);
  backend_.set_execute(
      [](grpc::ServerContext*, const v1::Batch& batch, v1::BatchResult* reply) {
        for (const v1::Op& op : batch.ops()) {
          v1::OpResult* r = reply->add_results();
          r->set_id(op.id());
          if (op.has_create()) {
            r->mutable_create()->mutable_open()->set_fh(55);
          } else {
            r->mutable_empty();
          }
        }
        return grpc::Status::OK;
      });
  StartServer(&backend_);
  std::unique_ptr<BackendChannel> channel = Connect();
  v1::InitRequest request;
  request.set_mount_id(kMountId);
  ASSERT_TRUE(channel->Init(request).ok());
  ASSERT_TRUE(channel->TakesHandlesFromEarlierOps());

  const uint64_t token =
      channel->handles()->IssueUnopened(O_WRONLY, v1::Caller());
  std::vector<PendingOp> ops(4);
  ops[0].op.mutable_getattr()->set_path("/other");
  ops[1].op.mutable_create()->set_path("/f");
  ops[1].creates_token = token;
  ops[2].op.mutable_write()->set_fh(token);
  ops[2].op.mutable_write()->set_data("x");
  ops[3].op.mutable_release()->set_fh(token);
  Completion done[4];
  for (int i = 0; i < 4; ++i) {
    ops[i].op.set_id(i + 1);
    ops[i].done = done[i].Callback();
  }
  absl::Notification sent;
  channel->SendBatch(
      std::move(ops), [&sent] { sent.Notify(); },
      /*in_order=*/true);
  ASSERT_TRUE(sent.WaitForNotificationWithTimeout(kPatience));
  for (Completion& c : done) EXPECT_EQ(c.result.posix_errno(), 0);

  std::vector<v1::Batch> batches = backend_.batches();
  ASSERT_EQ(batches.size(), 1u);
  const v1::Batch& b = batches[0];
  EXPECT_TRUE(b.in_order());
  ASSERT_EQ(b.ops_size(), 4);
  EXPECT_EQ(b.ops(0).fh_from_op(), 0u);
  EXPECT_EQ(b.ops(1).fh_from_op(), 0u);
  for (int i : {2, 3}) {
    EXPECT_EQ(b.ops(i).fh_from_op(), b.ops(1).id()) << i;
    EXPECT_EQ(HandlesOf(b.ops(i)).fh[0], 0u) << i;
  }
  // The release retired the token; the create's handle became a token
  // the kernel never saw (write-behind's Adopt retires it).
  channel->handles()->Adopt(token, done[1].result.create().open().fh());
  EXPECT_EQ(channel->handles()->size(), 0u);
}

TEST_F(BackendChannelTest, InitOnUnreachableTargetIsUnavailable) {
  std::unique_ptr<BackendChannel> channel = Connect();
  absl::Time start = absl::Now();
  absl::StatusOr<v1::InitReply> got = channel->Init(v1::InitRequest());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable)
      << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("unreachable"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(target_));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(BackendChannelTest, InitOnServerWithoutTheServiceFails) {
  StartServer(nullptr);
  std::unique_ptr<BackendChannel> channel = Connect();
  absl::StatusOr<v1::InitReply> got = channel->Init(v1::InitRequest());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition)
      << got.status();
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("does not serve the fuse-hostd FileSystem service"));
}

TEST_F(BackendChannelTest, CancelAllCompletesHangingCallsWithEcanceled) {
  backend_.set_execute(&FakeBackend::Hang);
  StartServer(&backend_);
  std::unique_ptr<BackendChannel> channel = Connect(absl::Seconds(30));

  Completion first, second;
  channel->Send(GetattrOp(1, "/a"), first.Callback());
  channel->Send(GetattrOp(2, "/b"), second.Callback());
  ASSERT_TRUE(backend_.WaitForBatches(2));
  EXPECT_FALSE(first.done.HasBeenNotified());

  absl::Time start = absl::Now();
  channel->CancelAll();
  channel->WaitIdle();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_TRUE(first.done.HasBeenNotified());
  ASSERT_TRUE(second.done.HasBeenNotified());
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(first.result.id(), 1u);
  EXPECT_EQ(first.result.posix_errno(), ECANCELED);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(second.result.id(), 2u);
  EXPECT_EQ(second.result.posix_errno(), ECANCELED);
}

TEST_F(BackendChannelTest, WaitIdleWithNothingInFlightReturns) {
  std::unique_ptr<BackendChannel> channel = Connect();
  channel->CancelAll();
  channel->WaitIdle();
}

TEST_F(BackendChannelTest, DestructorCancelsCallsInFlight) {
  backend_.set_execute(&FakeBackend::Hang);
  StartServer(&backend_);
  std::unique_ptr<BackendChannel> channel = Connect(absl::Seconds(30));

  Completion c;
  channel->Send(GetattrOp(4, "/a"), c.Callback());
  ASSERT_TRUE(backend_.WaitForBatches(1));
  channel.reset();
  ASSERT_TRUE(c.done.HasBeenNotified());
  EXPECT_EQ(c.result.posix_errno(), ECANCELED);
}

// Without CallbackQueueKeeper: what the daemon does at unmount.
class BackendChannelLifetimeTest : public BackendChannelTest {
 protected:
  static void SetUpTestSuite() {}
  static void TearDownTestSuite() {}
};

// Shared by a test and the probe it puts into a completion callback.
struct ChannelGone {
  enum Probe { kAlive, kDestroyedBefore, kDestroyedAfter };
  absl::Notification gone;  // the test destroyed the BackendChannel
  std::atomic<Probe> probe{kAlive};
};

// Part of a completion callback; BackendChannel destroys it with the call.
// The destructor records whether that happened before or after the
// BackendChannel was gone, and waits (bounded) for "after", so that a race
// otherwise decided by microseconds goes the same way every time.
class OutlivesChannelProbe {
 public:
  explicit OutlivesChannelProbe(ChannelGone* state) : state_(state) {}
  ~OutlivesChannelProbe() {
    state_->probe = state_->gone.WaitForNotificationWithTimeout(absl::Seconds(1))
                        ? ChannelGone::kDestroyedAfter
                        : ChannelGone::kDestroyedBefore;
  }

 private:
  ChannelGone* state_;
};

// Destroying a BackendChannel right after its last call completed (what
// unmounting the last mount does) must leave nothing of it on gRPC's threads:
// a call's ClientContext holds a reference to the grpc::Channel, and when the
// last one drops on a callback thread, gRPC shuts its callback queue down from
// that very thread and the process aborts. Runs in a fresh child process, so
// that no other channel holds gRPC's callback queue.
TEST_F(BackendChannelLifetimeTest, DestroyRightAfterLastCallCompletes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        // Freed memory is overwritten at once, so that a use after free shows.
        mallopt(M_PERTURB, 0xA5);
        // The backend answers only once Send returned, so that Send's own
        // reference to the call is gone by then.
        absl::Notification sent;
        backend_.set_execute([&sent](grpc::ServerContext* context,
                                     const v1::Batch& batch,
                                     v1::BatchResult* reply) {
          sent.WaitForNotification();
          return FakeBackend::Echo(context, batch, reply);
        });
        StartServer(&backend_);
        std::unique_ptr<BackendChannel> channel = Connect();
        ChannelGone state;
        Completion c;
        channel->Send(GetattrOp(1, "/x"),
                      [probe = std::make_shared<OutlivesChannelProbe>(&state),
                       done = c.Callback()](const v1::OpResult& r) { done(r); });
        sent.Notify();
        c.done.WaitForNotification();
        RemoveSocketDir();  // an abort below would leave it behind
        channel->WaitIdle();
        channel.reset();
        state.gone.Notify();
        absl::SleepFor(absl::Milliseconds(500));  // let gRPC's threads run on
        TearDown();  // the child exits before gtest would call it
        if (state.probe != ChannelGone::kDestroyedBefore) {
          std::fprintf(stderr,
                       "a completion callback, and the ClientContext holding "
                       "the grpc::Channel, outlived the BackendChannel (%s)\n",
                       state.probe == ChannelGone::kAlive
                           ? "and is still alive"
                           : "destroyed on a gRPC thread afterwards");
          std::exit(2);
        }
        std::exit(c.result.posix_errno() == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(ErrnoForStatusTest, MapsEveryCode) {
  struct Case {
    grpc::StatusCode code;
    int expected;
  };
  const Case cases[] = {
      {grpc::StatusCode::OK, 0},
      {grpc::StatusCode::CANCELLED, ECANCELED},
      {grpc::StatusCode::UNKNOWN, EIO},
      {grpc::StatusCode::INVALID_ARGUMENT, EIO},
      {grpc::StatusCode::DEADLINE_EXCEEDED, ETIMEDOUT},
      {grpc::StatusCode::NOT_FOUND, EIO},
      {grpc::StatusCode::ALREADY_EXISTS, EIO},
      {grpc::StatusCode::PERMISSION_DENIED, EIO},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, EIO},
      {grpc::StatusCode::FAILED_PRECONDITION, EIO},
      {grpc::StatusCode::ABORTED, EIO},
      {grpc::StatusCode::OUT_OF_RANGE, EIO},
      {grpc::StatusCode::INTERNAL, EIO},
      {grpc::StatusCode::UNAVAILABLE, ENOTCONN},
      {grpc::StatusCode::DATA_LOSS, EIO},
      {grpc::StatusCode::UNAUTHENTICATED, EIO},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrnoForStatus(grpc::Status(c.code, "msg")), c.expected)
        << "code " << c.code;
  }
}

// The contract (backend_channel.h, filesystem.proto): a deadline becomes
// ETIMEDOUT, an unreachable backend ENOTCONN, anything else EIO. ENOSYS would
// be wrong here: the kernel remembers ENOSYS for flush, fsync, xattr, lock,
// fallocate, ... and never sends them again on that mount, so one transport
// error must not be reported as "not implemented".
TEST(ErrnoForStatusTest, UnimplementedIsEio) {
  EXPECT_EQ(ErrnoForStatus(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "")),
            EIO);
}

}  // namespace
}  // namespace fusehost
