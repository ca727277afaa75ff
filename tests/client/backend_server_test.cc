// End to end: a BackendServer on a Unix socket, called through a real gRPC
// stub the way fuse-hostd calls it.

#include "client/backend_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {
namespace {

// Serves one large file, "/big", of kBigSize bytes of 'x'.
class BigFileFs : public FileSystem {
 public:
  static constexpr size_t kBigSize = 8 << 20;  // over gRPC's 4 MiB default

  std::string Name() const override { return "big-file"; }

  int Getattr(const Context&, const std::string& path, const FileInfo*,
              struct stat* st) override {
    if (path != "/big") return ENOENT;
    *st = {};
    st->st_mode = S_IFREG | 0444;
    st->st_size = kBigSize;
    return 0;
  }

  int Read(const Context&, const std::string&, std::string* data, size_t size,
           off_t offset, const FileInfo&) override {
    if (static_cast<size_t>(offset) < kBigSize) {
      data->append(std::min(size, kBigSize - offset), 'x');
    }
    return 0;
  }
};

// An Invalidations stream as the daemon holds it.
struct InvalidationStream {
  ~InvalidationStream() {
    if (!finished) {
      context.TryCancel();
      Finish();
    }
  }

  // Collects the stream's status; once only, as gRPC requires.
  grpc::Status Finish() {
    finished = true;
    return reader->Finish();
  }

  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::Invalidation>> reader;
  bool finished = false;
};

// Opens a stream and waits until the backend subscribed it, after which no
// notice can be missed.
std::unique_ptr<InvalidationStream> OpenInvalidations(
    v1::FileSystem::Stub& stub, uint64_t mount_id) {
  auto stream = std::make_unique<InvalidationStream>();
  // A bound on every read, so that a missing notice fails the test instead
  // of hanging it.
  stream->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(20));
  v1::InvalidationsRequest request;
  request.set_mount_id(mount_id);
  stream->reader = stub.Invalidations(&stream->context, request);
  stream->reader->WaitForInitialMetadata();
  return stream;
}

// Reads `count` notices as "KIND:path " each, or as many as came.
std::string ReadNotices(InvalidationStream& stream, int count) {
  std::string out;
  v1::Invalidation notice;
  for (int i = 0; i < count && stream.reader->Read(&notice); ++i) {
    out += v1::Invalidation::Kind_Name(notice.kind()) + ":" + notice.path() +
           " ";
  }
  return out;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Unix socket paths are limited to 107 bytes, which Bazel's TEST_TMPDIR can
// exceed; a fresh directory under /tmp is short.
class BackendServerTest : public ::testing::Test {
 protected:
  // Keeps gRPC initialised from here to the end of the process. Otherwise
  // it shuts down whenever a test's last gRPC object goes away, and gRPC
  // 1.51's shutdown now and then waits out a 10 s poll of an executor thread.
  static void SetUpTestSuite() { grpc_init(); }

  void SetUp() override {
    char dir[] = "/tmp/fusehost-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr) << std::strerror(errno);
    dir_ = dir;
    socket_ = dir_ + "/backend.sock";
  }

  void TearDown() override {
    unlink(socket_.c_str());
    rmdir(dir_.c_str());
  }

  ServeOptions Options() {
    ServeOptions options;
    options.listen = "unix:" + socket_;
    options.threads = 2;
    return options;
  }

  std::unique_ptr<v1::FileSystem::Stub> Connect() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessageBytes);
    return v1::FileSystem::NewStub(grpc::CreateCustomChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials(), args));
  }

  // Leaves a socket file nobody listens on, as a killed server does.
  void MakeStaleSocket() {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    close(fd);
  }

  std::string dir_;
  std::string socket_;
  BigFileFs fs_;
};

TEST_F(BackendServerTest, ServesInitAndBatchesOverUnixSocket) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect();

  grpc::ClientContext init_context;
  v1::InitRequest init;
  init.set_mount_id(1);
  init.set_protocol_version(1);
  v1::InitReply init_reply;
  ASSERT_TRUE(stub->Init(&init_context, init, &init_reply).ok());
  EXPECT_EQ(init_reply.name(), "big-file");
  EXPECT_EQ(init_reply.protocol_version(), 1u);

  grpc::ClientContext context;
  v1::Batch batch;
  batch.set_mount_id(1);
  v1::Op* stat_op = batch.add_ops();
  stat_op->set_id(1);
  stat_op->mutable_getattr()->set_path("/big");
  v1::Op* missing = batch.add_ops();
  missing->set_id(2);
  missing->mutable_getattr()->set_path("/missing");
  v1::Op* read = batch.add_ops();
  read->set_id(3);
  read->mutable_read()->set_path("/big");
  read->mutable_read()->set_size(BigFileFs::kBigSize);
  v1::BatchResult result;
  grpc::Status status = stub->Execute(&context, batch, &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(result.results_size(), 3);
  for (const v1::OpResult& op : result.results()) {
    switch (op.id()) {
      case 1:
        EXPECT_EQ(op.getattr().attr().size(), BigFileFs::kBigSize);
        break;
      case 2:
        EXPECT_EQ(op.posix_errno(), ENOENT);
        break;
      case 3:
        EXPECT_EQ(op.read().data().size(), BigFileFs::kBigSize);
        break;
      default:
        ADD_FAILURE() << "unexpected id " << op.id();
    }
  }
}

