#include "daemon/pipeline/handle_reopener.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log_line.h"

namespace fusehost {
namespace {

// Errnos that say the backend could not be asked, not that it refused.
bool BackendAway(int posix_errno) {
  return posix_errno == ENOTCONN || posix_errno == ETIMEDOUT ||
         posix_errno == ECANCELED;
}

// The new handle in a reopen's result; false when the backend sent none.
bool NewHandle(const v1::OpResult& r, uint64_t* fh) {
  if (r.has_open()) {
    *fh = r.open().fh();
    return true;
  }
  if (r.has_opendir()) {
    *fh = r.opendir().fh();
    return true;
  }
  return false;
}

}  // namespace

HandleReopener::HandleReopener(HandleMap* handles, SendOpen send_open,
                               Resend resend, std::string log_name)
    : handles_(handles),
      send_open_(std::move(send_open)),
      resend_(std::move(resend)),
      log_name_(std::move(log_name)) {}

void HandleReopener::Hold(uint64_t token, const std::string& path,
                          RoutedOp op) {
  if (++op.reroutes > kMaxReroutes) {
    std::vector<RoutedOp> one;
    one.push_back(std::move(op));
    FailAll(std::move(one), EIO);
    return;
  }
  if (path.empty()) {
    // The file lost its name while open: nothing can name it to the new
    // backend.
    handles_->Lose(token, ESTALE);
    Log("%s: an open file unlinked before the backend had it open (it "
        "restarted, or the daemon opened the file) cannot be reopened there; "
        "its descriptors fail with ESTALE",
        log_name_.c_str());
    std::vector<RoutedOp> one;
    one.push_back(std::move(op));
    FailAll(std::move(one), ESTALE);
    return;
  }
  const int64_t deadline = op.pending.op.deadline_unix_ms();
  {
    absl::MutexLock lock(&mu_);
    std::vector<RoutedOp>& waiting = held_[token];
    waiting.push_back(std::move(op));
    if (waiting.size() > 1) return;  // its reopen is on its way
  }
  v1::Op reopen;
  if (!handles_->ReopenOp(token, path, deadline, &reopen)) {
    // Released meanwhile: the held ops find the token gone (EBADF).
    std::vector<RoutedOp> ops;
    {
      absl::MutexLock lock(&mu_);
      ops = std::move(held_[token]);
      held_.erase(token);
    }
    resend_(std::move(ops));
    return;
  }
  send_open_(std::move(reopen),
             [this, token, path](const v1::OpResult& r, uint64_t instance) {
               Finished(token, path, r, instance);
             });
}

void HandleReopener::Finished(uint64_t token, const std::string& path,
                              const v1::OpResult& r, uint64_t instance) {
  std::vector<RoutedOp> ops;
  {
    absl::MutexLock lock(&mu_);
    ops = std::move(held_[token]);
    held_.erase(token);
  }
  uint64_t fh = 0;
  if (r.posix_errno() == 0 && NewHandle(r, &fh)) {
    handles_->Reopened(token, fh, instance);
    resend_(std::move(ops));
    return;
  }
  const int err = r.posix_errno() == 0 ? EIO : r.posix_errno();
  if (BackendAway(err)) {
    FailAll(std::move(ops), err);
    return;
  }
  const int lost = err == ENOENT || err == ENOTDIR ? ESTALE : EIO;
  handles_->Lose(token, lost);
  Log("%s: an open file could not be opened again at the backend, at %s "
      "(%s); its descriptors fail with %s",
      log_name_.c_str(), path.c_str(), std::strerror(err),
      lost == ESTALE ? "ESTALE" : "EIO");
  FailAll(std::move(ops), lost);
}

void HandleReopener::FailAll(std::vector<RoutedOp> ops, int posix_errno) {
  for (RoutedOp& r : ops) {
    v1::OpResult failed = ErrorResult(r.pending.op.id(), posix_errno);
    if (r.pending.check) r.pending.check(&failed);
    r.pending.done(failed);
  }
}

}  // namespace fusehost
