// Open files: open and create, data, syncing, locks (ioctl:
// ioctl_handler.cc).

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "daemon/fuse/request_handlers.h"

namespace fusehost {

int RequestHandlers::WritebackOpenFlags(int flags) const {
  if (options_.writeback_cache == nullptr ||
      !options_.writeback_cache->load()) {
    return flags;
  }
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  return flags & ~O_APPEND;
}

void RequestHandlers::NoteFlushless(const KernelOpenReply& open) {
  if (open.noflush && options_.writeback_cache != nullptr &&
      options_.writeback_cache->load()) {
    flushless_.Add(open.fh);
  }
}

void RequestHandlers::Open(Request req, uint64_t node, int flags) {
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  if (OpenHere(req, node, flags, *path)) return;
  const int backend_flags = WritebackOpenFlags(flags);
  // A file the caller may write but not read is opened for writing only
  // after all: the kernel's read of a page written in part then fails.
  const int write_only =
      (flags & O_ACCMODE) == O_WRONLY && backend_flags != flags
          ? flags & ~O_APPEND
          : -1;
  OpenAtBackend(req, node, backend_flags, *path, /*may_wait=*/true, write_only);
}

void RequestHandlers::OpenAtBackend(const Request& req, uint64_t node,
                                    int flags, const std::string& path,
                                    bool may_wait, int if_refused) {
  v1::Op op = NewOp(*req);
  if (OpenFetchedAhead(req, node, flags, path, may_wait, op.caller())) return;
  const bool truncates = (flags & O_TRUNC) != 0;
  if (truncates) ForgetContents(node);
  const uint64_t tag = PassthroughTag();
  const uint32_t wanted = ContentsWanted(flags, path);
  op.mutable_open()->set_path(path);
  op.mutable_open()->set_flags(flags);
  op.mutable_open()->set_passthrough_tag(tag);
  op.mutable_open()->set_contents_up_to(wanted);
  // A reader of one small file of a directory is likely to read the next
  // ones: fetched beside this open, sent after it.
  std::vector<PendingOp> window;
  if (wanted > 0 && PlainReadOnly(flags)) {
    window = contents_ahead_.Opened(path, op.caller(), /*answered=*/false);
  }
  Send(std::move(op), [this, req, node, flags, tag, truncates, path,
                       if_refused](const v1::OpResult& res) {
    if (res.posix_errno() == EACCES && if_refused >= 0) {
      OpenAtBackend(req, node, if_refused, path, /*may_wait=*/false);
      return;
    }
    if (Failed(req, res)) return;
    // The kernel drops the truncated node's own size and pages; the file's
    // other names (hard links) are nodes of their own.
    if (truncates) {
      std::vector<uint64_t> siblings = StaleSiblings(node);
      if (!siblings.empty()) options_.invalidator->DropAttrsNow(siblings);
    }
    KernelOpenReply open = OpenReplyOf(res.open());
    options_.nodes->AddOpenHandle(node, open.fh);
    // Kept before the reply: the kernel's first read follows it.
    if (res.open().has_contents()) {
      open_contents_.Keep(open.fh, node, res.open().contents());
    }
    if (!PlanPassthrough(node, tag, flags, res.open().passthrough(), &open)) {
      open_contents_.ForgetHandle(open.fh);
      options_.nodes->RemoveOpenHandle(node, open.fh);
      AnswerReplaced(req, node, path, open.fh, flags);
      return;
    }
    bool refused = false;
    open.backing_refused = &refused;
    NoteFlushless(open);
    bool sent = req->ReplyOpen(open);
    AfterOpenReply(open.fh, sent, refused);
    if (!sent) {
      flushless_.Remove(open.fh);
      open_contents_.ForgetHandle(open.fh);
      options_.nodes->RemoveOpenHandle(node, open.fh);
      ReleaseOrphan(path, open.fh, flags);
    }
  });
  if (!window.empty()) SendAll(std::move(window));
}

uint32_t RequestHandlers::ContentsWanted(int flags,
                                         const std::string& path) const {
  // Only a read-only open's first read is answered from the contents, and
  // only a size the cache holds keeps a large file from being read in vain.
  if ((flags & O_ACCMODE) != O_RDONLY || options_.coherence == nullptr) {
    return 0;
  }
  std::optional<v1::Attr> attr = options_.coherence->CachedAttr(path);
  if (!attr || !S_ISREG(attr->mode()) || attr->size() > kOpenContentsWanted) {
    return 0;
  }
  return kOpenContentsWanted;
}

void RequestHandlers::Create(Request req, uint64_t parent, std::string name,
                             mode_t mode, int flags) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  // (A file being made may be opened for reading whatever its mode.)
  flags = WritebackOpenFlags(flags);
  v1::Op op = NewOp(*req);
  const uint64_t tag = PassthroughTag();
  op.mutable_create()->set_path(*path);
  op.mutable_create()->set_mode(mode);
  op.mutable_create()->set_flags(flags);
  op.mutable_create()->set_passthrough_tag(tag);
  Send(std::move(op), [this, req, parent, flags, tag, name = std::move(name),
                       path = *path](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    KernelOpenReply open = OpenReplyOf(res.create().open());
    const v1::Attr* known =
        res.create().has_attr() ? &res.create().attr() : nullptr;
    bool offered = res.create().open().passthrough();
    WithAttr(req, path, open.fh, known,
             [this, req, parent, flags, name, path, tag, offered,
              open](const v1::Attr& attr) mutable {
               KernelEntry e;
               if (!MakeEntry(req, parent, name, attr, &e)) {
                 ReleaseOrphan(path, open.fh, flags);
                 return;
               }
               options_.nodes->AddOpenHandle(e.node, open.fh);
               if (!PlanPassthrough(e.node, tag, flags, offered, &open)) {
                 options_.nodes->RemoveOpenHandle(e.node, open.fh);
                 options_.nodes->Forget(e.node, 1);
                 AnswerReplaced(req, e.node, path, open.fh, flags);
                 return;
               }
               bool refused = false;
               open.backing_refused = &refused;
               NoteFlushless(open);
               bool sent = req->ReplyCreate(e, open);
               AfterOpenReply(open.fh, sent, refused);
               if (!sent) {
                 flushless_.Remove(open.fh);
                 options_.nodes->RemoveOpenHandle(e.node, open.fh);
                 options_.nodes->Forget(e.node, 1);
                 ReleaseOrphan(path, open.fh, flags);
               }
             },
             S_IFREG,
             // No attributes, or not a regular file's: the kernel never
             // gets the handle, so the backend's open is closed here.
             [this, path, fh = open.fh, flags] {
               ReleaseOrphan(path, fh, flags);
             });
  });
}

