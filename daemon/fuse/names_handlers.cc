// Names and attributes: lookup, forget, getattr, setattr, readlink, and the
// operations that add, remove or move names.

#include <linux/fs.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "common/stat_convert.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {

void RequestHandlers::Lookup(Request req, uint64_t parent, std::string name) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_getattr()->set_path(*path);
  Send(std::move(op), [this, req, parent,
                       name = std::move(name)](const v1::OpResult& res) {
    double negative = absl::ToDoubleSeconds(options_.timeouts.negative);
    if (res.posix_errno() == ENOENT && negative > 0) {
      // Node 0 lets the kernel cache the absence of the name.
      KernelEntry e;
      e.entry_timeout = negative;
      req->ReplyEntry(e);
    } else if (!Failed(req, res)) {
      NoteLookupIn(parent, S_ISDIR(res.getattr().attr().mode()));
      ReplyEntry(req, parent, name, res.getattr().attr());
    }
  });
}

void RequestHandlers::Forget(
    Request req, const std::vector<std::pair<uint64_t, uint64_t>>& forgets) {
  for (const auto& [node, count] : forgets) options_.nodes->Forget(node, count);
  req->ReplyNone();
}

void RequestHandlers::Getattr(Request req, uint64_t node,
                              std::optional<uint64_t> kernel_fh) {
  std::string path;
  std::optional<uint64_t> fh;
  if (!AttrTarget(req, node, kernel_fh, &path, &fh)) return;
  if (AnswerFromOwnOpen(req, node, path)) return;
  // Writes through a backing file never pass the daemon: its cached size
  // and times may be old. They are taken from the backing file where the
  // daemon holds it (then the cache answers, by path), else dropped, and
  // the backend is asked (by path: an open handle may be on its way to
  // being released).
  if (WritesBypassDaemon(node) && LearnWrittenAround(node, path)) {
    fh.reset();
  }
  v1::Op op = NewOp(*req);
  op.mutable_getattr()->set_path(path);
  if (fh) op.mutable_getattr()->set_fh(*fh);
  const bool by_path = !fh;
  auto reply = [this, req, node](const v1::OpResult& res) {
    if (!Failed(req, res)) ReplyAttr(req, node, res.getattr().attr());
  };
  Send(std::move(op),
       [this, req, node, by_path, reply](const v1::OpResult& res) {
         // The kernel sends no handle with fstat(2). A file unlinked or renamed
         // away behind the daemon while open is gone from its path, yet still
         // there for its holders: ask through one of their handles, as for a
         // file without a name (no path: its attributes are not the path's to
         // cache).
         std::optional<uint64_t> open;
         if (by_path && res.posix_errno() == ENOENT) {
           open = options_.nodes->AnyOpenHandle(node);
         }
         if (!open) {
           reply(res);
           return;
         }
         v1::Op again = NewOp(*req);
         again.mutable_getattr()->set_path(std::string());
         again.mutable_getattr()->set_fh(*open);
         Send(std::move(again), reply);
       });
}

// The ops of one setattr, sent one after the other.
struct RequestHandlers::SetattrChain
    : std::enable_shared_from_this<SetattrChain> {
  RequestHandlers* handlers;
  Request req;
  uint64_t node;
  std::string path;
  std::optional<uint64_t> fh;
  std::vector<v1::Op> ops;
  size_t next = 0;
  v1::Attr last_attr;
  bool have_attr = false;

  void Run() {
    RequestHandlers* h = handlers;
    if (next == ops.size()) {
      h->WithAttr(req, path, fh, have_attr ? &last_attr : nullptr,
                  [h, req = req, node = node](const v1::Attr& attr) {
                    h->AfterSiblingsDropped(h->StaleSiblings(node),
                                            [h, req, node, attr] {
                                              h->ReplyAttr(req, node, attr);
                                            });
                  });
      return;
    }
    auto self = shared_from_this();
    h->Send(std::move(ops[next++]), [self](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        self->Fail(res.posix_errno());
        return;
      }
      self->have_attr = res.entry().has_attr();
      if (self->have_attr) self->last_attr = res.entry().attr();
      self->Run();
    });
  }

  void Fail(int posix_errno) {
    RequestHandlers* h = handlers;
    if (next == 1) {
      req->ReplyError(posix_errno);
      return;
    }
    // The ops before this one took effect (a chmod before a failed
    // truncate): the kernel keeps a node's attributes after a failed
    // setattr, and the file's other names knew nothing of it either.
    std::vector<uint64_t> stale = h->StaleSiblings(node);
    stale.push_back(node);
    h->AfterSiblingsDropped(
        stale, [req = req, posix_errno] { req->ReplyError(posix_errno); });
  }
};

