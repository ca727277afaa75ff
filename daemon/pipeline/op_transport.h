// The seam between the daemon's layers: something that runs path operations
// on a backend and reports each result exactly once. The kernel adapter
// sends through it; the metadata cache, the batcher and the backend channel
// each implement it, stacked (see mount.cc).
//
// Implementations are thread-safe. `done` may run on any thread, including
// inside Send() itself (a cache hit).

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_OP_TRANSPORT_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_OP_TRANSPORT_H_

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "proto/filesystem.pb.h"

namespace fusehost {

// An op waiting to be sent, with its completion.
struct PendingOp {
  v1::Op op;
  // Called exactly once with the op's result; on transport failure the
  // result carries the mapped errno.
  std::function<void(const v1::OpResult&)> done;
  // If set, run on the op's result, in place, just before `done`, by the
  // layer that produces the result (the backend channel): the reply
  // validator's checks, without copying a read's data to make them.
  std::function<void(v1::OpResult*)> check;
  // A create the daemon answered early (write_behind) with this handle
  // token: in the same in-order message, later ops that carry the token
  // can name the create's handle by the create (Op.fh_from_op).
  uint64_t creates_token = 0;
};

class OpTransport {
 public:
  using Done = std::function<void(const v1::OpResult&)>;

  virtual ~OpTransport() = default;
  virtual void Send(v1::Op op, Done done) = 0;
  // Sends ops that belong together (the attributes of every name of a
  // listing page): a layer that can puts them in as few backend messages as
  // it may, instead of one each. Each `done` still runs exactly once.
  virtual void SendAll(std::vector<PendingOp> ops) {
    for (PendingOp& p : ops) Send(std::move(p.op), std::move(p.done));
  }
  // Sends ops that the backend must run one after the other, in this order
  // (changes answered early, which may act on the same file). A layer that
  // can sends them as one message the backend runs in order; this default
  // sends each once the one before is answered.
  virtual void SendInOrder(std::vector<PendingOp> ops) {
    SendFrom(this, std::make_shared<std::vector<PendingOp>>(std::move(ops)),
             0);
  }
  // Cancels every op in flight: their callbacks run soon with ECANCELED.
  virtual void CancelAll() = 0;
  // Blocks until no op is in flight.
  virtual void WaitIdle() = 0;

 private:
  static void SendFrom(OpTransport* t,
                       std::shared_ptr<std::vector<PendingOp>> ops, size_t i) {
    if (i == ops->size()) return;
    PendingOp& p = (*ops)[i];
    t->Send(std::move(p.op), [t, ops, i](const v1::OpResult& result) {
      (*ops)[i].done(result);
      SendFrom(t, ops, i + 1);
    });
  }
};

// Where a batcher delivers: sends several ops as one message.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  // `done` of every op runs exactly once; `sent` runs once after all of them
  // (the message is finished). `in_order`: the backend runs them one after
  // the other (Batch.in_order).
  virtual void SendBatch(std::vector<PendingOp> ops, std::function<void()> sent,
                         bool in_order) = 0;
};

// A result carrying only an errno.
inline v1::OpResult ErrorResult(uint64_t op_id, int posix_errno) {
  v1::OpResult result;
  result.set_id(op_id);
  result.set_posix_errno(posix_errno);
  return result;
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_OP_TRANSPORT_H_
