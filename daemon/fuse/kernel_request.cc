#include "daemon/fuse/kernel_request.h"
#include "common/log_line.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace fusehost {

KernelRequest::~KernelRequest() {
  if (state_.load() == kPending) {
    Log("BUG: a %s request was dropped without a reply", KernelOpName(op_));
    abort();
  }
}

bool KernelRequest::Finish(int posix_errno) {
  int expected = kPending;
  if (!state_.compare_exchange_strong(expected, kAnswered)) {
    if (expected == kInterrupted) return false;
    Log("BUG: a second reply to a %s request", KernelOpName(op_));
    abort();
  }
  if (stats_ != nullptr) {
    stats_->RecordRequest(op_, absl::Now() - arrival_, posix_errno);
  }
  return true;
}

bool KernelRequest::AnswerInterrupt() {
  int expected = kPending;
  if (!state_.compare_exchange_strong(expected, kInterrupted)) return false;
  if (stats_ != nullptr) {
    stats_->RecordRequest(op_, absl::Now() - arrival_, EINTR);
  }
  return true;
}

void KernelRequest::ReplyError(int posix_errno) {
  if (Finish(posix_errno)) SendError(posix_errno);
}

void KernelRequest::ReplyNone() {
  if (Finish(0)) SendNone();
}

bool KernelRequest::ReplyEntry(const KernelEntry& entry) {
  return Finish(entry.node == 0 ? ENOENT : 0) && SendEntry(entry) == 0;
}

void KernelRequest::ReplyAttr(const struct stat& attr, double timeout) {
  if (Finish(0)) SendAttr(attr, timeout);
}

void KernelRequest::ReplyReadlink(const std::string& target) {
  if (Finish(0)) SendReadlink(target);
}

bool KernelRequest::ReplyOpen(const KernelOpenReply& open) {
  return Finish(0) && SendOpen(open) == 0;
}

bool KernelRequest::ReplyCreate(const KernelEntry& entry,
                                const KernelOpenReply& open) {
  return Finish(0) && SendCreate(entry, open) == 0;
}

bool KernelRequest::ReplyData(absl::string_view data) {
  return Finish(0) && SendData(data) == 0;
}

void KernelRequest::ReplyWritten(size_t count) {
  if (Finish(0)) SendWritten(count);
}

void KernelRequest::ReplyStatfs(const struct statvfs& st) {
  if (Finish(0)) SendStatfs(st);
}

void KernelRequest::ReplyXattrSize(size_t size) {
  if (Finish(0)) SendXattrSize(size);
}

void KernelRequest::ReplyLock(const struct flock& lock) {
  if (Finish(0)) SendLock(lock);
}

void KernelRequest::ReplyLseek(off_t offset) {
  if (Finish(0)) SendLseek(offset);
}

void KernelRequest::ReplyIoctl(int result, absl::string_view out) {
  if (Finish(0)) SendIoctl(result, out);
}

}  // namespace fusehost