namespace {

void SetTime(const struct timespec& ts, bool set, bool now, v1::TimeSet* out) {
  if (!set) {
    out->set_kind(v1::TimeSet::OMIT);
  } else if (now) {
    out->set_kind(v1::TimeSet::NOW);
  } else {
    out->set_kind(v1::TimeSet::SET);
    TimespecToProto(ts, out->mutable_time());
  }
}

}  // namespace

void RequestHandlers::Setattr(Request req, uint64_t node,
                              const struct stat& attr, int fields,
                              std::optional<uint64_t> kernel_fh) {
  // With default_permissions the kernel refuses a chmod by anyone but the
  // owner (and root) before it gets here, except the one it makes itself
  // after another user's write or truncate, which only drops the setid
  // bits. The kernel has just refreshed the file's attributes, so the
  // daemon's cache knows the owner; when it does not, the chmod goes on.
  if ((fields & kSetMode) && options_.kernel_checks_permissions &&
      (attr.st_mode & (S_ISUID | S_ISGID)) == 0 && options_.coherence) {
    std::optional<std::string> path = options_.nodes->PathOf(node);
    std::optional<v1::Attr> now =
        path ? options_.coherence->CachedAttr(*path) : std::nullopt;
    if (now && (now->mode() & (S_ISUID | S_ISGID)) &&
        (now->mode() & 07777 & ~(S_ISUID | S_ISGID)) ==
            (attr.st_mode & 07777)) {
      v1::Caller caller;
      req->FillCaller(&caller);
      if (caller.uid() != 0 && caller.uid() != now->uid()) fields &= ~kSetMode;
    }
  }
  RunSetattr(req, node, attr, fields, kernel_fh);
}

void RequestHandlers::RunSetattr(Request req, uint64_t node,
                                 const struct stat& attr, int fields,
                                 std::optional<uint64_t> kernel_fh) {
  if (fields & kSetSize) ForgetContents(node);
  auto chain = std::make_shared<SetattrChain>();
  if (!AttrTarget(req, node, kernel_fh, &chain->path, &chain->fh)) return;
  chain->handlers = this;
  chain->req = req;
  chain->node = node;
  const std::string& path = chain->path;
  // Writes through a backing file never pass the daemon: the cached size
  // and times may be old, and nothing may be answered from them
  // (write-behind would) until they are the backing file's. With
  // write-behind, a change of times waits for the backend: a write through
  // the backing file after an early answer would reach the file before the
  // change it follows. Otherwise, or where the daemon may make the change
  // itself (and takes care of that where it cannot: changes_below), the
  // attributes stay.
  if (WritesBypassDaemon(node)) {
    if ((fields & (kSetAtime | kSetMtime)) && options_.queued_at &&
        !options_.changes_below) {
      options_.coherence->WrittenAround(path, nullptr);
    } else {
      LearnWrittenAround(node, path);
    }
  }
  const std::optional<uint64_t>& fh = chain->fh;
  const v1::Op base = NewOp(*req);  // caller info, read once
  if (fields & kSetMode) {
    v1::Op op = base;
    v1::ChmodRequest* r = op.mutable_chmod();
    r->set_path(path);
    r->set_mode(attr.st_mode & 07777);
    if (fh) r->set_fh(*fh);
    chain->ops.push_back(std::move(op));
  }
  if (fields & (kSetUid | kSetGid)) {
    v1::Op op = base;
    v1::ChownRequest* r = op.mutable_chown();
    r->set_path(path);
    if (fields & kSetUid) r->set_uid(attr.st_uid);
    if (fields & kSetGid) r->set_gid(attr.st_gid);
    if (fh) r->set_fh(*fh);
    chain->ops.push_back(std::move(op));
  }
  if (fields & kSetSize) {
    v1::Op op = base;
    v1::TruncateRequest* r = op.mutable_truncate();
    r->set_path(path);
    r->set_size(attr.st_size);
    if (fh) r->set_fh(*fh);
    chain->ops.push_back(std::move(op));
  }
  if (fields & (kSetAtime | kSetMtime)) {
    v1::Op op = base;
    v1::UtimensRequest* r = op.mutable_utimens();
    r->set_path(path);
    SetTime(attr.st_atim, fields & kSetAtime, fields & kSetAtimeNow,
            r->mutable_atime());
    SetTime(attr.st_mtim, fields & kSetMtime, fields & kSetMtimeNow,
            r->mutable_mtime());
    if (fh) r->set_fh(*fh);
    chain->ops.push_back(std::move(op));
  }
  chain->Run();
}

