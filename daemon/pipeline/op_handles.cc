#include "daemon/pipeline/op_handles.h"

namespace fusehost {
namespace {

// Every request with a handle, as (field accessor) pairs. Requests whose
// handle is optional report none when it is not set; a readdir reports none
// for handle 0 (a backend that lists by path, InitReply.lists_by_path, gets
// readdirs no opendir came before).
#define FUSE_HOSTD_EACH_HANDLE_OP(X) \
  X(kRead, read)                     \
  X(kWrite, write)                   \
  X(kFlush, flush)                   \
  X(kRelease, release)               \
  X(kFsync, fsync)                   \
  X(kReleasedir, releasedir)         \
  X(kFsyncdir, fsyncdir)             \
  X(kLock, lock)                     \
  X(kFlock, flock)                   \
  X(kFallocate, fallocate)           \
  X(kLseek, lseek)
#define FUSE_HOSTD_EACH_OPTIONAL_HANDLE_OP(X) \
  X(kGetattr, getattr)                        \
  X(kChmod, chmod)                            \
  X(kChown, chown)                            \
  X(kTruncate, truncate)                      \
  X(kUtimens, utimens)                        \
  X(kIoctl, ioctl)
#define FUSE_HOSTD_EACH_ZERO_IS_NONE_HANDLE_OP(X) \
  X(kReaddir, readdir)

const std::string& NoPath() {
  static const std::string* const empty = new std::string();
  return *empty;
}

}  // namespace

OpHandles HandlesOf(const v1::Op& op) {
  OpHandles h;
  switch (op.op_case()) {
#define FUSE_HOSTD_READ(kind, req) \
  case v1::Op::kind:               \
    h.fh[0] = op.req().fh();       \
    h.count = 1;                   \
    break;
#define FUSE_HOSTD_READ_OPTIONAL(kind, req) \
  case v1::Op::kind:                        \
    if (op.req().has_fh()) {                \
      h.fh[0] = op.req().fh();              \
      h.count = 1;                          \
    }                                       \
    break;
#define FUSE_HOSTD_READ_NONZERO(kind, req) \
  case v1::Op::kind:                       \
    if (op.req().fh() != 0) {              \
      h.fh[0] = op.req().fh();             \
      h.count = 1;                         \
    }                                      \
    break;
    FUSE_HOSTD_EACH_HANDLE_OP(FUSE_HOSTD_READ)
    FUSE_HOSTD_EACH_OPTIONAL_HANDLE_OP(FUSE_HOSTD_READ_OPTIONAL)
    FUSE_HOSTD_EACH_ZERO_IS_NONE_HANDLE_OP(FUSE_HOSTD_READ_NONZERO)
#undef FUSE_HOSTD_READ
#undef FUSE_HOSTD_READ_OPTIONAL
#undef FUSE_HOSTD_READ_NONZERO
    case v1::Op::kCopyFileRange:
      h.fh[0] = op.copy_file_range().fh_in();
      h.fh[1] = op.copy_file_range().fh_out();
      h.count = 2;
      break;
    default:
      break;
  }
  return h;
}

void SetHandles(v1::Op* op, const OpHandles& h) {
  if (h.count == 0) return;
  switch (op->op_case()) {
#define FUSE_HOSTD_WRITE(kind, req)           \
  case v1::Op::kind:                          \
    op->mutable_##req()->set_fh(h.fh[0]);     \
    break;
    FUSE_HOSTD_EACH_HANDLE_OP(FUSE_HOSTD_WRITE)
    FUSE_HOSTD_EACH_OPTIONAL_HANDLE_OP(FUSE_HOSTD_WRITE)
    FUSE_HOSTD_EACH_ZERO_IS_NONE_HANDLE_OP(FUSE_HOSTD_WRITE)
#undef FUSE_HOSTD_WRITE
    case v1::Op::kCopyFileRange:
      op->mutable_copy_file_range()->set_fh_in(h.fh[0]);
      op->mutable_copy_file_range()->set_fh_out(h.fh[1]);
      break;
    default:
      break;
  }
}

const std::string& HandlePathOf(const v1::Op& op, int i) {
  switch (op.op_case()) {
#define FUSE_HOSTD_PATH(kind, req) \
  case v1::Op::kind:               \
    return op.req().path();
    FUSE_HOSTD_EACH_HANDLE_OP(FUSE_HOSTD_PATH)
    FUSE_HOSTD_EACH_OPTIONAL_HANDLE_OP(FUSE_HOSTD_PATH)
    FUSE_HOSTD_EACH_ZERO_IS_NONE_HANDLE_OP(FUSE_HOSTD_PATH)
#undef FUSE_HOSTD_PATH
    case v1::Op::kCopyFileRange:
      return i == 0 ? op.copy_file_range().path_in()
                    : op.copy_file_range().path_out();
    default:
      return NoPath();
  }
}

bool EndsHandle(const v1::Op& op) {
  return op.has_release() || op.has_releasedir();
}

#undef FUSE_HOSTD_EACH_HANDLE_OP
#undef FUSE_HOSTD_EACH_OPTIONAL_HANDLE_OP
#undef FUSE_HOSTD_EACH_ZERO_IS_NONE_HANDLE_OP

}  // namespace fusehost
