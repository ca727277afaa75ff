#include "daemon/survival/init_replay.h"

#include <linux/fuse.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// Not in the headers of every system this builds on (kernel 6.9's
// include/uapi/linux/fuse.h).
constexpr int32_t kNotifyResend = 7;

}  // namespace

bool IsInitRequest(const void* data, size_t size) {
  if (size < sizeof(struct fuse_in_header)) return false;
  struct fuse_in_header h;
  std::memcpy(&h, data, sizeof(h));
  return h.opcode == FUSE_INIT && h.len == size;
}

InitReplay::InitReplay(std::string saved)
    : saved_(std::move(saved)), unique_([this] {
        struct fuse_in_header h = {};
        if (saved_.size() >= sizeof(h)) std::memcpy(&h, saved_.data(), sizeof(h));
        return static_cast<uint64_t>(h.unique);
      }()) {}

bool InitReplay::Take(void* buf, size_t len, ssize_t* n) {
  if (answered_.load(std::memory_order_acquire)) return false;
  if (!taken_.exchange(true)) {
    if (len < saved_.size()) {
      // libfuse ends the session on this error: nothing to wait for.
      Answered();
      *n = -1;
      errno = EINVAL;
      return true;
    }
    std::memcpy(buf, saved_.data(), saved_.size());
    *n = static_cast<ssize_t>(saved_.size());
    return true;
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&answered_locked_));
  return false;
}

void InitReplay::Answered() {
  absl::MutexLock lock(&mu_);
  answered_locked_ = true;
  answered_.store(true, std::memory_order_release);
}

bool InitReplay::IsReplyToSaved(const struct iovec* iov, int count) const {
  struct fuse_out_header h;
  if (count < 1 || iov[0].iov_len < sizeof(h)) return false;
  std::memcpy(&h, iov[0].iov_base, sizeof(h));
  return h.unique == unique_ && unique_ != 0;
}

absl::Status ResendUnanswered(int fuse_fd) {
  struct fuse_out_header h = {};
  h.len = sizeof(h);
  h.error = kNotifyResend;
  h.unique = 0;
  if (write(fuse_fd, &h, sizeof(h)) != static_cast<ssize_t>(sizeof(h))) {
    return absl::InternalError(
        absl::StrCat("FUSE_NOTIFY_RESEND: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace fusehost
