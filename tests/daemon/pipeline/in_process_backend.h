// Shared by the tests that run BackendChannel against in-process servers:
// CallbackQueueKeeper, InProcessBackendTest, their fixture's base, and
// Completion, what a Send's callback received.

#ifndef FUSE_HOSTD_TESTS_DAEMON_PIPELINE_IN_PROCESS_BACKEND_H_
#define FUSE_HOSTD_TESTS_DAEMON_PIPELINE_IN_PROCESS_BACKEND_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "daemon/pipeline/op_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// Keeps gRPC's shared callback completion queue referenced for as long as it
// lives. gRPC 1.51 here runs callback-API completions on that queue's own
// threads and frees the queue when the last channel using it goes away. A
// BackendChannel destroyed right after its last call completes lets that last
// reference drop on one of those threads, which then shuts down (and fails to
// join) itself and aborts the process (see BackendChannelLifetimeTest). With
// one more channel holding the queue, the other tests are not at the mercy of
// that race.
class CallbackQueueKeeper {
 public:
  explicit CallbackQueueKeeper(const std::string& unreachable_target)
      : channel_(grpc::CreateChannel(unreachable_target,
                                     grpc::InsecureChannelCredentials())) {
    // One callback call makes the channel take its reference on the queue.
    std::unique_ptr<v1::FileSystem::Stub> stub =
        v1::FileSystem::NewStub(channel_);
    grpc::ClientContext context;
    v1::InitRequest request;
    v1::InitReply reply;
    absl::Notification done;
    stub->async()->Init(&context, &request, &reply,
                        [&done](grpc::Status) { done.Notify(); });
    done.WaitForNotification();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

// What a Send's completion callback received.
struct Completion {
  absl::Notification done;
  v1::OpResult result;
  int calls = 0;

  OpTransport::Done Callback() {
    return [this](const v1::OpResult& r) {
      result = r;
      ++calls;
      done.Notify();
    };
  }
};

// Each test gets a directory for its socket. Unix socket paths are limited to
// 107 bytes; Bazel's TEST_TMPDIR is used when it is short enough, else a
// fresh directory under /tmp. The suite keeps gRPC's callback queue
// (CallbackQueueKeeper).
class InProcessBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keeper_ = new CallbackQueueKeeper("unix:/nonexistent/fuse-hostd-test.sock");
  }
  static void TearDownTestSuite() {
    delete keeper_;
    keeper_ = nullptr;
  }

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string base = tmp != nullptr && std::strlen(tmp) < 80 ? tmp : "/tmp";
    std::string dir = base + "/backend-channel-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    dir_ = dir;
    target_ = "unix:" + dir_ + "/backend.sock";
  }

  // Connections made stay up without it.
  void RemoveSocketDir() {
    unlink((dir_ + "/backend.sock").c_str());
    rmdir(dir_.c_str());
  }

  std::string dir_;
  std::string target_;

 private:
  static inline CallbackQueueKeeper* keeper_ = nullptr;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_PIPELINE_IN_PROCESS_BACKEND_H_
