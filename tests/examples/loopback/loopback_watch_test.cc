// LoopbackFs with watching on, served by a real BackendServer: a change made
// directly in the backing directory reaches a gRPC client of the
// Invalidations stream, as it reaches fuse-hostd, and a change made by one
// mount's operation reaches the streams of the other mounts only.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/backend_server.h"
#include "examples/loopback/loopback_fs.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"
#include "tests/examples/loopback/temp_dir.h"

namespace fusehost {
namespace examples {
namespace {

// One mount's Invalidations stream, read by the test.
class Stream {
 public:
  Stream(v1::FileSystem::Stub& stub, uint64_t mount_id) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(20));
    v1::InvalidationsRequest request;
    request.set_mount_id(mount_id);
    reader_ = stub.Invalidations(&context_, request);
    reader_->WaitForInitialMetadata();
  }
  ~Stream() {
    context_.TryCancel();
    reader_->Finish();
  }

  // Reads notices until CHANGED notices for all of `paths` came; returns
  // the paths of every notice read (fewer if the stream ended first).
  std::vector<std::string> ReadUntilChanged(std::set<std::string> paths) {
    std::vector<std::string> seen;
    v1::Invalidation notice;
    while (!paths.empty() && reader_->Read(&notice)) {
      seen.push_back(notice.path());
      if (notice.kind() == v1::Invalidation::CHANGED) {
        paths.erase(notice.path());
      }
    }
    return seen;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::Invalidation>> reader_;
};

// A watching LoopbackFs of a scratch directory, served by a real
// BackendServer, and a client of it.
class LoopbackWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(root_.empty() || socket_dir_.path().empty());
    LoopbackFs::Options options;
    options.root = root_;
    options.watch = true;
    auto fs = LoopbackFs::New(options);
    ASSERT_TRUE(fs.ok()) << fs.status();
    fs_ = *std::move(fs);
    ServeOptions serve;
    serve.listen = "unix:" + socket_dir_.path() + "/backend.sock";
    serve.threads = 2;
    auto server = BackendServer::Start(*fs_, serve);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::FileSystem::NewStub(
        grpc::CreateChannel(serve.listen, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  TempDir root_dir_{"loopback-root"};
  const std::string root_ = root_dir_.path();
  // Unix socket paths are limited to 107 bytes; TEST_TMPDIR can be longer.
  TempDir socket_dir_{"loopback-watch", "/tmp"};
  // Declared in the order they must be made: the server serves `fs_`.
  std::unique_ptr<LoopbackFs> fs_;
  std::unique_ptr<BackendServer> server_;
  std::unique_ptr<v1::FileSystem::Stub> stub_;
};

TEST_F(LoopbackWatchTest, HostChangesReachTheInvalidationStream) {
  Stream stream(*stub_, 1);
  const absl::Time made = absl::Now();
  ASSERT_EQ(mkdir((root_ + "/made-on-host").c_str(), 0755), 0);
  const std::vector<std::string> seen =
      stream.ReadUntilChanged({"/made-on-host", "/"});
  EXPECT_LE(absl::Now() - made, absl::Milliseconds(100));
  EXPECT_NE(std::find(seen.begin(), seen.end(), "/made-on-host"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "/"), seen.end());
}

TEST_F(LoopbackWatchTest, ChangesThroughOneMountReachTheOtherMountsOnly) {
  Stream one(*stub_, 1);
  Stream two(*stub_, 2);

  // A directory made by an operation of mount 1.
  grpc::ClientContext context;
  v1::Batch batch;
  batch.set_mount_id(1);
  v1::Op* op = batch.add_ops();
  op->mutable_caller()->set_uid(geteuid());
  op->mutable_caller()->set_gid(getegid());
  op->mutable_mkdir()->set_path("/through-1");
  op->mutable_mkdir()->set_mode(0755);
  v1::BatchResult result;
  ASSERT_TRUE(stub_->Execute(&context, batch, &result).ok());
  ASSERT_EQ(result.results(0).posix_errno(), 0);

  // Mount 2 did not see it made: it hears of it at once.
  const std::vector<std::string> seen_by_two =
      two.ReadUntilChanged({"/through-1"});
  EXPECT_NE(std::find(seen_by_two.begin(), seen_by_two.end(), "/through-1"),
            seen_by_two.end());
  // Mount 1 made it and hears nothing of it: the next notices it gets are
  // those of a change made on the host afterwards.
  ASSERT_EQ(mkdir((root_ + "/on-host").c_str(), 0755), 0);
  const std::vector<std::string> seen_by_one =
      one.ReadUntilChanged({"/on-host"});
  EXPECT_NE(std::find(seen_by_one.begin(), seen_by_one.end(), "/on-host"),
            seen_by_one.end());
  EXPECT_EQ(std::find(seen_by_one.begin(), seen_by_one.end(), "/through-1"),
            seen_by_one.end());
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
