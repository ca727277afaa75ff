// The daemon's connection to one backend: a gRPC channel to the backend's
// FileSystem service, with a deadline on every call, fast failure while the
// backend is down, and quick reconnection when it comes back.
//
// Three ways to connect:
//   - by address (plain TCP, asked for with `insecure`): gRPC dials and
//     redials by itself;
//   - by address with TLS: each channel is made with credentials made by
//     `credentials` (which reads the certificate files again), and is
//     replaced by a new one when a call on it fails UNAVAILABLE, so that
//     renewed certificates are used from the next connection on;
//   - through `dial` (Unix sockets): every connection is made and checked by
//     the daemon (see authz/backend_dialer.h) and handed to gRPC as a
//     connected socket. When it breaks, a thread of the channel's dials the
//     next one; messages sent meanwhile wait for it (a short stall while a
//     backend restarts) or fail with ENOTCONN when it cannot be made.
//
// Handles are translated here too: the kernel only ever sees tokens of the
// daemon's, each tied to the backend instance that issued the handle. When
// the backend comes back as a new instance, the handles of the old one are
// reopened before the ops that carry them are sent (handle_reopener.h).
//
// A backend restart, seen from the ops in flight: messages wait for the new
// connection until their deadline (the mount's timeout=), then fail with
// ENOTCONN. An op that changes nothing (read, getattr, lookup, ...) whose
// message was sent when the connection broke is sent again on the next one;
// one that changes something (write, mkdir, rename, ...) may or may not have
// been applied, and fails with EIO rather than being repeated.
//
// Transport failures are turned into per-op errnos here, the one place where
// a gRPC status meets the error model: a deadline becomes ETIMEDOUT, an
// unreachable backend ENOTCONN, anything else EIO.
//
// Thread-safe. Completion callbacks run on gRPC's threads and must not block.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/pipeline/backend_session.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/pipeline/handle_reopener.h"
#include "daemon/pipeline/op_transport.h"
#include "daemon/stats/mount_stats.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

// Maps a failed gRPC status to the errno each op of the message gets.
int ErrnoForStatus(const grpc::Status& status);

class BackendChannel : public OpTransport, public BatchSink {
 public:
  using Dial = std::function<absl::StatusOr<UniqueFd>()>;
  using MakeCredentials = std::function<
      absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>()>;

  struct Options {
    // gRPC target: "unix:/path" or "host:port". With `dial` it only names
    // the backend.
    std::string target;
    // Makes each connection (see above); empty: gRPC dials `target`.
    Dial dial;
    // TLS (without `dial`): the credentials of each new channel. An error
    // fails the messages waiting for the channel (ENOTCONN) and is logged.
    MakeCredentials credentials;
    // The name the backend's certificate must carry; empty: the host of
    // `target`.
    std::string server_name;
    uint64_t mount_id = 0;
    // Deadline of each Execute call.
    absl::Duration call_timeout = absl::Seconds(30);
    // Connections gRPC makes (TCP): ping after this long without a sign of
    // life and give the connection up if the ping is not answered within as
    // long again. Zero: no pings. (A Unix socket's peer that goes away
    // closes it.)
    absl::Duration keepalive = absl::ZeroDuration();
    // Send messages on the backend's Session stream when its Init says it
    // serves one (mount option session); false: an Execute call each.
    bool session = false;
    // Deadline of Init.
    absl::Duration init_timeout = absl::Seconds(5);
    // Deadline of Destroy: short, since it runs while the daemon stops.
    absl::Duration destroy_timeout = absl::Seconds(1);
    // Where messages are counted; may be null.
    MountStats* stats = nullptr;
    // A reply came from a new run of the backend (InitReply.instance
    // changed): it restarted. Called on a gRPC thread; must not block.
    std::function<void(uint64_t instance)> on_new_instance;
  };

