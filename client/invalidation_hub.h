// Fan-out of a FileSystem's invalidation notices (FileSystem::Notify*) to
// the open Invalidations streams: each stream has its own bounded queue,
// filled by whichever thread calls Notify* and drained by the gRPC handler
// thread that writes the stream.
//
// Why a queue per stream rather than writing from the notifying thread:
// Notify* may be called from inside an operation, and a gRPC write can block
// on flow control for as long as the daemon does not read. Queues keep
// notifying cheap and never blocking; their bound keeps a stalled daemon from
// costing unbounded memory.
//
// Internal to the SDK; backends use filesystem.h only.

#ifndef FUSE_HOSTD_CLIENT_INVALIDATION_HUB_H_
#define FUSE_HOSTD_CLIENT_INVALIDATION_HUB_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// Thread use: Publish and Subscribe may be called from any thread at any
// time. Every Subscription must be destroyed before the hub.
class InvalidationHub {
 public:
  // How many notices a stream may have waiting before its queue is replaced
  // by a single SUBTREE("/") notice.
  static constexpr size_t kDefaultMaxQueued =
      v1::LIMIT_MAX_QUEUED_INVALIDATIONS;

  class Subscription;

  InvalidationHub() = default;
  ~InvalidationHub();

  InvalidationHub(const InvalidationHub&) = delete;
  InvalidationHub& operator=(const InvalidationHub&) = delete;

  // Queues the notice on every open subscription; with none open it is
  // dropped. Never blocks beyond the hub's short critical section.
  void Publish(v1::Invalidation::Kind kind, const std::string& path);
  // The same, but for the subscriptions of mount `mount_id`.
  void PublishExcept(uint64_t mount_id, v1::Invalidation::Kind kind,
                     const std::string& path);

  // Starts receiving, for the stream of mount `mount_id`, every notice
  // published from now on that is not meant for other mounts only, until
  // the returned subscription is destroyed. At most `max_queued` (at least
  // 1) notices wait in its queue.
  std::unique_ptr<Subscription> Subscribe(
      uint64_t mount_id, size_t max_queued = kDefaultMaxQueued);

 private:
  // One mutex for the hub and all its queues: publishing touches every
  // queue anyway, and critical sections are a few string copies.
  absl::Mutex mu_;
  absl::flat_hash_set<Subscription*> subscriptions_ ABSL_GUARDED_BY(mu_);
};

// One stream's queue.
//
// Thread use: Take from one thread at a time (the stream's writer); Close
// from any thread. Nothing may run concurrently with the destructor, which
// unsubscribes.
class InvalidationHub::Subscription {
 public:
  ~Subscription();

  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Waits at most `timeout` until notices are queued or the subscription is
  // closed, then moves the queued notices, oldest first, into `*out` (which
  // is cleared first; it stays empty on timeout). Returns false once the
  // subscription is closed: nothing more will come.
  bool Take(absl::Duration timeout, std::vector<v1::Invalidation>* out);

  // Ends the subscription: Take returns false from now on, at once, also
  // when it is waiting already. Notices still queued are dropped.
  void Close();

 private:
  friend class InvalidationHub;

  Subscription(InvalidationHub& hub, uint64_t mount_id, size_t max_queued);

  // Appends a notice, or collapses the queue when it is full.
  void Push(v1::Invalidation::Kind kind, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_.mu_);

  InvalidationHub& hub_;
  const uint64_t mount_id_;
  const size_t max_queued_;
  std::vector<v1::Invalidation> queue_ ABSL_GUARDED_BY(hub_.mu_);
  // The queue holds nothing but SUBTREE("/") after an overflow: later
  // notices are covered by it until the writer takes it.
  bool collapsed_ ABSL_GUARDED_BY(hub_.mu_) = false;
  bool closed_ ABSL_GUARDED_BY(hub_.mu_) = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_INVALIDATION_HUB_H_