void RequestHandlers::Readlink(Request req, uint64_t node) {
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_readlink()->set_path(*path);
  Send(std::move(op), [req](const v1::OpResult& res) {
    if (!Failed(req, res)) req->ReplyReadlink(res.readlink().target());
  });
}

void RequestHandlers::Mknod(Request req, uint64_t parent, std::string name,
                            mode_t mode, dev_t rdev) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_mknod()->set_path(*path);
  op.mutable_mknod()->set_mode(mode);
  op.mutable_mknod()->set_rdev(rdev);
  SendCreating(req, std::move(op), parent, std::move(name), *path);
}

void RequestHandlers::Mkdir(Request req, uint64_t parent, std::string name,
                            mode_t mode) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_mkdir()->set_path(*path);
  op.mutable_mkdir()->set_mode(mode & ~S_IFMT);
  SendCreating(req, std::move(op), parent, std::move(name), *path);
}

void RequestHandlers::Symlink(Request req, std::string target, uint64_t parent,
                              std::string name) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_symlink()->set_target(std::move(target));
  op.mutable_symlink()->set_path(*path);
  SendCreating(req, std::move(op), parent, std::move(name), *path);
}

void RequestHandlers::Link(Request req, uint64_t node, uint64_t new_parent,
                           std::string new_name) {
  std::optional<std::string> old_path = NamedPath(req, node);
  if (!old_path) return;
  std::optional<std::string> new_path = ChildPath(req, new_parent, new_name);
  if (!new_path) return;
  v1::Op op = NewOp(*req);
  op.mutable_link()->set_old_path(*old_path);
  op.mutable_link()->set_new_path(*new_path);
  // The new name becomes a node of its own; the kernel keeps the old node's
  // attributes (and its other names'), whose link count just changed: they
  // are dropped before the reply.
  SendCreating(req, std::move(op), new_parent, std::move(new_name), *new_path,
               /*stale=*/node);
}

void RequestHandlers::Unlink(Request req, uint64_t parent, std::string name) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  OpenedAtBackendFirst(
      req, *path,
      [this, req, parent, name = std::move(name), path = *path]() mutable {
        v1::Op op = NewOp(*req);
        op.mutable_unlink()->set_path(path);
        Send(std::move(op), [this, req, parent, name = std::move(name),
                             path](const v1::OpResult& res) {
          if (Failed(req, res)) return;
          // The file's other names just lost a link.
          uint64_t node = options_.nodes->Find(path);
          std::vector<uint64_t> siblings;
          if (node != 0) siblings = StaleSiblings(node);
          options_.nodes->Remove(parent, name);
          AfterSiblingsDropped(siblings, [req] { req->ReplyError(0); });
        });
      });
}

bool RequestHandlers::AnswerFromOwnOpen(const Request& req, uint64_t node,
                                        const std::string& path) {
  // A node the daemon holds open itself (open_by_daemon.cc) is the file it
  // holds: its name may lead to another file by now (replaced behind the
  // daemon; an fstat of the open then finds the node nameless), which the
  // backend, asked by that name, would answer for. And it costs the backend
  // nothing.
  if (options_.backing == nullptr) return false;
  // A change answered early (write_behind) has not reached the file yet:
  // the getattr waits behind it.
  if (!path.empty() && options_.queued_at && options_.queued_at(path)) {
    return false;
  }
  struct stat st;
  if (!options_.backing->StatOpen(node, &st)) return false;
  v1::Attr attr;
  StatToProto(st, &attr);
  ReplyAttr(req, node, attr);
  return true;
}