  // One gRPC channel over one connection.
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::FileSystem::Stub> stub;
    // A second descriptor of a connection the daemon made, watched for the
    // backend hanging up, so that a message is not sent on a connection
    // already known to be dead (see LiveLocked).
    UniqueFd peer;
    // The Session stream messages go on when the backend serves it, and
    // the broken ones it replaced (a connection gRPC remakes outlives its
    // streams). Guarded by the channel's mu_; ended with the connection,
    // which is never released on a gRPC or session thread.
    std::unique_ptr<BackendSession> session;
    std::vector<std::unique_ptr<BackendSession>> broken_sessions;
    bool opening_session = false;
  };

  explicit BackendChannel(Options options);
  ~BackendChannel() override;

  // Init handshake; an error status (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
  // carries a one-line message meant for the user. Dials first if needed.
  absl::StatusOr<v1::InitReply> Init(const v1::InitRequest& request);
  // Best effort; never blocks longer than destroy_timeout.
  void Destroy();

  // One op, one message.
  void Send(v1::Op op, Done done) override;
  void SendBatch(std::vector<PendingOp> ops, std::function<void()> sent,
                 bool in_order) override;

  void CancelAll() override;
  void WaitIdle() override;

  // The tokens standing for the backend's handles (see handle_map.h).
  HandleMap* handles() { return &handles_; }

  // The backend fills in handles of earlier ops of an in-order message
  // (InitReply.takes_handles_from_earlier_ops), as of its last Init.
  bool TakesHandlesFromEarlierOps() const {
    return takes_handles_from_ops_.load();
  }

  // A live connection for the invalidation stream, which lives as long as
  // the mount: waits up to `wait` for one (dialing if needed); null if
  // there is none. Never call from a gRPC thread.
  std::shared_ptr<Connection> StreamConnection(absl::Duration wait);

 private:
  struct Call;
  // Resolves the handles of `ops`, reopening stale ones first, and sends
  // those ready as one message.
  // `in_order`: Batch.in_order.
  void Route(std::vector<RoutedOp> ops, std::function<void()> sent,
             bool in_order = false);
  // Sends the op that reopens a handle (handle_reopener.h).
  void SendReopen(v1::Op op,
                  std::function<void(const v1::OpResult&, uint64_t)> done);
  void Launch(std::unique_ptr<Call> owned);
  // Hands a connection made by the daemon to gRPC.
  std::shared_ptr<Connection> Adopt(UniqueFd fd);
  // When `call` stops waiting for an answer or a connection.
  absl::Time CallDeadline(const Call& call) const;
  void Start(Call* call, std::shared_ptr<Connection> conn);
  // Sends `call` on `conn`'s Session stream (opened if needed); false when
  // it must go as an Execute call instead.
  bool StartOnSession(Call* call, Connection* conn);
  // `conn`'s working Session stream, opened if there is none; null if one
  // cannot be had now.
  BackendSession* SessionOf(Connection* conn);
  void Finish(Call* call, const grpc::Status& status);
  // True when `call` is queued again for a new connection instead of
  // failing (call is then gone): its ops that change nothing go again, the
  // others fail with EIO.
  bool RetryOnNewConnection(Call* call, const grpc::Status& status);
  void Fail(Call* call, int posix_errno);
  // Whether the channel makes its connections (dial or credentials) and
  // replaces them when they fail, rather than leaving it to gRPC.
  bool RemakesConnections() const {
    return options_.dial != nullptr || options_.credentials != nullptr;
  }
  // A new connection by `dial` or with new `credentials`.
  absl::StatusOr<std::shared_ptr<Connection>> Connect();
  // The one connection of a plain TCP mount, which gRPC itself remakes.
  std::shared_ptr<Connection> InsecureTcpConnection();
  // The current connection if it still works; else null, and (with a
  // dialer) the dial thread is woken.
  std::shared_ptr<Connection> LiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DialLoop();

  const Options options_;
  // The backend serves Session (InitReply.serves_session), and its
  // streams have not been refused.
  std::atomic<bool> serves_session_{false};
  std::atomic<bool> takes_handles_from_ops_{false};
  // The kernel sees tokens, never the backend's handles (handle_map.h).
  HandleMap handles_;
  HandleReopener reopener_;

  absl::Mutex mu_;
  std::shared_ptr<Connection> conn_ ABSL_GUARDED_BY(mu_);
  // Connections replaced by newer ones. gRPC must never drop a channel's
  // last reference on one of its own threads, so they are released by the
  // dial thread once no call uses them, or by the destructor.
  std::vector<std::shared_ptr<Connection>> retired_ ABSL_GUARDED_BY(mu_);
  // Messages waiting for a connection, and until when.
  std::deque<std::pair<Call*, absl::Time>> waiting_ ABSL_GUARDED_BY(mu_);
  bool want_dial_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_dial_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(50);
  std::string last_dial_error_ ABSL_GUARDED_BY(mu_);
  std::thread dial_thread_;
  // Sole owner of every call in flight. gRPC's callback holds a plain
  // pointer: a call (and its ClientContext, which references the channel)
  // must never outlive WaitIdle().
  absl::flat_hash_map<Call*, std::unique_ptr<Call>> in_flight_
      ABSL_GUARDED_BY(mu_);
  int cancelling_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Call>> finished_while_cancelling_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_H_
