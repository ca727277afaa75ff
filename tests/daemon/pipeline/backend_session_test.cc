// BackendChannel's Session stream (backend_session.h) against a real
// in-process gRPC server on a Unix socket whose Init says it serves Session.

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/pipeline/backend_channel.h"
#include "daemon/stats/mount_stats.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"
#include "tests/daemon/pipeline/in_process_backend.h"

namespace fusehost {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(10);

using Stream = grpc::ServerReaderWriter<v1::BatchResult, v1::Batch>;

// Answers every op of `batch` with success, its size set to `size`.
v1::BatchResult Answer(const v1::Batch& batch, uint64_t size = 0) {
  v1::BatchResult result;
  result.set_sequence(batch.sequence());
  for (const v1::Op& op : batch.ops()) {
    v1::OpResult* r = result.add_results();
    r->set_id(op.id());
    r->mutable_getattr()->mutable_attr()->set_size(size);
  }
  return result;
}

// Says it serves Session; each test chooses what its stream does. Execute
// answers every op with size 1, so a test sees which way an op went.
class SessionBackend final : public v1::FileSystem::Service {
 public:
  using SessionFn = std::function<grpc::Status(grpc::ServerContext*, Stream*)>;

  // Answers each batch as it comes, with size 2.
  static grpc::Status AnswerAll(grpc::ServerContext*, Stream* stream) {
    v1::Batch batch;
    while (stream->Read(&batch)) stream->Write(Answer(batch, 2));
    return grpc::Status::OK;
  }

  void set_session(SessionFn fn) {
    absl::MutexLock lock(&mu_);
    session_ = std::move(fn);
  }
  void set_serves_session(bool serves) { serves_session_ = serves; }
  void set_implements_session(bool implements) { implements_ = implements; }

  grpc::Status Init(grpc::ServerContext*, const v1::InitRequest*,
                    v1::InitReply* reply) override {
    reply->set_serves_session(serves_session_);
    return grpc::Status::OK;
  }

  grpc::Status Execute(grpc::ServerContext*, const v1::Batch* batch,
                       v1::BatchResult* reply) override {
    {
      absl::MutexLock lock(&mu_);
      ++executes_;
    }
    *reply = Answer(*batch, 1);
    return grpc::Status::OK;
  }

  grpc::Status Session(grpc::ServerContext* context, Stream* stream) override {
    if (!implements_) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no Session");
    }
    SessionFn session;
    {
      absl::MutexLock lock(&mu_);
      ++sessions_;
      session = session_;
    }
    return session(context, stream);
  }

  int executes() {
    absl::MutexLock lock(&mu_);
    return executes_;
  }
  int sessions() {
    absl::MutexLock lock(&mu_);
    return sessions_;
  }

 private:
  bool serves_session_ = true;
  bool implements_ = true;
  absl::Mutex mu_;
  SessionFn session_ ABSL_GUARDED_BY(mu_) = &SessionBackend::AnswerAll;
  int executes_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::Op GetattrOp(uint64_t id) {
  v1::Op op;
  op.set_id(id);
  op.mutable_getattr()->set_path("/f");
  return op;
}

v1::Op MkdirOp(uint64_t id) {
  v1::Op op;
  op.set_id(id);
  op.mutable_mkdir()->set_path("/d");
  return op;
}

class BackendSessionTest : public InProcessBackendTest {
 protected:
  void TearDown() override {
    channel_.reset();
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
      server_->Wait();
    }
    RemoveSocketDir();
  }

  // Serves the backend and makes the channel, greeted with Init.
  void Start(absl::Duration call_timeout = absl::Seconds(30)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target_, grpc::InsecureServerCredentials());
    builder.RegisterService(&backend_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    BackendChannel::Options options;
    options.target = target_;
    options.mount_id = 1;
    options.call_timeout = call_timeout;
    options.stats = &stats_;
    options.session = session_;
    channel_ = std::make_unique<BackendChannel>(options);
    ASSERT_TRUE(channel_->Init(v1::InitRequest()).ok());
  }

  v1::OpResult SendAndWait(v1::Op op) {
    Completion c;
    channel_->Send(std::move(op), c.Callback());
    EXPECT_TRUE(c.done.WaitForNotificationWithTimeout(kPatience));
    return c.result;
  }

  SessionBackend backend_;
  bool session_ = true;  // the mount option
  MountStats stats_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<BackendChannel> channel_;
};

TEST_F(BackendSessionTest, MessagesGoOnOneStream) {
  Start();
  for (uint64_t i = 1; i <= 3; ++i) {
    v1::OpResult r = SendAndWait(GetattrOp(i));
    EXPECT_EQ(r.posix_errno(), 0);
    EXPECT_EQ(r.getattr().attr().size(), 2u);  // the stream's answer
  }
  channel_->WaitIdle();
  EXPECT_EQ(backend_.sessions(), 1);
  EXPECT_EQ(backend_.executes(), 0);
  MountStats::Snapshot s = stats_.Snap();
  EXPECT_EQ(s.backend_messages, 3u);
  EXPECT_EQ(s.backend_session_messages, 3u);
}

