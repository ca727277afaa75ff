#include "daemon/fuse/kernel_request.h"
#include "common/log_line.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace fusehost {

KernelRequest::~KernelRequest() {
  if (!replied_.load()) {
    Log("BUG: a %s request was dropped without a reply",
            KernelOpName(op_));
    abort();
  }
}

void KernelRequest::Finish(int posix_errno) {
  if (replied_.exchange(true)) {
    Log("BUG: a second reply to a %s request",
            KernelOpName(op_));
    abort();
  }
  if (stats_ != nullptr) {
    stats_->RecordRequest(op_, absl::Now() - arrival_, posix_errno);
  }
}

void KernelRequest::ReplyError(int posix_errno) {
  Finish(posix_errno);
  SendError(posix_errno);
}

void KernelRequest::ReplyNone() {
  Finish(0);
  SendNone();
}

bool KernelRequest::ReplyEntry(const KernelEntry& entry) {
  Finish(entry.node == 0 ? ENOENT : 0);
  return SendEntry(entry) == 0;
}

void KernelRequest::ReplyAttr(const struct stat& attr, double timeout) {
  Finish(0);
  SendAttr(attr, timeout);
}

void KernelRequest::ReplyReadlink(const std::string& target) {
  Finish(0);
  SendReadlink(target);
}

bool KernelRequest::ReplyOpen(const KernelOpenReply& open) {
  Finish(0);
  return SendOpen(open) == 0;
}

bool KernelRequest::ReplyCreate(const KernelEntry& entry,
                                const KernelOpenReply& open) {
  Finish(0);
  return SendCreate(entry, open) == 0;
}

void KernelRequest::ReplyData(absl::string_view data) {
  Finish(0);
  SendData(data);
}

void KernelRequest::ReplyWritten(size_t count) {
  Finish(0);
  SendWritten(count);
}

void KernelRequest::ReplyStatfs(const struct statvfs& st) {
  Finish(0);
  SendStatfs(st);
}

void KernelRequest::ReplyXattrSize(size_t size) {
  Finish(0);
  SendXattrSize(size);
}

void KernelRequest::ReplyLock(const struct flock& lock) {
  Finish(0);
  SendLock(lock);
}

void KernelRequest::ReplyLseek(off_t offset) {
  Finish(0);
  SendLseek(offset);
}

}  // namespace fusehost
