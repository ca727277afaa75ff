// fusehost::Serve in a thread, stopped by a real SIGTERM to the process.
// A test binary of its own: every thread in it must block SIGTERM, so the
// signal is blocked before any thread (gRPC's included) exists.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/filesystem.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST(ServeTest, ServesUntilSigterm) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, nullptr), 0);

  char dir[] = "/tmp/fusehost-serve-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr) << std::strerror(errno);
  const std::string socket = std::string(dir) + "/serve.sock";

  FileSystem fs;  // the defaults are enough to answer Init
  ServeOptions options;
  options.listen = "unix:" + socket;
  int rc = -1;
  std::thread server([&] { rc = Serve(fs, options); });
  // Whatever assertion fails below, the server is stopped and joined, so
  // that the failure is reported instead of ending in std::terminate.
  auto stop = absl::MakeCleanup([&] {
    if (server.joinable()) {
      kill(getpid(), SIGTERM);
      server.join();
    }
  });

  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Exists(socket) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(Exists(socket));
  // The socket's file appears at bind(), before the server listens: a call
  // made in between is refused at once unless it waits for the server.
  auto stub = v1::FileSystem::NewStub(grpc::CreateChannel(
      "unix:" + socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  v1::InitRequest request;
  v1::InitReply reply;
  ASSERT_TRUE(stub->Init(&context, request, &reply).ok());
  EXPECT_EQ(reply.name(), "fusehost-cpp");

  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  server.join();
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(Exists(socket));
  rmdir(dir);
}

}  // namespace
}  // namespace fusehost
