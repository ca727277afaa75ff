// The daemon's side of the keeper (keeper.h): hands it descriptors to keep
// across a crash of the daemon, and takes back what it kept for the
// previous daemon (keeper_protocol.h).
//
// Each call sends one request and waits for its reply, at most
// `reply_timeout` in all (DeadlineExceeded). A call that times out or
// meets a reply it cannot place leaves the connection out of step (a late
// reply would be read as the next call's), so the client closes it and
// every later call fails with Unavailable: the mounts go on, they only no
// longer survive a crash.
//
// Thread-safe: calls are serialized.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_CLIENT_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/survival/descriptor_store.h"
#include "daemon/survival/keeper_protocol.h"

namespace fusehost {

class KeeperClient : public DescriptorStore {
 public:
  static constexpr absl::Duration kReplyTimeout = absl::Seconds(5);

  // The keeper's socket from the environment variable FUSE_HOSTD_KEEPER_FD
  // (set by the keeper); null when the daemon was not started by a keeper.
  // Unsets the variable and sets FD_CLOEXEC on the descriptor, so that
  // nothing the daemon starts inherits it. Changes the environment: call it
  // before the daemon starts threads.
  static std::unique_ptr<KeeperClient> FromEnvironment();

  explicit KeeperClient(UniqueFd socket,
                        absl::Duration reply_timeout = kReplyTimeout);

  KeeperClient(const KeeperClient&) = delete;
  KeeperClient& operator=(const KeeperClient&) = delete;

  // Has the keeper keep 1..8 descriptors under `key` (1..64 characters
  // of [A-Za-z0-9._-]), replacing what it kept there. The caller keeps
  // its `fds`: the keeper gets copies.
  absl::Status Put(const std::string& key,
                   const std::vector<int>& fds) override;

  // Has the keeper close what it keeps under `key` (OK if nothing).
  absl::Status Remove(const std::string& key) override;

  // Tells the keeper the daemon serves: should it crash now, it is
  // restarted at once (a daemon that dies before this is restarted ever
  // more slowly: it may be one that cannot start).
  absl::Status Ready();

  using Entry = DescriptorStore::Entry;
  // Everything the keeper keeps, in key order, as copies: the keeper keeps
  // its own until they are replaced or removed.
  absl::StatusOr<std::vector<Entry>> TakeAll() override;

 private:
  using Deadline = std::chrono::steady_clock::time_point;

  // Sends a request and reads the OK or ERR that answers it.
  absl::Status Call(const std::string& header, const std::vector<int>& fds);
  // Send and receive on the connection while it is usable; a failure
  // closes it.
  absl::Status SendRequest(const std::string& header,
                           const std::vector<int>& fds, Deadline deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<KeeperMessage> ReceiveReply(Deadline deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the connection for good; returns `why` as the call's error.
  absl::Status Break(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration reply_timeout_;
  absl::Mutex mu_;
  UniqueFd socket_ ABSL_GUARDED_BY(mu_);
  // Why the connection was closed; OK while it is open.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_CLIENT_H_
