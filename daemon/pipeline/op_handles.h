// Which file or directory handles an op carries, read and rewritten in one
// place: the handle map turns them from tokens into the backend's handles
// and back, and a handle that must be reopened is reopened by the path the
// op names it by.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_OP_HANDLES_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_OP_HANDLES_H_

#include <cstdint>
#include <string>

#include "proto/filesystem.pb.h"

namespace fusehost {

// The handle fields of an op, in order: `fh`, or `fh_in` and `fh_out` of
// copy_file_range. An optional `fh` that is not set is not counted.
struct OpHandles {
  uint64_t fh[2] = {0, 0};
  int count = 0;
};

OpHandles HandlesOf(const v1::Op& op);

// Writes `handles` back into the fields HandlesOf read them from.
void SetHandles(v1::Op* op, const OpHandles& handles);

// The path the op names the file of handle `i` by ("" when the file has no
// name any more: it was unlinked while open).
const std::string& HandlePathOf(const v1::Op& op, int i);

// A release or releasedir: the handle ends with the op.
bool EndsHandle(const v1::Op& op);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_OP_HANDLES_H_
