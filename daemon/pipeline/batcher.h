// Coalesces concurrent operations of one mount into few backend messages.
//
// Policy (adaptive, no timer): an op goes out at once, alone, while fewer
// than `max_in_flight` messages are outstanding, so a sequential workload
// (find, ls -l) never waits for a batch to fill. Once that many are in
// flight, further ops queue, and each completed message sends everything
// queued (up to `max_ops`/`max_bytes`) as one message. Under load that turns
// N concurrent kernel requests into about N / queue-length messages; at rest
// it costs nothing.
//
// SendAll (ops that belong together, such as the attributes of a listing's
// names) skips the wait: its ops go out at once in messages of `max_ops`,
// beside whatever is in flight.
//
// An op that carries or asks for much data (`alone_bytes`: a large read or
// write) skips it too, in a message of its own outside the limit: such a
// message costs its bytes, not its per-message overhead, so a batch of them
// saves nothing, and each would wait for all of them. With 8 MiB of reads
// ahead, 1 MiB reads waiting for each other in one message made a
// sequential read 2x slower (a read's p99 65 ms).
//
// Listings fetched ahead of a walker (an opendir or readdir without a
// deadline: no kernel request asked for it) have a lane of their own:
// `max_in_flight` messages, in the order asked, the first of a busy spell
// with one listing, each next one with twice as many, up to
// kMaxListingsAheadPerMessage. Sharing the kernel's slots, a walk's
// statfs or lookup waited behind them; a dozen listings put in one message
// kept the walker waiting for all of them to reach the one it entered
// (the backend answers a message whole), while one listing a message
// would take a round trip per few listings behind a slow link.
//
// Releases (of files and directories), which nothing waits for, may be held
// (`hold_releases`): they then ride in the next message that goes out, or
// go alone once held that long. cat or untar of many files then costs one
// message per file where it cost two (the release, then the next open).
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class Batcher : public OpTransport {
 public:
  struct Options {
    int max_in_flight = 4;
    int max_ops = 64;
    // Ops per message of a SendAll; 0: max_ops. A backend that runs a
    // message's ops on one thread asks for more (InitReply.ops_together).
    int max_ops_together = 0;
    // Payload bytes (a write's data, a read's size) per message, so that
    // reads and writes do not wait behind each other in one message.
    size_t max_bytes = 4 << 20;
    // An op with this much payload or more goes out at once, alone, whatever
    // is in flight (not counted against max_in_flight).
    size_t alone_bytes = 256 << 10;
    // How long a release may wait for another message to ride in; zero:
    // sent as any op. Only for backends whose releases have no effect
    // another caller can see at once (no flock locks kept by the backend,
    // which a release unlocks).
    absl::Duration hold_releases = absl::ZeroDuration();
  };

  // Listings fetched ahead per message at most (see above).
  static constexpr size_t kMaxListingsAheadPerMessage = 16;

  // `sink` must outlive the batcher; `transport` is the same object seen as
  // an OpTransport, for cancellation.
  Batcher(Options options, BatchSink* sink, OpTransport* transport);
  ~Batcher() override;

  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  // One message, however many ops (the caller keeps it to max_ops).
  void SendInOrder(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  void WaitIdle() override;

 private:
  // Takes queued ops for one message; sends it if any. Called without mu_.
  void SendQueued();
  // The same for the lane of listings fetched ahead.
  void SendAhead();
  // Numbers `message`'s ops 1..n and hands it to the sink.
  void Deliver(std::vector<PendingOp> message, std::function<void()> sent,
               bool in_order);
  void MessageDone();
  bool Holds(const v1::Op& op) const;
  // Moves held releases to the queue; true if the caller must send it (a
  // message slot was free and is now taken).
  bool UnholdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The timer: sends releases held for `hold_releases`.
  void SendHeldWhenDue();

  const Options options_;
  BatchSink* const sink_;
  OpTransport* const transport_;
  absl::Mutex mu_;
  std::deque<PendingOp> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<PendingOp> ahead_queue_ ABSL_GUARDED_BY(mu_);
  int ahead_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Listings the lane's next message may carry.
  size_t ahead_next_size_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<PendingOp> held_ ABSL_GUARDED_BY(mu_);
  absl::Time held_since_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;  // with hold_releases only
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_