void RequestHandlers::OpenedAtBackendFirst(const Request& req,
                                           const std::string& path,
                                           std::function<void()> then) {
  HandleMap* handles = options_.handles;
  const uint64_t node = path.empty() ? 0 : options_.nodes->Find(path);
  std::vector<uint64_t> unopened;
  if (handles != nullptr && node != 0) {
    for (uint64_t fh : options_.nodes->OpenHandles(node)) {
      if (handles->Unopened(fh)) unopened.push_back(fh);
    }
  }
  if (unopened.empty()) {
    then();
    return;
  }
  // A handle the daemon opened (or created) itself is opened at the
  // backend, by this path, the first time an op carrying it needs the
  // backend: once the name is gone, it no longer could be. An fstat
  // through it makes the backend open it now. Whatever it answers, the
  // change goes on (the handle's later ops fail as they would have).
  auto left = std::make_shared<size_t>(unopened.size());
  auto go_on = std::make_shared<std::function<void()>>(std::move(then));
  for (uint64_t fh : unopened) {
    v1::Op op = NewOp(*req);
    op.mutable_getattr()->set_path(path);
    op.mutable_getattr()->set_fh(fh);
    Send(std::move(op), [left, go_on](const v1::OpResult&) {
      if (--*left == 0) (*go_on)();
    });
  }
}

void RequestHandlers::Rmdir(Request req, uint64_t parent, std::string name) {
  std::optional<std::string> path = ChildPath(req, parent, name);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_rmdir()->set_path(*path);
  NodeTable* nodes = options_.nodes;
  SendSimple(req, std::move(op), [nodes, parent, name = std::move(name)] {
    nodes->Remove(parent, name);
  });
}

void RequestHandlers::Rename(Request req, uint64_t parent, std::string name,
                             uint64_t new_parent, std::string new_name,
                             unsigned int flags) {
  std::optional<std::string> old_path = ChildPath(req, parent, name);
  if (!old_path) return;
  std::optional<std::string> new_path = ChildPath(req, new_parent, new_name);
  if (!new_path) return;
  // A file the rename replaces loses its name (not with RENAME_EXCHANGE,
  // which only moves it).
  const std::string replaced =
      (flags & RENAME_EXCHANGE) != 0 ? std::string() : *new_path;
  OpenedAtBackendFirst(req, replaced,
                       [this, req, parent, name = std::move(name), new_parent,
                        new_name = std::move(new_name), old_path = *old_path,
                        new_path = *new_path, flags]() mutable {
                         RenameNow(req, parent, std::move(name), new_parent,
                                   std::move(new_name), old_path, new_path,
                                   flags);
                       });
}

void RequestHandlers::RenameNow(Request req, uint64_t parent, std::string name,
                                uint64_t new_parent, std::string new_name,
                                const std::string& old_path,
                                const std::string& new_path,
                                unsigned int flags) {
  v1::Op op = NewOp(*req);
  op.mutable_rename()->set_old_path(old_path);
  op.mutable_rename()->set_new_path(new_path);
  op.mutable_rename()->set_flags(flags);
  SendSimple(req, std::move(op),
             [this, parent, name = std::move(name), new_parent,
              new_name = std::move(new_name), new_path, flags] {
               const bool exchange = (flags & RENAME_EXCHANGE) != 0;
               // A file replaced by the rename lost a link: its other names
               // show the old count until dropped (before the reply).
               std::vector<uint64_t> stale;
               if (!exchange) {
                 if (uint64_t replaced = options_.nodes->Find(new_path)) {
                   stale = StaleSiblings(replaced);
                 }
               }
               options_.nodes->Rename(parent, name, new_parent, new_name,
                                      exchange);
               if (!stale.empty()) options_.invalidator->DropAttrsNow(stale);
             });
}

}  // namespace fusehost
