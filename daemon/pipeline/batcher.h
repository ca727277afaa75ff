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
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_

#include <cstddef>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class Batcher : public OpTransport {
 public:
  struct Options {
    int max_in_flight = 4;
    int max_ops = 64;
    // Payload bytes (write data) per message, so that big writes do not
    // wait behind each other in one message.
    size_t max_bytes = 4 << 20;
  };

  // `sink` must outlive the batcher; `transport` is the same object seen as
  // an OpTransport, for cancellation.
  Batcher(Options options, BatchSink* sink, OpTransport* transport);

  void Send(v1::Op op, Done done) override;
  void SendAll(std::vector<PendingOp> ops) override;
  // One message, however many ops (the caller keeps it to max_ops).
  void SendInOrder(std::vector<PendingOp> ops) override;
  void CancelAll() override;
  void WaitIdle() override;

 private:
  // Takes queued ops for one message; sends it if any. Called without mu_.
  void SendQueued();
  void MessageDone();

  const Options options_;
  BatchSink* const sink_;
  OpTransport* const transport_;
  absl::Mutex mu_;
  std::deque<PendingOp> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BATCHER_H_
