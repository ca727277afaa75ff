#include "daemon/passthrough/session_io.h"

#include <unistd.h>

#include <cstring>

namespace fusehost {
namespace {

// The scope of the reply this thread is about to write, if any.
thread_local OpenPatchScope* current_scope = nullptr;

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
  char reply[kPatchableReplySize];
  size_t size = 0;
  if (!PatchKernelReply(patcher, iov, count, reply, &size)) {
    return writev(fd, iov, count);
  }
  return write(fd, reply, size);
}

bool PatchKernelReply(ReplyPatcher* patcher, const struct iovec* iov,
                      int count, char (&reply)[kPatchableReplySize],
                      size_t* size) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (total > kPatchableReplySize) return false;
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
  *size = total;
  return true;
}

}  // namespace fusehost
