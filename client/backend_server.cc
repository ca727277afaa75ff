#include "client/backend_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/server_tls.h"
#include "common/payload_heap.h"

namespace fusehost {
namespace {

// How often a gRPC thread waiting for calls wakes (see Serve).
constexpr int kPollerWakeMs = 500;

// The socket file of a "unix:" address (gRPC accepts "unix:path" and
// "unix:///absolute/path"); "" for TCP and abstract ("unix-abstract:")
// addresses, which leave nothing in the filesystem.
std::string UnixSocketPath(const std::string& address) {
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix://")) return std::string(rest);
  if (absl::ConsumePrefix(&rest, "unix:")) return std::string(rest);
  return "";
}

std::string ErrnoText(int error) { return std::strerror(error); }

// Whether a server accepts connections on the socket at `path`: ECONNREFUSED
// is what a socket file left behind by a dead process answers.
absl::StatusOr<bool> SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket(): ", ErrnoText(errno)));
  }
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc = connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  int error = errno;
  close(fd);
  if (rc == 0) return true;
  if (error == ECONNREFUSED) return false;
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot check whether ", path, " is in use: ", ErrnoText(error)));
}

// Makes `path` free for bind(2), or says in one line why it is not.
absl::Status PrepareSocketPath(const std::string& path,
                               bool replace_stale_socket) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unix socket path \"", path, "\" must be 1 to ",
                     sizeof(sockaddr_un::sun_path) - 1, " bytes long"));
  }
  // Checked here because gRPC reports a failed bind only in its log, as a
  // multi-line error tree.
  size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create a socket in ", dir, ": ", ErrnoText(errno)));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use ", path, ": ", ErrnoText(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; not replacing it"));
  }
  if (!replace_stale_socket) {
    return absl::AlreadyExistsError(absl::StrCat(
        "socket ", path, " already exists (replace_stale_socket is off)"));
  }
  absl::StatusOr<bool> listens = SomeoneListens(path);
  if (!listens.ok()) return listens.status();
  if (*listens) {
    return absl::AlreadyExistsError(
        absl::StrCat("another server is listening on ", path));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot remove stale socket ", path, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

int ThreadCount(int requested) {
  if (requested > 0) return requested;
  return std::max(4, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BackendServer>> BackendServer::Start(
    FileSystem& fs, const ServeOptions& options) {
  const std::string& address = options.listen;
  if (address.empty()) {
    return absl::InvalidArgumentError(
        "no listen address (\"unix:/path/to.sock\" or \"host:port\")");
  }
  const std::string socket_path = UnixSocketPath(address);
  if (!socket_path.empty()) {
    absl::Status prepared =
        PrepareSocketPath(socket_path, options.replace_stale_socket);
    if (!prepared.ok()) return prepared;
  }

  // File data passes through here (reads, and writes without passthrough).
  KeepPayloadsInHeap();
  const int threads = ThreadCount(options.threads);
  BackendService::Options service_options;
  service_options.threads = threads;
  service_options.session_threads = threads;
  auto service = std::make_unique<BackendService>(fs, service_options);

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFor(options, !socket_path.empty());
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, *credentials, &port);
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Each call is a new HTTP/2 stream, whose flow-control window starts
  // small; a 1 MiB write would wait for window updates on the way in.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  // The daemon pings a TCP connection every few seconds, idle or not, to
  // learn that a backend host went away (mount option keepalive=); gRPC's
  // default server policy would answer such pings with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // The handler threads gRPC keeps: a thread that has run a call goes back
  // to waiting for the next one as long as fewer than MAX_POLLERS wait, and
  // ends otherwise; a thread that takes a call while fewer than MIN_POLLERS
  // are left waiting starts another. With both at 1 every call started one
  // thread and ended another (measured: most of a small op's CPU time went
  // to thread creation and exit). As many may wait as the service has
  // threads, so that sequential and concurrent calls reuse them. Deliberately
  // no ResourceQuota thread limit: when that is reached the sync server
  // answers RESOURCE_EXHAUSTED, which would fail whole batches instead of
  // queueing them.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, threads);
  // How long a waiting thread sleeps between looks. grpc::Server::Shutdown
  // waits for every waiting thread to look again before it returns, so
  // gRPC's default of 10 s made stopping take up to that long now and then.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC,
      kPollerWakeMs);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    if (server != nullptr) server->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     socket_path.empty()
                         ? " (is the address valid and the port free?)"
                         : " (does the directory exist and is it writable?)"));
  }
  if (!socket_path.empty() && chmod(socket_path.c_str(), options.socket_mode) != 0) {
    server->Shutdown();
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot set the permissions of ", socket_path, ": ", strerror(errno)));
  }
  return std::unique_ptr<BackendServer>(new BackendServer(
      std::move(service), std::move(server), port, socket_path));
}

BackendServer::BackendServer(std::unique_ptr<BackendService> service,
                             std::unique_ptr<grpc::Server> server, int port,
                             std::string socket_path)
    : service_(std::move(service)),
      server_(std::move(server)),
      port_(port),
      socket_path_(std::move(socket_path)) {
  struct stat st;
  if (!socket_path_.empty() && lstat(socket_path_.c_str(), &st) == 0) {
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
  }
}

BackendServer::~BackendServer() { Shutdown(absl::ZeroDuration()); }

void BackendServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  service_->EndStreams();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(grace));
  server_->Wait();
  struct stat st;
  if (!socket_path_.empty() && lstat(socket_path_.c_str(), &st) == 0 &&
      st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    unlink(socket_path_.c_str());
  }
}

}  // namespace fusehost