void RequestHandlers::Read(Request req, uint64_t node, const KernelFile& file,
                           size_t size, off_t offset) {
  std::string kept;
  if (open_contents_.TakeFirstRead(file.fh, offset, size, &kept)) {
    req->ReplyData(kept);
    return;
  }
  v1::Op op = NewOp(*req);
  v1::ReadRequest* r = op.mutable_read();
  r->set_path(HandlePath(node));
  r->set_fh(file.fh);
  r->set_offset(offset);
  r->set_size(size);
  Send(std::move(op), [req](const v1::OpResult& res) {
    if (!Failed(req, res)) req->ReplyData(res.read().data());
  });
}

void RequestHandlers::Write(Request req, uint64_t node, const KernelFile& file,
                            absl::string_view data, off_t offset) {
  ForgetContents(node);
  v1::Op op = NewOp(*req);
  v1::WriteRequest* r = op.mutable_write();
  r->set_path(HandlePath(node));
  r->set_fh(file.fh);
  r->set_offset(offset);
  r->set_data(data.data(), data.size());
  r->set_flags(file.flags);
  Send(std::move(op), [this, req, node](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    size_t written = res.write().size();
    // Other names of the file must not keep its old size and pages.
    AfterSiblingsDropped(StaleSiblings(node),
                         [req, written] { req->ReplyWritten(written); });
  });
}

void RequestHandlers::Flush(Request req, uint64_t node,
                            const KernelFile& file) {
  if (options_.handles != nullptr && options_.handles->FlushesHere(file.fh)) {
    req->ReplyError(0);  // opened by the daemon: nothing at the backend
    return;
  }
  if (flushless_.Contains(file.fh)) {
    req->ReplyError(0);  // the backend's flush does nothing
    return;
  }
  v1::Op op = NewOp(*req);
  op.mutable_flush()->set_path(HandlePath(node));
  op.mutable_flush()->set_fh(file.fh);
  op.mutable_flush()->set_lock_owner(file.lock_owner);
  SendSimple(req, std::move(op));
}

void RequestHandlers::Release(Request req, uint64_t node,
                              const KernelFile& file) {
  v1::Op op = NewOp(*req);
  op.mutable_release()->set_path(HandlePath(node));
  op.mutable_release()->set_fh(file.fh);
  op.mutable_release()->set_flags(file.flags);
  open_contents_.ForgetHandle(file.fh);
  flushless_.Remove(file.fh);
  options_.nodes->RemoveOpenHandle(node, file.fh);
  AfterPassthroughWrites(node);
  if (options_.backing != nullptr) options_.backing->Release(file.fh);
  // The kernel ignores release errors and nothing waits for it, so answer
  // at once and let the backend close the handle in the background: a round
  // trip saved on every close.
  req->ReplyError(0);
  // Opened or created by the daemon and never at the backend: nothing to
  // close there. Unless write-behind holds ops for the file (a token of its
  // own early create is bound only when the create reaches the backend):
  // then the release goes behind them.
  HandleMap* handles = options_.handles;
  if (handles != nullptr &&
      !(options_.queued_at && options_.queued_at(op.release().path())) &&
      handles->RetireUnopened(file.fh)) {
    return;
  }
  Send(std::move(op), [](const v1::OpResult&) {});
}

