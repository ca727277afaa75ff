// What the request handlers share: node paths, sending ops, entries and
// attribute replies, hard-link bookkeeping.

#include <cerrno>
#include <utility>

#include "common/stat_convert.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {

RequestHandlers::RequestHandlers(Options options)
    : options_(std::move(options)), contents_ahead_(ContentsAheadOptions(this)) {
  absl::MutexLock lock(&dirs_mu_);
  next_dir_ = options_.first_dir_handle;
}

// ---- ops ---------------------------------------------------------------------

v1::Op RequestHandlers::NewOp(KernelRequest& req) const {
  v1::Op op;
  req.FillCaller(op.mutable_caller());
  if (options_.op_timeout > absl::ZeroDuration()) {
    op.set_deadline_unix_ms(
        absl::ToUnixMillis(req.arrival() + options_.op_timeout));
  }
  return op;
}

void RequestHandlers::Send(v1::Op op, OpTransport::Done done) {
  if (stopping_.load()) {
    done(ErrorResult(op.id(), ECANCELED));
    return;
  }
  options_.transport->Send(std::move(op), std::move(done));
}

void RequestHandlers::SendAll(std::vector<PendingOp> ops) {
  if (stopping_.load()) {
    for (PendingOp& p : ops) p.done(ErrorResult(p.op.id(), ECANCELED));
    return;
  }
  options_.transport->SendAll(std::move(ops));
}

bool RequestHandlers::Failed(const Request& req, const v1::OpResult& result) {
  if (result.posix_errno() == 0) return false;
  req->ReplyError(result.posix_errno());
  return true;
}

void RequestHandlers::SendSimple(const Request& req, v1::Op op,
                                 std::function<void()> on_success) {
  Send(std::move(op), [req, on_success = std::move(on_success)](
                          const v1::OpResult& result) {
    if (result.posix_errno() == 0 && on_success) on_success();
    req->ReplyError(result.posix_errno());
  });
}

void RequestHandlers::SendChangingFile(const Request& req, v1::Op op,
                                       uint64_t node) {
  Send(std::move(op), [this, req, node](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    AfterSiblingsDropped(StaleSiblings(node), [req] { req->ReplyError(0); });
  });
}

void RequestHandlers::SendCreating(const Request& req, v1::Op op,
                                   uint64_t parent, std::string name,
                                   std::string path, uint64_t stale) {
  const uint32_t created_type = CreatedFileType(op);
  Send(std::move(op), [this, req, parent, name = std::move(name),
                       path = std::move(path), stale,
                       created_type](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    const v1::Attr* known =
        res.entry().has_attr() ? &res.entry().attr() : nullptr;
    WithAttr(req, path, std::nullopt, known,
             [this, req, parent, name, path, stale](const v1::Attr& attr) {
               if (stale == 0) {
                 ReplyEntry(req, parent, name, attr);
                 return;
               }
               // A link: the old node is one more name of this file now,
               // even if all it last heard was one link. Known as such, an
               // unlink through it right away drops the other names'
               // attributes before its reply.
               NoteInode(stale, attr);
               std::vector<uint64_t> nodes = StaleSiblings(stale, path);
               nodes.push_back(stale);
               AfterSiblingsDropped(nodes, [this, req, parent, name, attr] {
                 ReplyEntry(req, parent, name, attr);
               });
             },
             created_type);
  });
}

// ---- paths -------------------------------------------------------------------

std::optional<std::string> RequestHandlers::NamedPath(const Request& req,
                                                      uint64_t node) {
  std::optional<std::string> path = options_.nodes->PathOf(node);
  if (!path) {
    req->ReplyError(ESTALE);
  } else if (path->empty()) {
    req->ReplyError(ENOENT);  // unlinked, and no handle to go by
    return std::nullopt;
  }
  return path;
}

std::string RequestHandlers::HandlePath(uint64_t node) {
  return options_.nodes->PathOf(node).value_or(std::string());
}

std::optional<std::string> RequestHandlers::ChildPath(const Request& req,
                                                      uint64_t parent,
                                                      const std::string& name) {
  std::optional<std::string> path = options_.nodes->ChildPath(parent, name);
  if (!path) {
    req->ReplyError(ESTALE);
  } else if (path->empty()) {
    req->ReplyError(ENOENT);
    return std::nullopt;
  }
  return path;
}

bool RequestHandlers::AttrTarget(const Request& req, uint64_t node,
                                 std::optional<uint64_t> kernel_fh,
                                 std::string* path,
                                 std::optional<uint64_t>* fh) {
  if (kernel_fh) {
    *path = HandlePath(node);
    *fh = kernel_fh;
    return true;
  }
  std::optional<std::string> p = options_.nodes->PathOf(node);
  if (!p) {
    req->ReplyError(ESTALE);
    return false;
  }
  *path = *p;
  if (p->empty()) {
    *fh = options_.nodes->AnyOpenHandle(node);
    if (!*fh) {
      req->ReplyError(ENOENT);
      return false;
    }
  }
  return true;
}

// ---- attributes and entries ----------------------------------------------------

double RequestHandlers::AttrTimeout(const v1::Attr& attr) const {
  if (attr.ttl_ms() != 0) return attr.ttl_ms() / 1000.0;
  return absl::ToDoubleSeconds(options_.timeouts.attr);
}

