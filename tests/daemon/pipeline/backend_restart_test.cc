// BackendChannel across a restart of its backend: a real in-process gRPC
// server on a Unix socket, replaced by another instance on the same socket.
// The handle an open returned keeps working: the channel reopens the file
// at the new instance, as the caller that opened it, and sends the op again;
// the new instance is told of the mount (BackendGreeter).

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/pipeline/backend_channel.h"
#include "daemon/pipeline/backend_greeter.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(10);

// One run of a backend: handles are "instance:n", and a handle of another
// instance is refused with EBADF, as the protocol asks.
class Instance final : public v1::FileSystem::Service {
 public:
  explicit Instance(uint64_t instance) : instance_(instance) {}

  grpc::Status Execute(grpc::ServerContext*, const v1::Batch* batch,
                       v1::BatchResult* reply) override {
    reply->set_instance(instance_);
    absl::MutexLock lock(&mu_);
    for (const v1::Op& op : batch->ops()) {
      seen_.push_back(op);
      v1::OpResult* r = reply->add_results();
      r->set_id(op.id());
      if (op.handle_instance() != 0 && op.handle_instance() != instance_) {
        r->set_posix_errno(EBADF);
      } else if (op.has_open()) {
        r->mutable_open()->set_fh(instance_ * 100 + seen_.size());
      } else if (op.has_read()) {
        r->mutable_read()->set_data(
            absl::StrCat(instance_, ":", op.read().fh()));
      } else {
        r->mutable_empty();
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Init(grpc::ServerContext*, const v1::InitRequest* request,
                    v1::InitReply* reply) override {
    reply->set_instance(instance_);
    absl::MutexLock lock(&mu_);
    inits_.push_back(*request);
    return grpc::Status::OK;
  }

  std::vector<v1::Op> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

  // Waits up to kPatience for the n-th Init; the requests so far.
  std::vector<v1::InitRequest> AwaitInits(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return inits_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), kPatience);
    return inits_;
  }

 private:
  const uint64_t instance_;
  absl::Mutex mu_;
  std::vector<v1::Op> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::InitRequest> inits_ ABSL_GUARDED_BY(mu_);
};

class BackendRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string base = tmp != nullptr && std::strlen(tmp) < 80 ? tmp : "/tmp";
    std::string dir = base + "/backend-restart-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    dir_ = dir;
    path_ = dir + "/backend.sock";
  }

  void TearDown() override {
    Stop();
    unlink(path_.c_str());
    // Outside the test's own directory (a socket path must be short): the
    // directory is left to nobody else.
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  void Serve(uint64_t instance) {
    unlink(path_.c_str());
    instance_ = std::make_unique<Instance>(instance);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + path_,
                             grpc::InsecureServerCredentials());
    builder.RegisterService(instance_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  // The backend goes away: its connections are closed.
  void Stop() {
    if (server_ == nullptr) return;
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
    server_.reset();
  }

  // A channel that makes its own connections, as the daemon's do. gRPC
  // frees its shared callback queue on the thread of the last call when the
  // last channel goes away, which aborts the process now and then (see
  // backend_channel_test.cc): channels made here live until the process
  // ends.
  BackendChannel* Connect(
      std::function<void(uint64_t)> on_new_instance = nullptr) {
    BackendChannel::Options options;
    options.on_new_instance = std::move(on_new_instance);
    options.target = "unix:" + path_;
    options.call_timeout = absl::Seconds(10);
    const std::string path = path_;
    options.dial = [path]() -> absl::StatusOr<UniqueFd> {
      UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
      if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr),
                  sizeof(addr)) != 0) {
        return absl::UnavailableError(std::strerror(errno));
      }
      return fd;
    };
    return new BackendChannel(options);
  }

  static v1::OpResult SendAndWait(BackendChannel* channel, v1::Op op) {
    absl::Notification done;
    v1::OpResult result;
    channel->Send(std::move(op), [&](const v1::OpResult& r) {
      result = r;
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(kPatience));
    return result;
  }

  std::string dir_;  // made by SetUp
  std::string path_;
  std::unique_ptr<Instance> instance_;
  std::unique_ptr<grpc::Server> server_;
};

v1::Op Read(uint64_t token) {
  v1::Op op;
  op.set_id(1);
  op.mutable_read()->set_path("/f");
  op.mutable_read()->set_fh(token);
  op.mutable_read()->set_size(10);
  return op;
}