void RequestHandlers::Fsync(Request req, uint64_t node, const KernelFile& file,
                            bool datasync) {
  AfterPassthroughWrites(node);
  v1::Op op = NewOp(*req);
  op.mutable_fsync()->set_path(HandlePath(node));
  op.mutable_fsync()->set_fh(file.fh);
  op.mutable_fsync()->set_datasync(datasync);
  SendSimple(req, std::move(op));
}

void RequestHandlers::Fallocate(Request req, uint64_t node,
                                const KernelFile& file, int mode, off_t offset,
                                off_t length) {
  ForgetContents(node);
  v1::Op op = NewOp(*req);
  v1::FallocateRequest* r = op.mutable_fallocate();
  r->set_path(HandlePath(node));
  r->set_fh(file.fh);
  r->set_mode(mode);
  r->set_offset(offset);
  r->set_length(length);
  SendChangingFile(req, std::move(op), node);
}

void RequestHandlers::CopyFileRange(Request req, uint64_t node_in,
                                    off_t offset_in, const KernelFile& in,
                                    uint64_t node_out, off_t offset_out,
                                    const KernelFile& out, size_t length,
                                    int flags) {
  ForgetContents(node_out);
  v1::Op op = NewOp(*req);
  v1::CopyFileRangeRequest* r = op.mutable_copy_file_range();
  r->set_path_in(HandlePath(node_in));
  r->set_fh_in(in.fh);
  r->set_offset_in(offset_in);
  r->set_path_out(HandlePath(node_out));
  r->set_fh_out(out.fh);
  r->set_offset_out(offset_out);
  r->set_length(length);
  r->set_flags(flags);
  Send(std::move(op), [this, req, node_out](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    size_t written = res.copy_file_range().size();
    AfterSiblingsDropped(StaleSiblings(node_out),
                         [req, written] { req->ReplyWritten(written); });
  });
}

void RequestHandlers::Lseek(Request req, uint64_t node, const KernelFile& file,
                            off_t offset, int whence) {
  v1::Op op = NewOp(*req);
  v1::LseekRequest* r = op.mutable_lseek();
  r->set_path(HandlePath(node));
  r->set_fh(file.fh);
  r->set_offset(offset);
  r->set_whence(whence);
  Send(std::move(op), [req](const v1::OpResult& res) {
    if (!Failed(req, res)) req->ReplyLseek(res.lseek().offset());
  });
}

namespace {

v1::Op LockOp(v1::Op op, const std::string& path, const KernelFile& file,
              int cmd, const struct flock& lock) {
  v1::LockRequest* r = op.mutable_lock();
  r->set_path(path);
  r->set_fh(file.fh);
  r->set_cmd(cmd);
  r->set_lock_owner(file.lock_owner);
  r->mutable_lock()->set_type(lock.l_type);
  r->mutable_lock()->set_start(lock.l_start);
  r->mutable_lock()->set_len(lock.l_len);
  r->mutable_lock()->set_pid(lock.l_pid);
  return op;
}

}  // namespace

void RequestHandlers::Getlk(Request req, uint64_t node, const KernelFile& file,
                            const struct flock& lock) {
  v1::Op op = LockOp(NewOp(*req), HandlePath(node), file, F_GETLK, lock);
  Send(std::move(op), [req](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    struct flock out = {};
    const v1::FileLock& l = res.lock().lock();
    out.l_type = l.type();
    out.l_whence = SEEK_SET;
    out.l_start = l.start();
    out.l_len = l.len();
    out.l_pid = l.pid();
    req->ReplyLock(out);
  });
}

void RequestHandlers::Setlk(Request req, uint64_t node, const KernelFile& file,
                            const struct flock& lock, bool sleep) {
  SendSimple(req, LockOp(NewOp(*req), HandlePath(node), file,
                         sleep ? F_SETLKW : F_SETLK, lock));
}

void RequestHandlers::Flock(Request req, uint64_t node, const KernelFile& file,
                            int operation) {
  v1::Op op = NewOp(*req);
  v1::FlockRequest* r = op.mutable_flock();
  r->set_path(HandlePath(node));
  r->set_fh(file.fh);
  r->set_operation(operation);
  r->set_lock_owner(file.lock_owner);
  SendSimple(req, std::move(op));
}

}  // namespace fusehost
