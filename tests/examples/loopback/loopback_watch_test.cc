// LoopbackFs with watching on, served by a real BackendServer: a change made
// directly in the backing directory reaches a gRPC client of the
// Invalidations stream, as it reaches fuse-hostd.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/backend_server.h"
#include "examples/loopback/loopback_fs.h"
#include "gtest/gtest.h"
#include "tests/examples/loopback/temp_dir.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {
namespace examples {
namespace {

TEST(LoopbackWatchTest, HostChangesReachTheInvalidationStream) {
  TempDir root_dir("loopback-root");
  const std::string root = root_dir.path();
  // Unix socket paths are limited to 107 bytes; TEST_TMPDIR can be longer.
  TempDir socket_dir("loopback-watch", "/tmp");
  ASSERT_FALSE(root.empty() || socket_dir.path().empty());
  const std::string socket = socket_dir.path() + "/backend.sock";

  LoopbackFs::Options options;
  options.root = root;
  options.watch = true;
  auto fs = LoopbackFs::New(options);
  ASSERT_TRUE(fs.ok()) << fs.status();
  ServeOptions serve;
  serve.listen = "unix:" + socket;
  serve.threads = 2;
  auto server = BackendServer::Start(**fs, serve);
  ASSERT_TRUE(server.ok()) << server.status();

  auto stub = v1::FileSystem::NewStub(
      grpc::CreateChannel(serve.listen, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  v1::InvalidationsRequest request;
  request.set_mount_id(1);
  auto reader = stub->Invalidations(&context, request);
  reader->WaitForInitialMetadata();

  const absl::Time made = absl::Now();
  ASSERT_EQ(mkdir((root + "/made-on-host").c_str(), 0755), 0);
  bool saw_dir = false;
  bool saw_root = false;
  v1::Invalidation notice;
  while (!(saw_dir && saw_root) && reader->Read(&notice)) {
    saw_dir |= notice.kind() == v1::Invalidation::CHANGED &&
               notice.path() == "/made-on-host";
    saw_root |= notice.kind() == v1::Invalidation::CHANGED &&
                notice.path() == "/";
  }
  EXPECT_TRUE(saw_dir && saw_root);
  EXPECT_LE(absl::Now() - made, absl::Milliseconds(100));

  (*server)->Shutdown(absl::Seconds(5));
  reader->Finish();
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