TEST_F(BackendServerTest, InvalidationStreamDeliversNoticesInOrder) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect();
  fs_.NotifyChanged("/dropped");  // no stream open yet
  auto stream = OpenInvalidations(*stub, 1);

  fs_.NotifyChanged("/a");
  fs_.NotifyRemoved("/b");
  fs_.NotifySubtreeChanged("/c");
  std::string expected = "CHANGED:/a REMOVED:/b SUBTREE:/c ";
  // A burst, to see that buffered writes keep their order.
  for (int i = 0; i < 1000; ++i) {
    const std::string path = "/f" + std::to_string(i);
    fs_.NotifyChanged(path);
    expected += "CHANGED:" + path + " ";
  }
  EXPECT_EQ(ReadNotices(*stream, 1003), expected);
}

TEST_F(BackendServerTest, EveryOpenStreamReceivesNotices) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect();
  auto first = OpenInvalidations(*stub, 1);
  auto second = OpenInvalidations(*stub, 2);
  fs_.NotifyChanged("/x");
  fs_.NotifyRemoved("/y");
  EXPECT_EQ(ReadNotices(*first, 2), "CHANGED:/x REMOVED:/y ");
  EXPECT_EQ(ReadNotices(*second, 2), "CHANGED:/x REMOVED:/y ");

  // A stream the client gave up no longer gets notices; the other one does.
  first->context.TryCancel();
  fs_.NotifyChanged("/z");
  EXPECT_EQ(ReadNotices(*second, 1), "CHANGED:/z ");
}

TEST_F(BackendServerTest, ShutdownEndsOpenStreamsPromptly) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect();
  auto stream = OpenInvalidations(*stub, 1);
  const absl::Time start = absl::Now();
  (*server)->Shutdown(absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  v1::Invalidation notice;
  EXPECT_FALSE(stream->reader->Read(&notice));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(BackendServerTest, ShutdownEndsOpenSessionStreamsPromptly) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect();
  grpc::ClientContext context;
  auto session = stub->Session(&context);
  v1::Batch batch;
  batch.set_mount_id(1);
  batch.set_sequence(7);
  v1::Op* op = batch.add_ops();
  op->set_id(1);
  op->mutable_getattr()->set_path("/");
  ASSERT_TRUE(session->Write(batch));
  v1::BatchResult result;
  ASSERT_TRUE(session->Read(&result));
  EXPECT_EQ(result.sequence(), 7u);
  ASSERT_EQ(result.results_size(), 1);
  const absl::Time start = absl::Now();
  (*server)->Shutdown(absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_FALSE(session->Read(&result));
  grpc::Status status = session->Finish();
  EXPECT_NE(status.error_code(), grpc::StatusCode::OK);
}

TEST_F(BackendServerTest, ShutdownRemovesSocketFile) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(Exists(socket_));
  (*server)->Shutdown(absl::Milliseconds(100));
  EXPECT_FALSE(Exists(socket_));
  (*server)->Shutdown(absl::Milliseconds(100));  // a second call is harmless
}

TEST_F(BackendServerTest, SocketIsOwnerOnlyUnlessAskedOtherwise) {
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
  struct stat st;
  ASSERT_EQ(lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  (*server)->Shutdown(absl::ZeroDuration());

  ServeOptions options = Options();
  options.socket_mode = 0660;
  auto shared = BackendServer::Start(fs_, options);
  ASSERT_TRUE(shared.ok()) << shared.status();
  ASSERT_EQ(lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST_F(BackendServerTest, ReplacesStaleSocket) {
  MakeStaleSocket();
  ASSERT_TRUE(Exists(socket_));
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(server.ok()) << server.status();
}

TEST_F(BackendServerTest, KeepsStaleSocketWhenAskedTo) {
  MakeStaleSocket();
  ServeOptions options = Options();
  options.replace_stale_socket = false;
  auto server = BackendServer::Start(fs_, options);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("already exists"),
            absl::string_view::npos)
      << server.status();
}

TEST_F(BackendServerTest, RefusesLiveServersSocket) {
  auto first = BackendServer::Start(fs_, Options());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = BackendServer::Start(fs_, Options());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another server is listening"),
            absl::string_view::npos)
      << second.status();
  EXPECT_TRUE(Exists(socket_));  // the first server's socket is untouched
}

TEST_F(BackendServerTest, RefusesToReplaceNonSocket) {
  FILE* file = std::fopen(socket_.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fclose(file);
  auto server = BackendServer::Start(fs_, Options());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("is not a socket"),
            absl::string_view::npos)
      << server.status();
  EXPECT_TRUE(Exists(socket_));
}

TEST_F(BackendServerTest, ReportsMissingDirectoryInOneLine) {
  ServeOptions options = Options();
  options.listen = "unix:" + dir_ + "/no/such/dir.sock";
  auto server = BackendServer::Start(fs_, options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().message().find('\n'), absl::string_view::npos);
  EXPECT_NE(server.status().message().find(dir_ + "/no/such"),
            absl::string_view::npos)
      << server.status();
}

TEST_F(BackendServerTest, ListensOnTcpWithPickedPort) {
  ServeOptions options;
  options.listen = "127.0.0.1:0";
  auto server = BackendServer::Start(fs_, options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);
}

}  // namespace
}  // namespace fusehost
