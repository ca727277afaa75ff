// BackendChannel's connections: how they are made (gRPC's own for TCP, or
// a descriptor the daemon dialed and checked), replaced when they break, and
// waited for by messages while the backend is away. The rest of the channel:
// sending in backend_channel.cc, answers and retries in
// backend_channel_answers.cc.

#include <fcntl.h>
#include <pthread.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "absl/status/status.h"
#include "common/log_line.h"
#include "daemon/pipeline/backend_channel.h"
#include "daemon/pipeline/broken_connection.h"
#include <grpcpp/create_channel_posix.h>

namespace fusehost {
namespace {
// Large enough for a 1 MiB read or write plus framing, or a big directory.
constexpr int kMaxMessageBytes = 64 << 20;
// Receive window of each call: room for a few 1 MiB replies.
constexpr int kStreamWindowBytes = 8 << 20;
// Least time between two TLS channels of one mount.
constexpr absl::Duration kRemakeSpacing = absl::Milliseconds(250);

grpc::ChannelArguments ChannelArgs(absl::Duration keepalive,
                                   const std::string& server_name = "") {
  grpc::ChannelArguments args;
  // The name checked against the backend's certificate.
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // gRPC's default reconnect backoff grows to two minutes; a restarted
  // backend should resume its mount within a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Each mount gets its own connection, so one slow backend mount never
  // queues behind another's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Retries are the daemon's decision (an op may not be idempotent), and
  // gRPC's retry machinery buffers every call.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Each call is a new HTTP/2 stream, whose flow-control window starts
  // small; a 1 MiB read reply would wait for window updates on the way.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  // A connection the daemon made itself cannot be remade by gRPC: it must
  // not drop it for being idle.
  args.SetInt(GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS, INT_MAX);
  // A backend host that stops answering (powered off, cut off) closes
  // nothing: without pings its connection would look alive until TCP gives
  // up, many minutes later, and every call on it would wait out its
  // deadline. Pinged, it is given up after two periods and remade. Also
  // while idle, so that a dead connection is known before the next call.
  if (keepalive > absl::ZeroDuration()) {
    const int ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(keepalive), INT_MAX));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  return args;
}

std::shared_ptr<BackendChannel::Connection> MakeConnection(
    std::shared_ptr<grpc::Channel> channel) {
  auto conn = std::make_shared<BackendChannel::Connection>();
  conn->stub = v1::FileSystem::NewStub(channel);
  conn->channel = std::move(channel);
  return conn;
}


}  // namespace

std::shared_ptr<BackendChannel::Connection>
BackendChannel::InsecureTcpConnection() {
  return MakeConnection(grpc::CreateCustomChannel(
      options_.target, grpc::InsecureChannelCredentials(),
      ChannelArgs(options_.keepalive)));
}

absl::StatusOr<std::shared_ptr<BackendChannel::Connection>>
BackendChannel::Connect() {
  if (options_.dial) {
    absl::StatusOr<UniqueFd> fd = options_.dial();
    if (!fd.ok()) return fd.status();
    return Adopt(*std::move(fd));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      options_.credentials();
  if (!credentials.ok()) return credentials.status();
  return MakeConnection(grpc::CreateCustomChannel(
      options_.target, *credentials,
      ChannelArgs(options_.keepalive, options_.server_name)));
}

std::shared_ptr<BackendChannel::Connection> BackendChannel::LiveLocked() {
  // A connection made by gRPC is remade by gRPC; one the daemon made is
  // replaced once a call on it fails UNAVAILABLE (Finish), or once its
  // backend is seen to have hung up. (A channel made from a descriptor has
  // no connectivity state to ask.)
  if (conn_ != nullptr && !PeerHungUp(conn_->peer)) return conn_;
  if (conn_ != nullptr) {
    retired_.push_back(std::move(conn_));
    conn_.reset();
  }
  want_dial_ = true;
  return nullptr;
}

void BackendChannel::DialLoop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](BackendChannel* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return c->stopping_ ||
                     (c->want_dial_ && absl::Now() >= c->next_dial_);
            },
            this),
        absl::Milliseconds(100));
    // Connections nothing uses any more are released here.
    std::vector<std::shared_ptr<Connection>> unused;
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->use_count() == 1) {
        unused.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
    // Messages that waited too long for a connection, or all of them when
    // stopping.
    std::vector<Call*> expired;
    const absl::Time now = absl::Now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (stopping_ || now >= it->second) {
        expired.push_back(it->first);
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    const bool stopping = stopping_;
    const bool dial = !stopping && want_dial_ && conn_ == nullptr &&
                      now >= next_dial_;
    mu_.Unlock();
    unused.clear();
    for (Call* call : expired) Fail(call, stopping ? ECANCELED : ENOTCONN);
    absl::StatusOr<std::shared_ptr<Connection>> made =
        dial ? Connect() : absl::StatusOr<std::shared_ptr<Connection>>(nullptr);
    mu_.Lock();
    if (stopping) return;
    if (!dial) continue;
    if (!made.ok()) {
      // Once per change of reason: a backend that stays down is retried
      // every second.
      std::string why(made.status().message());
      if (why != last_dial_error_) {
        Log("%s%s", absl::IsPermissionDenied(made.status()) ? "audit: " : "",
            why);
        last_dial_error_ = why;
      }
      next_dial_ = absl::Now() + backoff_;
      // Short: a restarting backend is waited for by stalled callers.
      backoff_ = std::min(backoff_ * 2, absl::Milliseconds(200));
      // Nobody waits: dial again only when someone needs the backend.
      if (waiting_.empty()) want_dial_ = false;
      continue;
    }
    conn_ = *std::move(made);
    want_dial_ = false;
    backoff_ = absl::Milliseconds(50);
    // A TLS channel is made before anything is known about the backend: a
    // backend that stays down would otherwise have one made (and the
    // certificate files read) for every failed message.
    if (options_.credentials) next_dial_ = absl::Now() + kRemakeSpacing;
    last_dial_error_.clear();
    std::vector<Call*> ready;
    for (auto& [call, since] : waiting_) ready.push_back(call);
    waiting_.clear();
    std::shared_ptr<Connection> conn = conn_;
    mu_.Unlock();
    for (Call* call : ready) Start(call, conn);
    mu_.Lock();
  }
}

std::shared_ptr<BackendChannel::Connection> BackendChannel::Adopt(UniqueFd fd) {
  UniqueFd peer(fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  std::shared_ptr<Connection> conn = MakeConnection(
      grpc::CreateCustomInsecureChannelFromFd(
          options_.target, fd.release(),
          // A Unix socket: its peer going away closes it; no pings.
          ChannelArgs(absl::ZeroDuration())));
  conn->peer = std::move(peer);  // invalid if dup failed: never checked
  return conn;
}

std::shared_ptr<BackendChannel::Connection> BackendChannel::StreamConnection(
    absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  if (std::shared_ptr<Connection> conn = LiveLocked()) return conn;
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](BackendChannel* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return c->stopping_ || c->conn_ != nullptr;
          },
          this),
      wait);
  return stopping_ ? nullptr : conn_;
}


}  // namespace fusehost