TEST_F(BackendSessionTest, ManyMessagesAtOnceEachGetTheirOwnResult) {
  // Answers each batch from a thread of its own after a short, varying
  // wait: results come back out of order, often while their sender is
  // still in Send.
  backend_.set_session([](grpc::ServerContext*, Stream* stream) {
    absl::Mutex write_mu;
    std::vector<std::thread> answering;
    v1::Batch batch;
    for (int n = 0; stream->Read(&batch); ++n) {
      answering.emplace_back([&write_mu, stream, batch, n] {
        absl::SleepFor(absl::Microseconds(n % 7 * 30));
        absl::MutexLock lock(&write_mu);
        stream->Write(Answer(batch, batch.ops(0).id()));
      });
    }
    for (std::thread& t : answering) t.join();
    return grpc::Status::OK;
  });
  Start();
  // The stream is open before the senders start (while it opens, messages
  // go as Execute calls).
  ASSERT_EQ(SendAndWait(GetattrOp(1)).posix_errno(), 0);
  constexpr int kThreads = 8;
  constexpr int kEach = 300;
  std::vector<std::thread> senders;
  std::atomic<int> right{0};
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const uint64_t id = t * kEach + i + 1;
        Completion c;
        channel_->Send(GetattrOp(id), c.Callback());
        if (c.done.WaitForNotificationWithTimeout(kPatience) &&
            c.result.posix_errno() == 0 &&
            c.result.getattr().attr().size() == id) {
          ++right;
        }
      }
    });
  }
  for (std::thread& t : senders) t.join();
  channel_->WaitIdle();
  EXPECT_EQ(right.load(), kThreads * kEach);
  EXPECT_EQ(stats_.Snap().backend_session_messages,
            static_cast<uint64_t>(kThreads * kEach + 1));
}

TEST_F(BackendSessionTest, ABackendThatStopsReadingNeverHoldsASenderBack) {
  // Reads nothing: what is written fills the stream's flow-control window.
  backend_.set_session([](grpc::ServerContext* context, Stream*) {
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::OK;
  });
  Start(/*call_timeout=*/absl::Milliseconds(500));
  // 4 messages of 8 KiB, then 100 of 60 KiB: about a hundred times the
  // 64 KiB window HTTP/2 starts with.
  constexpr int kMessages = 104;
  std::vector<std::unique_ptr<Completion>> done;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kMessages; ++i) {
    done.push_back(std::make_unique<Completion>());
    v1::Op op = GetattrOp(i + 1);
    op.mutable_getattr()->set_path("/" +
                                   std::string(i < 4 ? 8000 : 60000, 'a'));
    channel_->Send(std::move(op), done.back()->Callback());
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "a Send waited";
  int executed = 0, timed_out = 0;
  for (auto& c : done) {
    ASSERT_TRUE(c->done.WaitForNotificationWithTimeout(kPatience));
    if (c->result.posix_errno() == ETIMEDOUT) ++timed_out;
    if (c->result.posix_errno() == 0) {
      EXPECT_EQ(c->result.getattr().attr().size(), 1u);  // Execute's
      ++executed;
    }
  }
  EXPECT_EQ(executed + timed_out, kMessages);
  EXPECT_GE(executed, 100);
  EXPECT_GE(timed_out, 1);
  // The backend never read those bytes: the stream stays full, and the
  // next such message goes as an Execute call too.
  v1::Op next = GetattrOp(99);
  next.mutable_getattr()->set_path("/" + std::string(8000, 'a'));
  EXPECT_EQ(SendAndWait(std::move(next)).getattr().attr().size(), 1u);
  channel_->WaitIdle();
}

TEST_F(BackendSessionTest, WithoutTheMountOptionMessagesAreExecuteCalls) {
  session_ = false;
  Start();
  EXPECT_EQ(SendAndWait(GetattrOp(1)).getattr().attr().size(), 1u);
  channel_->WaitIdle();
  EXPECT_EQ(backend_.sessions(), 0);
  EXPECT_EQ(stats_.Snap().backend_session_messages, 0u);
}

TEST_F(BackendSessionTest, ABackendThatDoesNotSayItServesSessionGetsExecute) {
  backend_.set_serves_session(false);
  Start();
  EXPECT_EQ(SendAndWait(GetattrOp(1)).getattr().attr().size(), 1u);
  channel_->WaitIdle();
  EXPECT_EQ(backend_.sessions(), 0);
  EXPECT_EQ(stats_.Snap().backend_session_messages, 0u);
}

