// The session's own reads and writes of /dev/fuse, and what they are for:
// passthrough (the reply patcher sees every request and reply, see
// daemon/passthrough), a new connection's INIT recorded and a resumed
// one's replayed, and the hand-over to a new daemon (see daemon/survival).

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <unistd.h>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
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
  b.on_change = o.on_backing_change;
  auto backing = std::make_unique<BackingFiles>(std::move(b));
  if (!o.resume_init.empty()) InheritOpens(o, backing.get());
  return backing;
}

void KernelSession::InheritOpens(const Options& o, BackingFiles* backing) {
  if (o.nodes == nullptr) return;
  // Whether each inherited open may write; unknown tokens are taken as
  // writers (their cached attributes are then not trusted).
  absl::flat_hash_map<uint64_t, bool> writable;
  if (o.handles != nullptr) {
    o.handles->Snapshot([&writable](uint64_t, uint64_t,
                                    const std::vector<HandleMap::Saved>& all) {
      for (const HandleMap::Saved& t : all) {
        if (!t.dir) writable[t.token] = (t.flags & O_ACCMODE) != O_RDONLY;
      }
    });
  }
  absl::flat_hash_map<uint64_t, std::vector<BackingFiles::InheritedOpen>> opens;
  o.nodes->Snapshot([&](const std::vector<NodeTable::Saved>& nodes, uint64_t) {
    for (const NodeTable::Saved& n : nodes) {
      for (uint64_t fh : n.open_handles) {
        auto it = writable.find(fh);
        opens[n.id].push_back({fh, it == writable.end() || it->second});
      }
    }
  });
  for (const auto& [node, id] : o.inherited_backing) {
    if (!opens.contains(node)) backing->Inherit(node, id, {});
  }
  for (const auto& [node, list] : opens) {
    auto id = o.inherited_backing.find(node);
    backing->Inherit(node, id == o.inherited_backing.end() ? 0 : id->second,
                     list);
  }
}

ssize_t KernelSession::ReadDevice(int fd, void* buf, size_t len,
                                  void* userdata) {
  auto* self = static_cast<KernelSession*>(userdata);
  ssize_t n;
  if (self->replay_ != nullptr && self->replay_->Take(buf, len, &n)) {
    if (n > 0 && self->patcher_ != nullptr) {
      self->patcher_->SawRequest(buf, static_cast<size_t>(n));
    }
    return n;
  }
  if (self->quiescing_.load()) ParkForHandOver();
  n = self->patcher_ != nullptr
          ? ReadKernelRequest(self->patcher_.get(), fd, buf, len)
          : read(fd, buf, len);
  // Read while handing over: the next daemon gets it again (resend).
  if (self->quiescing_.load()) ParkForHandOver();
  if (n > 0 && !self->init_read_.load(std::memory_order_relaxed) &&
      IsInitRequest(buf, static_cast<size_t>(n)) &&
      !self->init_read_.exchange(true)) {
    self->SawInitForUring(buf, static_cast<size_t>(n));
    if (self->options_.on_init_request) {
      self->options_.on_init_request(
          std::string(static_cast<const char*>(buf), static_cast<size_t>(n)));
    }
  }
  return n;
}

ssize_t KernelSession::WriteDevice(int fd, struct iovec* iov, int count,
                                   void* userdata) {
  auto* self = static_cast<KernelSession*>(userdata);
  if (self->replay_ != nullptr && self->replay_->IsReplyToSaved(iov, count)) {
    return self->DropInitReply(fd, iov, count);
  }
  if (self->IsInitReply(iov, count)) {
    return self->WriteInitReply(fd, iov, count);
  }
  UringQueues* uring = self->uring_live_.load(std::memory_order_acquire);
  if (uring == nullptr) {
    if (self->patcher_ == nullptr) return writev(fd, iov, count);
    return WriteKernelReply(self->patcher_.get(), fd, iov, count);
  }
  // Patched first (passthrough), then committed on the ring the request
  // came from, or written to the device if it came from there.
  char patched[kPatchableReplySize];
  struct iovec one;
  if (self->patcher_ != nullptr &&
      PatchKernelReply(self->patcher_.get(), iov, count, patched,
                       &one.iov_len)) {
    one.iov_base = patched;
    iov = &one;
    count = 1;
  }
  bool taken = false;
  ssize_t n = uring->Reply(iov, count, &taken);
  return taken ? n : writev(fd, iov, count);
}

ssize_t KernelSession::DropInitReply(int fd, const struct iovec* iov,
                                     int count) {
  std::string reply;
  for (int i = 0; i < count; ++i) {
    reply.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  // The patcher learns what the kernel was told at INIT (passthrough on or
  // off): the same options give the same reply as the first daemon's.
  if (patcher_ != nullptr) patcher_->PatchReply(reply.data(), reply.size(), 0);
  absl::Status resent = ResendUnanswered(fd);
  if (!resent.ok()) {
    Log("%s: requests the previous daemon left unanswered wait for their "
        "callers to give up: %s",
        options_.log_name.c_str(), std::string(resent.message()).c_str());
  }
  // Only now may the other threads read: before, libfuse would answer
  // their requests with EIO, and the resend would requeue them.
  replay_->Answered();
  return static_cast<ssize_t>(reply.size());
}

void KernelSession::ParkForHandOver() {
  // The process exits soon; this thread must neither read nor answer.
  for (;;) pause();
}

bool KernelSession::Quiesce(absl::Time deadline) {
  quiescing_.store(true);
  while (live_requests_.load() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

void KernelSession::TakeOverDeviceIo() {
  // Same descriptor; libfuse now reads and writes it through us.
  struct fuse_custom_io io = {};
  io.read = ReadDevice;
  io.writev = WriteDevice;
  if (fuse_session_custom_io(session_, &io, options_.fuse_fd) != 0) {
    // The patcher never sees the INIT reply: passthrough stays off.
    Log("%s: cannot take over the session's device i/o: file data is "
        "forwarded, and the mount cannot outlive the daemon",
        options_.log_name.c_str());
  }
}

void KernelSession::ReportPassthrough() {
  if (patcher_ == nullptr) return;
  if (!patcher_->kernel_offered()) {
    Log("%s: the kernel offers no passthrough: file data is forwarded",
        options_.log_name.c_str());
  } else if (!patcher_->enabled()) {
    Log("%s: passthrough not enabled at INIT: file data is forwarded",
        options_.log_name.c_str());
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

bool KernelSession::WritesThrough(const std::string& path) const {
  if (!backing_ || options_.nodes == nullptr) return false;
  const uint64_t node = options_.nodes->Find(path);
  return node != 0 && backing_->WritablePassthrough(node);
}

}  // namespace fusehost