double RequestHandlers::EntryTimeout(const v1::Attr& attr) const {
  const std::optional<absl::Duration>& entry = options_.timeouts.entry;
  return entry ? absl::ToDoubleSeconds(*entry) : AttrTimeout(attr);
}

void RequestHandlers::ToStat(const v1::Attr& attr, uint64_t node,
                             struct stat* st) {
  StatFromProto(attr, st);
  if (st->st_ino == 0) st->st_ino = node;
}

void RequestHandlers::NoteInode(uint64_t node, const v1::Attr& attr) {
  options_.nodes->NoteInode(node, attr.ino(),
                            !S_ISDIR(attr.mode()) && attr.nlink() > 1);
}

std::vector<uint64_t> RequestHandlers::StaleSiblings(
    uint64_t node, const std::optional<std::string>& keep) {
  std::vector<uint64_t> siblings = options_.nodes->Siblings(node);
  if (options_.coherence == nullptr) return siblings;
  if (!siblings.empty()) {
    std::vector<std::string> paths;
    for (uint64_t sibling : siblings) {
      std::optional<std::string> path = options_.nodes->PathOf(sibling);
      if (path && !path->empty()) paths.push_back(*std::move(path));
    }
    options_.coherence->OtherNamesChanged(paths);
  }
  // The names the kernel forgot may still be in the daemon's cache.
  if (uint64_t ino = options_.nodes->BackendIno(node)) {
    options_.coherence->NamesOfFileChanged(
        ino, keep ? *keep : options_.nodes->PathOf(node).value_or(""));
  }
  return siblings;
}

void RequestHandlers::AfterSiblingsDropped(const std::vector<uint64_t>& nodes,
                                           const std::function<void()>& reply) {
  // Synchronously, not through the invalidation queue: a queued entry
  // invalidation may wait for a directory lock held by the very request
  // `reply` answers. Dropping attributes takes no lock the kernel could
  // hold for us.
  if (!nodes.empty()) options_.invalidator->DropAttrsNow(nodes);
  reply();
}

void RequestHandlers::ReplyAttr(const Request& req, uint64_t node,
                                const v1::Attr& attr) {
  struct stat st;
  ToStat(attr, node, &st);
  NoteInode(node, attr);
  req->ReplyAttr(st, AttrTimeout(attr));
}

bool RequestHandlers::MakeEntry(const Request& req, uint64_t parent,
                                const std::string& name, const v1::Attr& attr,
                                KernelEntry* e) {
  uint64_t id = options_.nodes->AddLookup(parent, name);
  if (id == 0) {
    req->ReplyError(ESTALE);
    return false;
  }
  *e = KernelEntry();
  ToStat(attr, id, &e->attr);
  NoteInode(id, attr);
  e->node = id;
  e->attr_timeout = AttrTimeout(attr);
  e->entry_timeout = EntryTimeout(attr);
  return true;
}

void RequestHandlers::ReplyEntry(const Request& req, uint64_t parent,
                                 const std::string& name,
                                 const v1::Attr& attr) {
  KernelEntry e;
  if (!MakeEntry(req, parent, name, attr, &e)) return;
  if (!req->ReplyEntry(e)) {
    // The request was interrupted: the kernel never got the reference.
    options_.nodes->Forget(e.node, 1);
  }
}

void RequestHandlers::WithAttr(const Request& req, const std::string& path,
                               std::optional<uint64_t> fh,
                               const v1::Attr* known, Then then,
                               uint32_t created_type,
                               std::function<void()> failed) {
  auto use = [req, then = std::move(then), created_type,
              failed](const v1::Attr& attr) {
    if (!FileTypeFits(created_type, attr.mode())) {
      req->ReplyError(EIO);
      if (failed) failed();
      return;
    }
    then(attr);
  };
  if (known != nullptr) {
    use(*known);
    return;
  }
  v1::Op op = NewOp(*req);
  v1::GetattrRequest* r = op.mutable_getattr();
  r->set_path(path);
  if (fh) r->set_fh(*fh);
  Send(std::move(op), [req, use = std::move(use),
                       failed = std::move(failed)](const v1::OpResult& res) {
    if (Failed(req, res)) {
      if (failed) failed();
      return;
    }
    use(res.getattr().attr());
  });
}

// ---- open files ------------------------------------------------------------------

KernelOpenReply RequestHandlers::OpenReplyOf(const v1::OpenReply& r) {
  KernelOpenReply out;
  out.fh = r.fh();
  out.direct_io = r.direct_io();
  out.keep_cache = r.keep_cache();
  out.nonseekable = r.nonseekable();
  out.noflush = r.noflush();
  return out;
}

void RequestHandlers::ForgetContents(uint64_t node) {
  open_contents_.ForgetInode(node);
  for (uint64_t sibling : options_.nodes->Siblings(node)) {
    open_contents_.ForgetInode(sibling);
  }
}

void RequestHandlers::ReleaseOrphan(const std::string& path, uint64_t fh,
                                    int flags) {
  v1::Op op;
  op.mutable_release()->set_path(path);
  op.mutable_release()->set_fh(fh);
  op.mutable_release()->set_flags(flags);
  Send(std::move(op), [](const v1::OpResult&) {});
}

}  // namespace fusehost
