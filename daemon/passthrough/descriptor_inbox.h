// Where a mount's backend hands the daemon descriptors of the files it
// opened (gRPC cannot carry descriptors; a Unix socket can, SCM_RIGHTS).
//
// The daemon listens on a SOCK_SEQPACKET socket of its own, one per mount,
// and names it in InitRequest.passthrough_socket. Each message is the
// 8-byte tag of the open it belongs to (the daemon's passthrough_tag) with
// exactly one descriptor attached, sent before the open's reply; so by the
// time the daemon reads that reply the descriptor is already queued and
// Take() finds it without waiting.
//
// Who may send: the socket is reachable by anyone (a backend of any user
// must connect), so each connection is checked when accepted: its peer
// (SO_PEERCRED) must pass `is_backend`, which the mount answers with the
// process serving it over gRPC. Connections that fail are closed unread.
// Messages of another shape (no descriptor, several, a short tag) are
// dropped with whatever they carried. Descriptors never taken are kept up
// to a bound, oldest closed first, and all are closed with the inbox.
//
// Nothing here blocks: the sockets are non-blocking and drained on demand.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_INBOX_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_INBOX_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"
#include "daemon/sockets/peer_credentials.h"

namespace fusehost {

class DescriptorInbox {
 public:
  struct Options {
    std::string socket_path;  // absolute; replaced if it exists
    std::function<bool(const PeerCredentials&)> is_backend;
    // Descriptors that may wait for their open's reply.
    size_t max_waiting = 64;
    std::string log_name;  // the mountpoint, for log lines
  };

  static absl::StatusOr<std::unique_ptr<DescriptorInbox>> Create(
      Options options);
  ~DescriptorInbox();  // closes everything and removes the socket

  const std::string& socket_path() const { return options_.socket_path; }

  // The descriptor sent for `tag`, if it has arrived (else invalid), and
  // with `sender` set to who sent it.
  UniqueFd Take(uint64_t tag, PeerCredentials* sender = nullptr);

  // Keeps `fd`, a file the daemon opened itself for an open it answers
  // (a create beneath a loopback's root, changes_by_daemon.h), for Take as
  // if the backend had sent it; the daemon is its sender.
  void Put(uint64_t tag, UniqueFd fd);

  // Connections refused because their peer was not the backend.
  uint64_t refused_peers() const;
  // Descriptors closed unused: malformed messages, never taken.
  uint64_t dropped() const;

 private:
  explicit DescriptorInbox(Options options) : options_(std::move(options)) {}
  void AcceptPending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads every queued message of a connection; false once the peer is
  // gone.
  struct Connection {
    UniqueFd fd;
    std::shared_ptr<const PeerCredentials> peer;
  };
  struct Waiting {
    UniqueFd fd;
    std::shared_ptr<const PeerCredentials> sender;
  };
  bool Drain(const Connection& conn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Keep(uint64_t tag, Waiting w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  UniqueFd listener_;
  mutable absl::Mutex mu_;
  std::vector<Connection> connections_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> arrival_order_ ABSL_GUARDED_BY(mu_);
  uint64_t refused_peers_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_DESCRIPTOR_INBOX_H_
