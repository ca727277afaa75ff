#include "daemon/passthrough/session_io.h"

#include <unistd.h>

#include <cstring>

namespace fusehost {
namespace {

// The scope of the reply this thread is about to write, if any.
thread_local OpenPatchScope* current_scope = nullptr;

// Replies the patcher may change are all this small (INIT: 80 bytes,
// CREATE: 160); larger ones are written as they are, without a copy.
constexpr size_t kPatchableSize = 256;

}  // namespace

OpenPatchScope::OpenPatchScope(int32_t backing_id)
    : backing_id_(backing_id), outer_(current_scope) {
  current_scope = this;
}

OpenPatchScope::~OpenPatchScope() { current_scope = outer_; }

ssize_t ReadKernelRequest(ReplyPatcher* patcher, int fd, void* buf,
                          size_t len) {
  ssize_t n = read(fd, buf, len);
  if (n > 0) patcher->SawRequest(buf, static_cast<size_t>(n));
  return n;
}

ssize_t WriteKernelReply(ReplyPatcher* patcher, int fd,
                         const struct iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (total > kPatchableSize) return writev(fd, iov, count);
  char reply[kPatchableSize];
  size_t at = 0;
  for (int i = 0; i < count; ++i) {
    std::memcpy(reply + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  OpenPatchScope* scope = current_scope;
  int32_t backing_id = 0;
  if (scope != nullptr && scope->outcome_ == ReplyPatcher::Outcome::kUntouched) {
    backing_id = scope->backing_id_;
  }
  ReplyPatcher::Outcome outcome =
      patcher->PatchReply(reply, total, backing_id);
  if (backing_id > 0) scope->outcome_ = outcome;
  return write(fd, reply, total);
}

}  // namespace fusehost
