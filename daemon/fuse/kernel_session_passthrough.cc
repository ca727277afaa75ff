// Kernel passthrough in the session: the reply patcher and the backing
// files, and the session's own reads and writes of /dev/fuse that let the
// patcher see every request and reply (see daemon/passthrough).

#include <fuse3/fuse_lowlevel.h>

#include "common/log_line.h"
#include "daemon/fuse/kernel_session.h"
#include "daemon/passthrough/session_io.h"

namespace fusehost {

// Passthrough needs the session's own reads and writes of the device.
std::unique_ptr<ReplyPatcher> KernelSession::MakePassthroughPatcher(
    const Options& o) {
  if (o.passthrough_inbox == nullptr) return nullptr;
  return std::make_unique<ReplyPatcher>(/*offer=*/true);
}

std::unique_ptr<BackingFiles> KernelSession::MakeBackingFiles(
    const Options& o, ReplyPatcher* patcher) {
  if (patcher == nullptr) return nullptr;
  BackingFiles::Options b;
  b.fuse_fd = o.fuse_fd;
  b.kernel_enabled = [patcher] { return patcher->enabled(); };
  b.log_name = o.log_name;
  return std::make_unique<BackingFiles>(std::move(b));
}

ssize_t KernelSession::ReadDevice(int fd, void* buf, size_t len,
                                  void* userdata) {
  auto* self = static_cast<KernelSession*>(userdata);
  return ReadKernelRequest(self->patcher_.get(), fd, buf, len);
}

ssize_t KernelSession::WriteDevice(int fd, struct iovec* iov, int count,
                                   void* userdata) {
  auto* self = static_cast<KernelSession*>(userdata);
  return WriteKernelReply(self->patcher_.get(), fd, iov, count);
}

void KernelSession::TakeOverDeviceIo() {
  if (patcher_ == nullptr) return;
  // Same descriptor; libfuse now reads and writes it through us.
  struct fuse_custom_io io = {};
  io.read = ReadDevice;
  io.writev = WriteDevice;
  if (fuse_session_custom_io(session_, &io, options_.fuse_fd) != 0) {
    // The patcher never sees the INIT reply: passthrough stays off.
    Log("%s: cannot take over the session's device i/o: file data is "
        "forwarded",
        options_.log_name);
  }
}

void KernelSession::ReportPassthrough() {
  if (patcher_ == nullptr) return;
  if (!patcher_->kernel_offered()) {
    Log("%s: the kernel offers no passthrough: file data is forwarded",
        options_.log_name);
  } else if (!patcher_->enabled()) {
    Log("%s: passthrough not enabled at INIT: file data is forwarded",
        options_.log_name);
  }
}

uint64_t KernelSession::passthrough_opens() const {
  return backing_ ? backing_->passed_through() : 0;
}

uint64_t KernelSession::passthrough_refused() const {
  return backing_ ? backing_->refused() : 0;
}

size_t KernelSession::backing_ids() const {
  return backing_ ? backing_->registered() : 0;
}

}  // namespace fusehost
