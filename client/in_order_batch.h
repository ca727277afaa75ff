// Running a batch's ops one after the other (Batch.in_order), where an op
// may act on the handle an earlier op of the same batch returned
// (Op.fh_from_op): the daemon sends a create it answered early together
// with the writes and the release of the new file, before it knows the
// handle the create will bring.

#ifndef FUSE_HOSTD_CLIENT_IN_ORDER_BATCH_H_
#define FUSE_HOSTD_CLIENT_IN_ORDER_BATCH_H_

#include <vector>

#include "client/op_dispatcher.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// Runs ops `indexes` of `batch` in that order, each result into the slot of
// `reply` at the same index. An op with fh_from_op runs with the handle the
// named earlier op's result carried (a create's or an open's); it fails
// with EBADF if that op failed, came later, or is not in the batch, or if
// the op has no `fh` to fill in.
void RunInOrder(const OpDispatcher& dispatcher, const v1::Batch& batch,
                const std::vector<int>& indexes, v1::BatchResult* reply);

// `op` with `fh` as the handle of its request and fh_from_op cleared, in
// `out`; false if its request has no `fh` field.
bool WithHandle(const v1::Op& op, uint64_t fh, v1::Op* out);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_IN_ORDER_BATCH_H_
