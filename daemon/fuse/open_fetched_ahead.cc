// Read-only opens answered with contents fetched ahead (contents_ahead.h):
// the open costs no message, its first read is answered from the contents,
// and the backend opens the file only if an operation ever needs its handle
// (HandleMap::IssueUnopened), as for opens beneath a loopback backend's root
// directory (open_by_daemon.cc).

#include "daemon/fuse/request_handlers.h"

namespace fusehost {

ContentsAhead::Options RequestHandlers::ContentsAheadOptions(
    RequestHandlers* self) {
  const Options& o = self->options_;
  ContentsAhead::Options c;
  // With passthrough the kernel reads a local backend's files itself.
  if (o.handles != nullptr && o.backing == nullptr) {
    c.files = o.contents_ahead_files;
  }
  c.max_age = o.contents_ahead_max_age;
  c.coherence = o.coherence;
  c.send_all = [self](std::vector<PendingOp> ops) {
    self->SendAll(std::move(ops));
  };
  return c;
}

bool RequestHandlers::OpenFetchedAhead(const Request& req, uint64_t node,
                                       int flags, const std::string& path,
                                       bool may_wait,
                                       const v1::Caller& caller) {
  if (!contents_ahead_.enabled() || !PlainReadOnly(flags)) return false;
  ContentsAhead::Fetched fetched;
  if (!contents_ahead_.Take(path, caller, &fetched)) {
    if (!may_wait) return false;
    return contents_ahead_.AwaitInFlight(path, [this, req, node, flags, path] {
      OpenAtBackend(req, node, flags, path, /*may_wait=*/false);
    });
  }
  // Before the reply: the reader may open the next file at once.
  std::vector<PendingOp> window =
      contents_ahead_.Opened(path, caller, /*answered=*/true);
  // noflush as the backend's own read-only open said; without it, a flush
  // of the handle is still answered here while no lock was ever asked for
  // (HandleMap::FlushesHere).
  KernelOpenReply open = OpenReplyOf(fetched.reply);
  open.fh = options_.handles->IssueUnopened(flags, caller);
  options_.nodes->AddOpenHandle(node, open.fh);
  // Kept before the reply: the kernel's first read follows it.
  open_contents_.Keep(open.fh, node, std::move(fetched.data));
  if (!req->ReplyOpen(open)) {
    open_contents_.ForgetHandle(open.fh);
    options_.nodes->RemoveOpenHandle(node, open.fh);
    ReleaseOrphan(path, open.fh, flags);
  }
  if (!window.empty()) SendAll(std::move(window));
  return true;
}

}  // namespace fusehost