TEST_F(BackendSessionTest, ResultsAreMatchedBySequenceInAnyOrder) {
  // Reads two batches, answers the second first, and first of all a result
  // for a batch never sent, which must be dropped.
  backend_.set_session([](grpc::ServerContext*, Stream* stream) {
    v1::Batch first, second;
    if (!stream->Read(&first) || !stream->Read(&second)) {
      return grpc::Status::OK;
    }
    v1::BatchResult stray = Answer(second, 99);
    stray.set_sequence(second.sequence() + 1000);
    stream->Write(stray);
    stream->Write(Answer(second, 20));
    stream->Write(Answer(first, 10));
    v1::Batch more;
    while (stream->Read(&more)) stream->Write(Answer(more, 2));
    return grpc::Status::OK;
  });
  Start();
  Completion a, b;
  channel_->Send(GetattrOp(1), a.Callback());
  channel_->Send(GetattrOp(1), b.Callback());
  ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(kPatience));
  ASSERT_TRUE(b.done.WaitForNotificationWithTimeout(kPatience));
  // Which one the backend read first is up to the threads that sent them.
  std::vector<uint64_t> sizes = {a.result.getattr().attr().size(),
                                 b.result.getattr().attr().size()};
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<uint64_t>{10, 20}));
  channel_->WaitIdle();
}

TEST_F(BackendSessionTest, ABatchNeverAnsweredTimesOutAndTheStreamGoesOn) {
  // Drops the first batch, answers the rest.
  backend_.set_session([](grpc::ServerContext*, Stream* stream) {
    v1::Batch batch;
    if (!stream->Read(&batch)) return grpc::Status::OK;
    while (stream->Read(&batch)) stream->Write(Answer(batch, 2));
    return grpc::Status::OK;
  });
  Start(/*call_timeout=*/absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  v1::OpResult lost = SendAndWait(GetattrOp(1));
  EXPECT_EQ(lost.posix_errno(), ETIMEDOUT);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  v1::OpResult next = SendAndWait(GetattrOp(2));
  EXPECT_EQ(next.posix_errno(), 0);
  EXPECT_EQ(next.getattr().attr().size(), 2u);
  channel_->WaitIdle();
  EXPECT_EQ(backend_.sessions(), 1);
}

TEST_F(BackendSessionTest,
       AStreamThatEndsFailsWhatChangesAndResendsWhatDoesNot) {
  // Reads two batches and ends the stream without answering either.
  absl::Notification both_read;
  backend_.set_session([&](grpc::ServerContext*, Stream* stream) {
    v1::Batch batch;
    for (int i = 0; i < 2 && stream->Read(&batch); ++i) {
    }
    both_read.Notify();
    return grpc::Status::OK;
  });
  Start();
  Completion change, look;
  channel_->Send(MkdirOp(1), change.Callback());
  channel_->Send(GetattrOp(2), look.Callback());
  ASSERT_TRUE(change.done.WaitForNotificationWithTimeout(kPatience));
  ASSERT_TRUE(look.done.WaitForNotificationWithTimeout(kPatience));
  // The mkdir may have been made: EIO, not a retry. The getattr went again,
  // as an Execute call (from the broken stream's own thread).
  EXPECT_EQ(change.result.posix_errno(), EIO);
  EXPECT_EQ(look.result.posix_errno(), 0);
  EXPECT_EQ(look.result.getattr().attr().size(), 1u);
  // The next message opens a new stream.
  backend_.set_session(&SessionBackend::AnswerAll);
  EXPECT_EQ(SendAndWait(GetattrOp(3)).getattr().attr().size(), 2u);
  channel_->WaitIdle();
  EXPECT_EQ(backend_.sessions(), 2);
}

TEST_F(BackendSessionTest, CancelAllEndsABatchTheBackendSitsOn) {
  absl::Notification read;
  backend_.set_session([&](grpc::ServerContext* context, Stream* stream) {
    v1::Batch batch;
    if (stream->Read(&batch)) read.Notify();
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::OK;
  });
  Start();
  Completion c;
  channel_->Send(GetattrOp(1), c.Callback());
  ASSERT_TRUE(read.WaitForNotificationWithTimeout(kPatience));
  channel_->CancelAll();
  ASSERT_TRUE(c.done.WaitForNotificationWithTimeout(kPatience));
  EXPECT_EQ(c.result.posix_errno(), ECANCELED);
  channel_->WaitIdle();
}

TEST_F(BackendSessionTest,
       ABackendThatSaysItServesSessionButDoesNotGetsExecute) {
  backend_.set_implements_session(false);
  Start();
  // The refused stream ran nothing: the ops go again as Execute calls.
  EXPECT_EQ(SendAndWait(MkdirOp(1)).posix_errno(), 0);
  EXPECT_EQ(SendAndWait(GetattrOp(2)).getattr().attr().size(), 1u);
  channel_->WaitIdle();
  EXPECT_EQ(backend_.executes(), 2);
  EXPECT_EQ(stats_.Snap().backend_session_messages, 0u);
}

}  // namespace
}  // namespace fusehost