TEST_F(BackendRestartTest, AHandleIsReopenedAtTheNewInstanceAsItsOpener) {
  Serve(7);
  BackendChannel* channel = Connect();
  v1::Op open;
  open.set_id(1);
  open.mutable_caller()->set_uid(1000);
  open.mutable_caller()->set_gid(1001);
  open.mutable_open()->set_path("/f");
  open.mutable_open()->set_flags(02 | 01000);  // O_RDWR | O_TRUNC
  v1::OpResult opened = SendAndWait(channel, open);
  ASSERT_EQ(opened.posix_errno(), 0);
  const uint64_t token = opened.open().fh();
  EXPECT_EQ(SendAndWait(channel, Read(token)).read().data(), "7:701");

  Stop();
  Serve(8);  // same socket, new instance
  v1::OpResult read = SendAndWait(channel, Read(token));
  ASSERT_EQ(read.posix_errno(), 0);
  // The new instance's handle: its first op was the stale read (refused),
  // its second the reopen, which issued handle 802.
  EXPECT_EQ(read.read().data(), "8:802");
  std::vector<v1::Op> seen = instance_->seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].handle_instance(), 7u) << "the old handle, refused";
  ASSERT_TRUE(seen[1].has_open());
  EXPECT_EQ(seen[1].open().path(), "/f");
  EXPECT_EQ(seen[1].open().flags(), 02u) << "O_TRUNC never again";
  EXPECT_EQ(seen[1].caller().uid(), 1000u);
  EXPECT_EQ(seen[1].caller().gid(), 1001u);
  EXPECT_EQ(seen[2].handle_instance(), 8u);

  // Later ops use the new handle at once.
  EXPECT_EQ(SendAndWait(channel, Read(token)).read().data(), "8:802");
  EXPECT_EQ(instance_->seen().size(), 4u);
}

TEST_F(BackendRestartTest, ANewRunIsGreetedWithTheMountsInit) {
  Serve(7);
  std::atomic<BackendGreeter*> greeter{nullptr};
  BackendChannel* channel = Connect([&greeter](uint64_t instance) {
    if (BackendGreeter* g = greeter.load()) g->NewInstance(instance);
  });
  v1::InitRequest init;
  init.set_mount_id(42);
  init.set_passthrough_socket("/run/fuse-hostd/m42.sock");
  absl::StatusOr<v1::InitReply> first = channel->Init(init);
  ASSERT_TRUE(first.ok()) << first.status();
  BackendGreeter::Options options;
  options.channel = channel;
  options.request = init;
  options.first_reply = *first;
  options.log_name = "/mnt";
  BackendGreeter greeted(std::move(options));
  greeter.store(&greeted);

  v1::Op getattr;
  getattr.set_id(1);
  getattr.mutable_getattr()->set_path("/");
  ASSERT_EQ(SendAndWait(channel, getattr).posix_errno(), 0);
  EXPECT_EQ(greeted.greeted(), 0u) << "the first run was greeted by the mount";
  Stop();
  Serve(8);
  ASSERT_EQ(SendAndWait(channel, getattr).posix_errno(), 0);
  std::vector<v1::InitRequest> inits = instance_->AwaitInits(1);
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0].mount_id(), 42u);
  EXPECT_EQ(inits[0].passthrough_socket(), "/run/fuse-hostd/m42.sock");
  // Once: later replies of the same run greet nobody.
  ASSERT_EQ(SendAndWait(channel, getattr).posix_errno(), 0);
  greeted.Stop();
  EXPECT_EQ(instance_->AwaitInits(1).size(), 1u);
  greeter.store(nullptr);
}

TEST_F(BackendRestartTest, OpsWaitForABackendThatIsAwayUntilTheirDeadline) {
  Serve(7);
  BackendChannel* channel = Connect();
  v1::Op getattr;
  getattr.set_id(1);
  getattr.mutable_getattr()->set_path("/");
  ASSERT_EQ(SendAndWait(channel, getattr).posix_errno(), 0);
  Stop();
  getattr.set_deadline_unix_ms(
      absl::ToUnixMillis(absl::Now() + absl::Milliseconds(500)));
  const absl::Time t0 = absl::Now();
  EXPECT_EQ(SendAndWait(channel, getattr).posix_errno(), ENOTCONN);
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(400));
}

TEST_F(BackendRestartTest, AnOpWaitingForTheBackendGoesOnceItIsBack) {
  Serve(7);
  BackendChannel* channel = Connect();
  v1::Op getattr;
  getattr.set_id(1);
  getattr.mutable_getattr()->set_path("/");
  ASSERT_EQ(SendAndWait(channel, getattr).posix_errno(), 0);
  Stop();
  absl::Notification done;
  v1::OpResult result;
  channel->Send(getattr, [&](const v1::OpResult& r) {
    result = r;
    done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(300));
  Serve(8);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kPatience));
  EXPECT_EQ(result.posix_errno(), 0);
}

}  // namespace
}  // namespace fusehost
