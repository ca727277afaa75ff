#include "daemon/fuse/kernel_adapter.h"

#include <fuse3/fuse_lowlevel.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/stat_convert.h"
#include "common/paths.h"

namespace fusehost {
namespace {

// Inode number shown for directory entries whose attributes the backend did
// not send (as libfuse's high-level API does).
constexpr ino_t kUnknownIno = 0xffffffff;
constexpr int kMaxGroups = 65536;

bool IsValidFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

// An open directory: the entries fetched so far, from the backend or from a
// cached listing. The kernel's readdir offset n means "continue with item n",
// where items 0 and 1 are "." and "..", and item k + 2 is entries[k].
struct DirHandle {
  struct Entry {
    std::string name;
    // Full attributes when has_attr (answers readdirplus); otherwise only
    // st_ino and the S_IFMT bits of st_mode are meaningful.
    struct stat st;
    bool has_attr = false;
    v1::Attr attr;      // as received, when has_attr (for timeouts)
    uint64_t cookie;    // backend's resume cookie (0 for whole listings)
  };

  // The backend was not asked to open the directory when its listing came
  // from the daemon's cache; then there is nothing to release either.
  bool backend_open = false;
  uint64_t backend_fh = 0;
  std::string path;  // at opendir time; for re-reading a cached listing
  absl::Mutex mu;
  std::vector<Entry> entries ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<std::string> names ABSL_GUARDED_BY(mu);
  bool eof ABSL_GUARDED_BY(mu) = false;
  // Some entries were handed to the kernel: offset 0 now means rewinddir.
  bool started ABSL_GUARDED_BY(mu) = false;
};

DirHandle* DirHandleOf(const struct fuse_file_info* fi) {
  return reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fi->fh));
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

}  // namespace

// All libfuse callbacks. Each one copies what it needs out of the request,
// sends a backend op, and replies from the completion callback.
struct KernelAdapter::Ops {
  // ---- plumbing ------------------------------------------------------------

  static KernelAdapter* Self(fuse_req_t req) {
    return static_cast<KernelAdapter*>(fuse_req_userdata(req));
  }

  // Every kernel request is tracked from its callback to its one reply, for
  // the per-operation counts and latencies. Finish() runs before the reply:
  // afterwards `req` is freed and may be reused for a new request.
  static void Begin(fuse_req_t req, KernelOp op) {
    Self(req)->BeginRequest(req, op);
  }
  static void Finish(fuse_req_t req, int err) {
    Self(req)->EndRequest(req, err);
  }
  static int RErr(fuse_req_t req, int err) {
    Finish(req, err);
    return fuse_reply_err(req, err);
  }
  static void RNone(fuse_req_t req) {
    Finish(req, 0);
    fuse_reply_none(req);
  }
  static int REntry(fuse_req_t req, const struct fuse_entry_param* e) {
    Finish(req, e->ino == 0 ? ENOENT : 0);
    return fuse_reply_entry(req, e);
  }
  static int RAttr(fuse_req_t req, const struct stat* st, double timeout) {
    Finish(req, 0);
    return fuse_reply_attr(req, st, timeout);
  }
  static int RReadlink(fuse_req_t req, const char* target) {
    Finish(req, 0);
    return fuse_reply_readlink(req, target);
  }
  static int ROpen(fuse_req_t req, const struct fuse_file_info* fi) {
    Finish(req, 0);
    return fuse_reply_open(req, fi);
  }
  static int RCreate(fuse_req_t req, const struct fuse_entry_param* e,
                     const struct fuse_file_info* fi) {
    Finish(req, 0);
    return fuse_reply_create(req, e, fi);
  }
  static int RBuf(fuse_req_t req, const char* buf, size_t size) {
    Finish(req, 0);
    return fuse_reply_buf(req, buf, size);
  }
  static int RWrite(fuse_req_t req, size_t count) {
    Finish(req, 0);
    return fuse_reply_write(req, count);
  }
  static int RStatfs(fuse_req_t req, const struct statvfs* st) {
    Finish(req, 0);
    return fuse_reply_statfs(req, st);
  }
  static int RXattr(fuse_req_t req, size_t count) {
    Finish(req, 0);
    return fuse_reply_xattr(req, count);
  }
  static int RLock(fuse_req_t req, const struct flock* lock) {
    Finish(req, 0);
    return fuse_reply_lock(req, lock);
  }
  static int RLseek(fuse_req_t req, off_t off) {
    Finish(req, 0);
    return fuse_reply_lseek(req, off);
  }

  static v1::Op NewOp(fuse_req_t req) {
    v1::Op op;
    const struct fuse_ctx* ctx = fuse_req_ctx(req);
    v1::Caller* caller = op.mutable_caller();
    caller->set_uid(ctx->uid);
    caller->set_gid(ctx->gid);
    caller->set_pid(ctx->pid);
    caller->set_umask(ctx->umask);
    if (ctx->pid != 0) {
      auto groups = Self(req)->groups_.Get(
          ctx->pid, ctx->uid, ctx->gid, [req](CallerGroups::Groups* out) {
            out->resize(64);
            int n = fuse_req_getgroups(req, out->size(), out->data());
            if (n > static_cast<int>(out->size()) && n <= kMaxGroups) {
              out->resize(n);
              n = fuse_req_getgroups(req, out->size(), out->data());
            }
            if (n < 0) return false;
            out->resize(std::min<size_t>(n, out->size()));
            return true;
          });
      for (gid_t g : *groups) caller->add_groups(g);
    }
    return op;
  }

  static void Send(KernelAdapter* self, v1::Op op, OpTransport::Done done) {
    if (self->stopping_.load()) {
      v1::OpResult result;
      result.set_id(op.id());
      result.set_posix_errno(ECANCELED);
      done(result);
      return;
    }
    self->options_.transport->Send(std::move(op), std::move(done));
  }

  // The path of a node for an op that needs a name. Replies and returns
  // nullopt when there is none.
  static std::optional<std::string> NamedPath(fuse_req_t req, fuse_ino_t ino) {
    std::optional<std::string> path = Self(req)->options_.nodes->PathOf(ino);
    if (!path) {
      RErr(req, ESTALE);
    } else if (path->empty()) {
      RErr(req, ENOENT);  // unlinked, and no handle to go by
      return std::nullopt;
    }
    return path;
  }

  // The path of a node for an op that carries a file handle: "" is fine.
  static std::optional<std::string> HandlePath(fuse_req_t req, fuse_ino_t ino) {
    std::optional<std::string> path = Self(req)->options_.nodes->PathOf(ino);
    if (!path) path = std::string();
    return path;
  }

  // Path and handle for an attribute op (getattr/setattr). Without a handle
  // from the kernel, a nameless (unlinked) file is reached through any handle
  // that is still open on it.
  static bool AttrTarget(fuse_req_t req, fuse_ino_t ino,
                         const struct fuse_file_info* fi, std::string* path,
                         std::optional<uint64_t>* fh) {
    if (fi != nullptr) {
      *path = *HandlePath(req, ino);
      *fh = fi->fh;
      return true;
    }
    std::optional<std::string> p = Self(req)->options_.nodes->PathOf(ino);
    if (!p) {
      RErr(req, ESTALE);
      return false;
    }
    *path = *p;
    if (p->empty()) {
      *fh = Self(req)->options_.nodes->AnyOpenHandle(ino);
      if (!*fh) {
        RErr(req, ENOENT);
        return false;
      }
    }
    return true;
  }

  static std::optional<std::string> ChildPath(fuse_req_t req, fuse_ino_t parent,
                                              const char* name) {
    std::optional<std::string> path =
        Self(req)->options_.nodes->ChildPath(parent, name);
    if (!path) {
      RErr(req, ESTALE);
    } else if (path->empty()) {
      RErr(req, ENOENT);
      return std::nullopt;
    }
    return path;
  }

  // Checks a backend attribute set; logs and rejects impossible ones.
  static bool AttrFromBackend(const v1::Attr& attr, fuse_ino_t node,
                              struct stat* st) {
    if (!IsValidFileType(attr.mode())) {
      fprintf(stderr, "fuse-hostd: backend sent invalid file type 0%o\n",
              attr.mode());
      return false;
    }
    StatFromProto(attr, st);
    if (st->st_ino == 0) st->st_ino = node;
    return true;
  }

  // Kernel cache lifetimes: the lifetime the attributes came with (the
  // caching layer fills it), so kernel and daemon caches expire together.
  static double AttrTimeout(fuse_req_t req, const v1::Attr& attr) {
    if (attr.ttl_ms() != 0) return attr.ttl_ms() / 1000.0;
    return Seconds(Self(req)->options_.policy.attr_ttl);
  }
  static double EntryTimeout(fuse_req_t req, const v1::Attr& attr) {
    const auto& entry = Self(req)->options_.mount_options->entry_timeout;
    return entry ? Seconds(*entry) : AttrTimeout(req, attr);
  }

  // Hard links: the other names (nodes) of `node`'s file; their cached
  // attributes in the daemon are dropped here, the kernel's by the caller.
  static std::vector<uint64_t> StaleSiblings(KernelAdapter* self,
                                             uint64_t node) {
    std::vector<uint64_t> siblings = self->options_.nodes->Siblings(node);
    if (self->options_.cache != nullptr) {
      for (uint64_t sibling : siblings) {
        std::optional<std::string> path = self->options_.nodes->PathOf(sibling);
        if (path && !path->empty()) self->options_.cache->DropAttr(*path);
      }
    }
    return siblings;
  }

  static void NoteInode(KernelAdapter* self, uint64_t node,
                        const v1::Attr& attr) {
    self->options_.nodes->NoteInode(
        node, attr.ino(), !S_ISDIR(attr.mode()) && attr.nlink() > 1);
  }

  static void ReplyAttr(fuse_req_t req, fuse_ino_t ino, const v1::Attr& attr) {
    struct stat st;
    if (!AttrFromBackend(attr, ino, &st)) {
      RErr(req, EIO);
      return;
    }
    NoteInode(Self(req), ino, attr);
    RAttr(req, &st, AttrTimeout(req, attr));
  }

  // Fills `e` for (parent, name) and takes a lookup reference; false (and a
  // reply) on failure.
  static bool MakeEntry(fuse_req_t req, fuse_ino_t parent,
                        const std::string& name, const v1::Attr& attr,
                        struct fuse_entry_param* e) {
    KernelAdapter* self = Self(req);
    *e = {};
    if (!IsValidFileType(attr.mode())) {
      RErr(req, EIO);
      return false;
    }
    uint64_t id = self->options_.nodes->AddLookup(parent, name);
    if (id == 0) {
      RErr(req, ESTALE);
      return false;
    }
    AttrFromBackend(attr, id, &e->attr);
    NoteInode(self, id, attr);
    e->ino = id;
    e->attr_timeout = AttrTimeout(req, attr);
    e->entry_timeout = EntryTimeout(req, attr);
    return true;
  }

  static void ReplyEntry(fuse_req_t req, fuse_ino_t parent,
                         const std::string& name, const v1::Attr& attr) {
    struct fuse_entry_param e;
    if (!MakeEntry(req, parent, name, attr, &e)) return;
    NodeTable* nodes = Self(req)->options_.nodes;  // `req` is gone after replying
    if (REntry(req, &e) != 0) {
      // The request was interrupted: the kernel never got the reference.
      nodes->Forget(e.ino, 1);
    }
  }

  // Calls `then(attr)` with the attributes of `path`: from `reply` when the
  // backend sent them, else by asking it. Replies with an error otherwise.
  static void WithAttr(fuse_req_t req, const std::string& path,
                       std::optional<uint64_t> fh, const v1::Attr* known,
                       std::function<void(const v1::Attr&)> then) {
    if (known != nullptr) {
      then(*known);
      return;
    }
    v1::Op op = NewOp(req);
    v1::GetattrRequest* r = op.mutable_getattr();
    r->set_path(path);
    if (fh) r->set_fh(*fh);
    Send(Self(req), std::move(op),
         [req, then = std::move(then)](const v1::OpResult& res) {
           if (res.posix_errno() != 0) {
             RErr(req, SanitizeErrno(res.posix_errno()));
           } else {
             then(res.getattr().attr());
           }
         });
  }

  // Sends an op whose only result is an errno, and replies with it.
  // `on_success` runs before the reply (bookkeeping in the node table).
  static void SendSimple(fuse_req_t req, v1::Op op,
                         std::function<void()> on_success = nullptr) {
    Send(Self(req), std::move(op),
         [req, on_success = std::move(on_success)](const v1::OpResult& res) {
           int err = SanitizeErrno(res.posix_errno());
           if (err == 0 && on_success) on_success();
           RErr(req, err);
         });
  }

  // Sends an op that creates `name` in `parent` and replies with its entry.
  // With `stale` (a node whose link count the operation changed), the
  // kernel drops that node's and its siblings' attributes before the reply.
  static void SendCreating(fuse_req_t req, v1::Op op, fuse_ino_t parent,
                           std::string name, std::string path,
                           uint64_t stale = 0) {
    Send(Self(req), std::move(op),
         [req, parent, name = std::move(name), path = std::move(path),
          stale](const v1::OpResult& res) {
           if (res.posix_errno() != 0) {
             RErr(req, SanitizeErrno(res.posix_errno()));
             return;
           }
           const v1::Attr* known =
               res.entry().has_attr() ? &res.entry().attr() : nullptr;
           WithAttr(req, path, std::nullopt, known,
                    [req, parent, name, stale](const v1::Attr& attr) {
                      if (stale == 0) {
                        ReplyEntry(req, parent, name, attr);
                        return;
                      }
                      KernelAdapter* self = Self(req);
                      std::vector<uint64_t> nodes = StaleSiblings(self, stale);
                      nodes.push_back(stale);
                      self->InvalidateThen(nodes,
                                           [req, parent, name, attr] {
                                             ReplyEntry(req, parent, name, attr);
                                           });
                    });
         });
  }

  static void FillOpenReply(const v1::OpenReply& r, struct fuse_file_info* fi) {
    fi->fh = r.fh();
    fi->direct_io = r.direct_io();
    fi->keep_cache = r.keep_cache();
    fi->nonseekable = r.nonseekable();
    fi->noflush = r.noflush();
  }

  // The kernel will never release a handle whose open reply it did not get.
  static void ReleaseOrphan(KernelAdapter* self, const std::string& path,
                            uint64_t fh, int flags) {
    v1::Op op;
    op.mutable_release()->set_path(path);
    op.mutable_release()->set_fh(fh);
    op.mutable_release()->set_flags(flags);
    Send(self, std::move(op), [](const v1::OpResult&) {});
  }

  // ---- session -------------------------------------------------------------

  static void Init(void* userdata, struct fuse_conn_info* conn) {
    auto* self = static_cast<KernelAdapter*>(userdata);
    const MountOptions& opts = *self->options_.mount_options;
    if (opts.max_write != 0) conn->max_write = opts.max_write;
    // The backend resolves O_TRUNC inside open, saving a setattr round trip.
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
      conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    }
    // Every readdir with attributes, not only a directory's first chunk (the
    // kernel's "auto" mode): the daemon answers all of them from one
    // listing, and each entry it hands out spares the kernel a LOOKUP when
    // find or ls -l stats the name.
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    // Kernel-side lock emulation unless the backend does locking itself.
    if (!self->options_.posix_locks) conn->want &= ~FUSE_CAP_POSIX_LOCKS;
    if (!self->options_.flock_locks) conn->want &= ~FUSE_CAP_FLOCK_LOCKS;
    conn->time_gran = 1;
  }

  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    Begin(req, KernelOp::kForget);
    Self(req)->options_.nodes->Forget(ino, nlookup);
    RNone(req);
  }

  static void ForgetMulti(fuse_req_t req, size_t count,
                          struct fuse_forget_data* forgets) {
    Begin(req, KernelOp::kForget);
    NodeTable* nodes = Self(req)->options_.nodes;
    for (size_t i = 0; i < count; ++i) {
      nodes->Forget(forgets[i].ino, forgets[i].nlookup);
    }
    RNone(req);
  }

  // ---- names and attributes ------------------------------------------------

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Begin(req, KernelOp::kLookup);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_getattr()->set_path(*path);
    Send(Self(req), std::move(op),
         [req, parent, name = std::string(name)](const v1::OpResult& res) {
           int err = SanitizeErrno(res.posix_errno());
           double negative =
               Seconds(Self(req)->options_.policy.negative_ttl);
           if (err == ENOENT && negative > 0) {
             // ino 0 lets the kernel cache the absence of the name.
             struct fuse_entry_param e = {};
             e.entry_timeout = negative;
             REntry(req, &e);
           } else if (err != 0) {
             RErr(req, err);
           } else {
             ReplyEntry(req, parent, name, res.getattr().attr());
           }
         });
  }

  static void Getattr(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    Begin(req, KernelOp::kGetattr);
    std::string path;
    std::optional<uint64_t> fh;
    if (!AttrTarget(req, ino, fi, &path, &fh)) return;
    v1::Op op = NewOp(req);
    op.mutable_getattr()->set_path(path);
    if (fh) op.mutable_getattr()->set_fh(*fh);
    Send(Self(req), std::move(op), [req, ino](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
      } else {
        ReplyAttr(req, ino, res.getattr().attr());
      }
    });
  }

  // setattr is several path operations (chmod, chown, truncate, utimens, in
  // libfuse's order), run one after the other; the first failure is the reply.
  struct SetattrChain : std::enable_shared_from_this<SetattrChain> {
    fuse_req_t req;
    fuse_ino_t ino;
    std::string path;
    std::optional<uint64_t> fh;
    std::vector<v1::Op> ops;
    size_t next = 0;
    v1::Attr last_attr;
    bool have_attr = false;

    void Run() {
      if (next == ops.size()) {
        WithAttr(req, path, fh, have_attr ? &last_attr : nullptr,
                 [req = req, ino = ino](const v1::Attr& attr) {
                   KernelAdapter* self = Self(req);
                   self->InvalidateThen(StaleSiblings(self, ino),
                                        [req, ino, attr] {
                                          ReplyAttr(req, ino, attr);
                                        });
                 });
        return;
      }
      auto self = shared_from_this();
      Send(Self(req), std::move(ops[next++]),
           [self](const v1::OpResult& res) {
             if (res.posix_errno() != 0) {
               RErr(self->req, SanitizeErrno(res.posix_errno()));
               return;
             }
             self->have_attr = res.entry().has_attr();
             if (self->have_attr) self->last_attr = res.entry().attr();
             self->Run();
           });
    }
  };

  static void SetTime(const struct timespec& ts, bool set, bool now,
                      v1::TimeSet* out) {
    if (!set) {
      out->set_kind(v1::TimeSet::OMIT);
    } else if (now) {
      out->set_kind(v1::TimeSet::NOW);
    } else {
      out->set_kind(v1::TimeSet::SET);
      TimespecToProto(ts, out->mutable_time());
    }
  }

  static void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr,
                      int to_set, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kSetattr);
    if (to_set & FUSE_SET_ATTR_SIZE) Self(req)->open_contents_.ForgetInode(ino);
    auto chain = std::make_shared<SetattrChain>();
    if (!AttrTarget(req, ino, fi, &chain->path, &chain->fh)) return;
    chain->req = req;
    chain->ino = ino;
    const std::string* path = &chain->path;
    const v1::Op base = NewOp(req);  // caller info, read once
    if (to_set & FUSE_SET_ATTR_MODE) {
      v1::Op op = base;
      v1::ChmodRequest* r = op.mutable_chmod();
      r->set_path(*path);
      r->set_mode(attr->st_mode & 07777);
      if (chain->fh) r->set_fh(*chain->fh);
      chain->ops.push_back(std::move(op));
    }
    if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
      v1::Op op = base;
      v1::ChownRequest* r = op.mutable_chown();
      r->set_path(*path);
      if (to_set & FUSE_SET_ATTR_UID) r->set_uid(attr->st_uid);
      if (to_set & FUSE_SET_ATTR_GID) r->set_gid(attr->st_gid);
      if (chain->fh) r->set_fh(*chain->fh);
      chain->ops.push_back(std::move(op));
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
      v1::Op op = base;
      v1::TruncateRequest* r = op.mutable_truncate();
      r->set_path(*path);
      r->set_size(attr->st_size);
      if (chain->fh) r->set_fh(*chain->fh);
      chain->ops.push_back(std::move(op));
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
      v1::Op op = base;
      v1::UtimensRequest* r = op.mutable_utimens();
      r->set_path(*path);
      SetTime(attr->st_atim, to_set & FUSE_SET_ATTR_ATIME,
              to_set & FUSE_SET_ATTR_ATIME_NOW, r->mutable_atime());
      SetTime(attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME,
              to_set & FUSE_SET_ATTR_MTIME_NOW, r->mutable_mtime());
      if (chain->fh) r->set_fh(*chain->fh);
      chain->ops.push_back(std::move(op));
    }
    chain->Run();
  }

  static void Readlink(fuse_req_t req, fuse_ino_t ino) {
    Begin(req, KernelOp::kReadlink);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_readlink()->set_path(*path);
    Send(Self(req), std::move(op), [req](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
        return;
      }
      std::string target = res.readlink().target();
      target = target.substr(0, std::min(target.find('\0'), size_t{PATH_MAX - 1}));
      if (target.empty()) {
        RErr(req, EIO);
      } else {
        RReadlink(req, target.c_str());
      }
    });
  }

  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name,
                    mode_t mode, dev_t rdev) {
    Begin(req, KernelOp::kMknod);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_mknod()->set_path(*path);
    op.mutable_mknod()->set_mode(mode);
    op.mutable_mknod()->set_rdev(rdev);
    SendCreating(req, std::move(op), parent, name, *path);
  }

  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name,
                    mode_t mode) {
    Begin(req, KernelOp::kMkdir);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_mkdir()->set_path(*path);
    op.mutable_mkdir()->set_mode(mode & ~S_IFMT);
    SendCreating(req, std::move(op), parent, name, *path);
  }

  static void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent,
                      const char* name) {
    Begin(req, KernelOp::kSymlink);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_symlink()->set_target(target);
    op.mutable_symlink()->set_path(*path);
    SendCreating(req, std::move(op), parent, name, *path);
  }

  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                   const char* newname) {
    Begin(req, KernelOp::kLink);
    std::optional<std::string> old_path = NamedPath(req, ino);
    if (!old_path) return;
    std::optional<std::string> new_path = ChildPath(req, newparent, newname);
    if (!new_path) return;
    v1::Op op = NewOp(req);
    op.mutable_link()->set_old_path(*old_path);
    op.mutable_link()->set_new_path(*new_path);
    // The new name becomes a node of its own; the kernel keeps the old
    // node's attributes (and its other names'), whose link count just
    // changed: they are dropped before the reply.
    SendCreating(req, std::move(op), newparent, newname, *new_path,
                 /*stale=*/ino);
  }

  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Begin(req, KernelOp::kUnlink);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_unlink()->set_path(*path);
    KernelAdapter* self = Self(req);
    Send(self, std::move(op),
         [self, req, parent, name = std::string(name),
          path = *path](const v1::OpResult& res) {
           int err = SanitizeErrno(res.posix_errno());
           if (err != 0) {
             RErr(req, err);
             return;
           }
           // The file's other names just lost a link.
           uint64_t node = self->options_.nodes->Find(path);
           std::vector<uint64_t> siblings;
           if (node != 0) siblings = StaleSiblings(self, node);
           self->options_.nodes->Remove(parent, name);
           self->InvalidateThen(siblings,
                                [req] { RErr(req, 0); });
         });
  }

  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Begin(req, KernelOp::kRmdir);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_rmdir()->set_path(*path);
    NodeTable* nodes = Self(req)->options_.nodes;
    SendSimple(req, std::move(op), [nodes, parent, name = std::string(name)] {
      nodes->Remove(parent, name);
    });
  }

  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name,
                     fuse_ino_t newparent, const char* newname,
                     unsigned int flags) {
    Begin(req, KernelOp::kRename);
    std::optional<std::string> old_path = ChildPath(req, parent, name);
    if (!old_path) return;
    std::optional<std::string> new_path = ChildPath(req, newparent, newname);
    if (!new_path) return;
    v1::Op op = NewOp(req);
    op.mutable_rename()->set_old_path(*old_path);
    op.mutable_rename()->set_new_path(*new_path);
    op.mutable_rename()->set_flags(flags);
    NodeTable* nodes = Self(req)->options_.nodes;
    SendSimple(req, std::move(op),
               [nodes, parent, name = std::string(name), newparent,
                newname = std::string(newname), flags] {
                 nodes->Rename(parent, name, newparent, newname,
                               (flags & RENAME_EXCHANGE) != 0);
               });
  }

  // ---- files ---------------------------------------------------------------

  static void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kOpen);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_open()->set_path(*path);
    op.mutable_open()->set_flags(fi->flags);
    struct fuse_file_info info = *fi;
    Send(Self(req), std::move(op),
         [req, ino, info, path = *path](const v1::OpResult& res) mutable {
           if (res.posix_errno() != 0) {
             RErr(req, SanitizeErrno(res.posix_errno()));
             return;
           }
           FillOpenReply(res.open(), &info);
           KernelAdapter* self = Self(req);
           self->options_.nodes->AddOpenHandle(ino, info.fh);
           // Kept before the reply: the kernel's first read follows it.
           if (res.open().has_contents()) {
             self->open_contents_.Keep(info.fh, ino, res.open().contents());
           }
           if (ROpen(req, &info) != 0) {
             self->open_contents_.ForgetHandle(info.fh);
             self->options_.nodes->RemoveOpenHandle(ino, info.fh);
             ReleaseOrphan(self, path, info.fh, info.flags);
           }
         });
  }

  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name,
                     mode_t mode, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kCreate);
    std::optional<std::string> path = ChildPath(req, parent, name);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_create()->set_path(*path);
    op.mutable_create()->set_mode(mode);
    op.mutable_create()->set_flags(fi->flags);
    struct fuse_file_info info = *fi;
    Send(Self(req), std::move(op),
         [req, info, parent, name = std::string(name),
          path = *path](const v1::OpResult& res) mutable {
           if (res.posix_errno() != 0) {
             RErr(req, SanitizeErrno(res.posix_errno()));
             return;
           }
           FillOpenReply(res.create().open(), &info);
           const v1::Attr* known =
               res.create().has_attr() ? &res.create().attr() : nullptr;
           KernelAdapter* self = Self(req);
           WithAttr(req, path, info.fh, known,
                    [req, self, info, parent, name, path](const v1::Attr& attr) {
                      struct fuse_entry_param e;
                      if (!MakeEntry(req, parent, name, attr, &e)) {
                        ReleaseOrphan(self, path, info.fh, info.flags);
                        return;
                      }
                      self->options_.nodes->AddOpenHandle(e.ino, info.fh);
                      if (RCreate(req, &e, &info) != 0) {
                        self->options_.nodes->RemoveOpenHandle(e.ino, info.fh);
                        self->options_.nodes->Forget(e.ino, 1);
                        ReleaseOrphan(self, path, info.fh, info.flags);
                      }
                    });
         });
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info* fi) {
    Begin(req, KernelOp::kRead);
    std::string kept;
    if (Self(req)->open_contents_.TakeFirstRead(fi->fh, off, size, &kept)) {
      RBuf(req, kept.data(), kept.size());
      return;
    }
    std::optional<std::string> path = HandlePath(req, ino);
    v1::Op op = NewOp(req);
    v1::ReadRequest* r = op.mutable_read();
    r->set_path(*path);
    r->set_fh(fi->fh);
    r->set_offset(off);
    r->set_size(size);
    Send(Self(req), std::move(op), [req, size](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
        return;
      }
      const std::string& data = res.read().data();
      RBuf(req, data.data(), std::min(data.size(), size));
    });
  }

  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf,
                    size_t size, off_t off, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kWrite);
    Self(req)->open_contents_.ForgetInode(ino);
    std::optional<std::string> path = HandlePath(req, ino);
    v1::Op op = NewOp(req);
    v1::WriteRequest* r = op.mutable_write();
    r->set_path(*path);
    r->set_fh(fi->fh);
    r->set_offset(off);
    r->set_data(buf, size);
    r->set_flags(fi->flags);
    KernelAdapter* self = Self(req);
    Send(self, std::move(op), [self, req, ino, size](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
        return;
      }
      size_t written = std::min<size_t>(res.write().size(), size);
      // Other names of the file must not keep its old size and pages.
      self->InvalidateThen(StaleSiblings(self, ino),
                           [req, written] { RWrite(req, written); });
    });
  }

  static void Flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kFlush);
    v1::Op op = NewOp(req);
    op.mutable_flush()->set_path(*HandlePath(req, ino));
    op.mutable_flush()->set_fh(fi->fh);
    op.mutable_flush()->set_lock_owner(fi->lock_owner);
    SendSimple(req, std::move(op));
  }

  static void Release(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    Begin(req, KernelOp::kRelease);
    v1::Op op = NewOp(req);
    op.mutable_release()->set_path(*HandlePath(req, ino));
    op.mutable_release()->set_fh(fi->fh);
    op.mutable_release()->set_flags(fi->flags);
    KernelAdapter* self = Self(req);
    self->open_contents_.ForgetHandle(fi->fh);
    self->options_.nodes->RemoveOpenHandle(ino, fi->fh);
    // The kernel ignores release errors and nothing waits for it, so reply
    // at once and let the backend close the handle in the background; this
    // saves a round trip on every close.
    RErr(req, 0);
    Send(self, std::move(op), [](const v1::OpResult&) {});
  }

  static void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                    struct fuse_file_info* fi) {
    Begin(req, KernelOp::kFsync);
    v1::Op op = NewOp(req);
    op.mutable_fsync()->set_path(*HandlePath(req, ino));
    op.mutable_fsync()->set_fh(fi->fh);
    op.mutable_fsync()->set_datasync(datasync != 0);
    SendSimple(req, std::move(op));
  }

  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                        off_t length, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kFallocate);
    Self(req)->open_contents_.ForgetInode(ino);
    v1::Op op = NewOp(req);
    v1::FallocateRequest* r = op.mutable_fallocate();
    r->set_path(*HandlePath(req, ino));
    r->set_fh(fi->fh);
    r->set_mode(mode);
    r->set_offset(offset);
    r->set_length(length);
    SendSimple(req, std::move(op));
  }

  static void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                            struct fuse_file_info* fi_in, fuse_ino_t ino_out,
                            off_t off_out, struct fuse_file_info* fi_out,
                            size_t len, int flags) {
    Begin(req, KernelOp::kCopyFileRange);
    Self(req)->open_contents_.ForgetInode(ino_out);
    v1::Op op = NewOp(req);
    v1::CopyFileRangeRequest* r = op.mutable_copy_file_range();
    r->set_path_in(*HandlePath(req, ino_in));
    r->set_fh_in(fi_in->fh);
    r->set_offset_in(off_in);
    r->set_path_out(*HandlePath(req, ino_out));
    r->set_fh_out(fi_out->fh);
    r->set_offset_out(off_out);
    r->set_length(len);
    r->set_flags(flags);
    Send(Self(req), std::move(op), [req, len](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
      } else {
        RWrite(req, std::min<uint64_t>(res.copy_file_range().size(), len));
      }
    });
  }

  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                    struct fuse_file_info* fi) {
    Begin(req, KernelOp::kLseek);
    v1::Op op = NewOp(req);
    v1::LseekRequest* r = op.mutable_lseek();
    r->set_path(*HandlePath(req, ino));
    r->set_fh(fi->fh);
    r->set_offset(off);
    r->set_whence(whence);
    Send(Self(req), std::move(op), [req](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
      } else if (res.lseek().offset() < 0) {
        RErr(req, EIO);
      } else {
        RLseek(req, res.lseek().offset());
      }
    });
  }

  static void Getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    struct flock* lock) {
    Begin(req, KernelOp::kGetlk);
    v1::Op op = NewOp(req);
    v1::LockRequest* r = op.mutable_lock();
    r->set_path(*HandlePath(req, ino));
    r->set_fh(fi->fh);
    r->set_cmd(F_GETLK);
    r->set_lock_owner(fi->lock_owner);
    r->mutable_lock()->set_type(lock->l_type);
    r->mutable_lock()->set_start(lock->l_start);
    r->mutable_lock()->set_len(lock->l_len);
    r->mutable_lock()->set_pid(lock->l_pid);
    Send(Self(req), std::move(op), [req](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
        return;
      }
      struct flock out = {};
      const v1::FileLock& l = res.lock().lock();
      out.l_type = l.type();
      out.l_whence = SEEK_SET;
      out.l_start = l.start();
      out.l_len = l.len();
      out.l_pid = l.pid();
      RLock(req, &out);
    });
  }

  static void Setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    struct flock* lock, int sleep) {
    Begin(req, KernelOp::kSetlk);
    v1::Op op = NewOp(req);
    v1::LockRequest* r = op.mutable_lock();
    r->set_path(*HandlePath(req, ino));
    r->set_fh(fi->fh);
    r->set_cmd(sleep ? F_SETLKW : F_SETLK);
    r->set_lock_owner(fi->lock_owner);
    r->mutable_lock()->set_type(lock->l_type);
    r->mutable_lock()->set_start(lock->l_start);
    r->mutable_lock()->set_len(lock->l_len);
    r->mutable_lock()->set_pid(lock->l_pid);
    SendSimple(req, std::move(op));
  }

  static void Flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi,
                    int operation) {
    Begin(req, KernelOp::kFlock);
    v1::Op op = NewOp(req);
    v1::FlockRequest* r = op.mutable_flock();
    r->set_path(*HandlePath(req, ino));
    r->set_fh(fi->fh);
    r->set_operation(operation);
    r->set_lock_owner(fi->lock_owner);
    SendSimple(req, std::move(op));
  }

  // Argument layouts differ per command: see the note in filesystem.proto.
  static void Ioctl(fuse_req_t req, fuse_ino_t, unsigned int, void*,
                    struct fuse_file_info*, unsigned, const void*, size_t,
                    size_t) {
    Begin(req, KernelOp::kIoctl);
    RErr(req, ENOTTY);
  }

  // ---- whole filesystem, xattrs, access ------------------------------------

  static void Statfs(fuse_req_t req, fuse_ino_t ino) {
    Begin(req, KernelOp::kStatfs);
    std::optional<std::string> path = Self(req)->options_.nodes->PathOf(ino);
    v1::Op op = NewOp(req);
    op.mutable_statfs()->set_path(path && !path->empty() ? *path : "/");
    Send(Self(req), std::move(op), [req](const v1::OpResult& res) {
      if (res.posix_errno() != 0) {
        RErr(req, SanitizeErrno(res.posix_errno()));
        return;
      }
      struct statvfs st;
      StatvfsFromProto(res.statfs(), &st);
      RStatfs(req, &st);
    });
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    Begin(req, KernelOp::kAccess);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_access()->set_path(*path);
    op.mutable_access()->set_mask(mask);
    SendSimple(req, std::move(op));
  }

  static void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                       const char* value, size_t size, int flags) {
    Begin(req, KernelOp::kSetxattr);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    v1::SetxattrRequest* r = op.mutable_setxattr();
    r->set_path(*path);
    r->set_name(name);
    r->set_value(value, size);
    r->set_flags(flags);
    SendSimple(req, std::move(op));
  }

  // getxattr/listxattr: size 0 asks for the length only; a value that does
  // not fit the caller's buffer is ERANGE.
  static void ReplyXattr(fuse_req_t req, size_t size, const v1::OpResult& res) {
    if (res.posix_errno() != 0) {
      RErr(req, SanitizeErrno(res.posix_errno()));
      return;
    }
    const std::string& data = res.xattr().data();
    if (size == 0) {
      RXattr(req, data.size());
    } else if (data.size() > size) {
      RErr(req, ERANGE);
    } else {
      RBuf(req, data.data(), data.size());
    }
  }

  static void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                       size_t size) {
    Begin(req, KernelOp::kGetxattr);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_getxattr()->set_path(*path);
    op.mutable_getxattr()->set_name(name);
    op.mutable_getxattr()->set_size(size);
    Send(Self(req), std::move(op), [req, size](const v1::OpResult& res) {
      ReplyXattr(req, size, res);
    });
  }

  static void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    Begin(req, KernelOp::kListxattr);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_listxattr()->set_path(*path);
    op.mutable_listxattr()->set_size(size);
    Send(Self(req), std::move(op), [req, size](const v1::OpResult& res) {
      ReplyXattr(req, size, res);
    });
  }

  static void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    Begin(req, KernelOp::kRemovexattr);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    v1::Op op = NewOp(req);
    op.mutable_removexattr()->set_path(*path);
    op.mutable_removexattr()->set_name(name);
    SendSimple(req, std::move(op));
  }

  // ---- directories ---------------------------------------------------------

  // Fills a handle from a cached listing (names from the listing, full
  // attributes from the attribute cache where it still has them). False if
  // the cache has no fresh listing.
  static bool FillFromCache(KernelAdapter* self, DirHandle* h)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu) {
    MetadataCache* cache = self->options_.cache;
    if (cache == nullptr || h->path.empty()) return false;
    std::optional<Listing> listing = cache->GetListing(h->path);
    if (self->options_.stats != nullptr) {
      self->options_.stats->RecordCacheLookup(CacheKind::kDir, listing.has_value());
    }
    if (!listing) return false;
    h->entries.clear();
    h->names.clear();
    h->entries.reserve(listing->size());
    for (const auto& [name, le] : *listing) {
      DirHandle::Entry e;
      e.name = name;
      e.st = {};
      e.cookie = 0;
      if (cache->GetAttr(ChildPathOf(h->path, name), &e.attr) ==
              MetadataCache::AttrLookup::kHit &&
          IsValidFileType(e.attr.mode())) {
        e.has_attr = true;
        StatFromProto(e.attr, &e.st);
      } else {
        e.st.st_ino = le.ino;
        e.st.st_mode = le.type;
      }
      if (e.st.st_ino == 0) e.st.st_ino = kUnknownIno;
      h->entries.push_back(std::move(e));
    }
    h->eof = true;
    return true;
  }

  static void ReplyOpendir(fuse_req_t req, DirHandle* handle,
                           struct fuse_file_info info) {
    KernelAdapter* self = Self(req);
    info.fh = reinterpret_cast<uintptr_t>(handle);
    // Let the kernel keep listings in its page cache while they may be
    // cached at all. It drops them itself when the directory changes
    // through the mount or its mtime moves, and on invalidation.
    if (self->options_.policy.listing_ttl > absl::ZeroDuration()) {
      info.cache_readdir = 1;
      info.keep_cache = 1;
    }
    if (ROpen(req, &info) != 0) ReleaseDirHandle(self, handle);
  }

  static void ReleaseDirHandle(KernelAdapter* self, DirHandle* handle) {
    if (handle->backend_open) {
      v1::Op op;
      op.mutable_releasedir()->set_path(handle->path);
      op.mutable_releasedir()->set_fh(handle->backend_fh);
      Send(self, std::move(op), [](const v1::OpResult&) {});
    }
    delete handle;
  }

  static void Opendir(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info* fi) {
    Begin(req, KernelOp::kOpendir);
    std::optional<std::string> path = NamedPath(req, ino);
    if (!path) return;
    auto* handle = new DirHandle;
    handle->path = *path;
    bool cached;
    {
      absl::MutexLock lock(&handle->mu);
      cached = FillFromCache(Self(req), handle);
    }
    // After the reply the kernel may release the handle at any moment, so
    // nothing of it may be held (its lock included) while replying.
    if (cached) {
      ReplyOpendir(req, handle, *fi);
      return;
    }
    v1::Op op = NewOp(req);
    op.mutable_opendir()->set_path(*path);
    op.mutable_opendir()->set_flags(fi->flags);
    struct fuse_file_info info = *fi;
    Send(Self(req), std::move(op),
         [req, info, handle](const v1::OpResult& res) {
           if (res.posix_errno() != 0) {
             delete handle;
             RErr(req, SanitizeErrno(res.posix_errno()));
             return;
           }
           handle->backend_open = true;
           handle->backend_fh = res.opendir().fh();
           ReplyOpendir(req, handle, info);
         });
  }

  // Appends the backend's page to the handle, dropping names the kernel could
  // never have produced and duplicates.
  static void AddEntries(DirHandle* h, const v1::ReaddirReply& reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu) {
    bool whole_listing = true;
    for (const v1::DirEntry& in : reply.entries()) {
      if (in.offset() != 0) whole_listing = false;
      if (in.name() == "." || in.name() == "..") continue;  // we add our own
      if (!IsValidName(in.name()) || !h->names.insert(in.name()).second) {
        fprintf(stderr, "fuse-hostd: dropped invalid or duplicate name from "
                        "backend readdir\n");
        continue;
      }
      DirHandle::Entry e;
      e.name = in.name();
      e.st = {};
      e.cookie = in.offset();
      if (in.has_attr() && IsValidFileType(in.attr().mode())) {
        e.has_attr = true;
        e.attr = in.attr();
        StatFromProto(e.attr, &e.st);
      } else {
        e.st.st_mode = (in.has_attr() ? in.attr().mode() : in.type()) & S_IFMT;
      }
      if (e.st.st_ino == 0) e.st.st_ino = kUnknownIno;
      h->entries.push_back(std::move(e));
    }
    // A whole listing, an explicit end, or an empty page (which would loop
    // forever otherwise) ends the directory.
    h->eof = reply.eof() || whole_listing || reply.entries_size() == 0;
  }

  // Adds one item to a readdir(plus) reply buffer; false when it does not
  // fit. For readdirplus an entry with attributes hands the kernel a lookup
  // reference, counted in the node table only once the entry fits.
  static bool AddItem(fuse_req_t req, fuse_ino_t dir, bool plus,
                      const char* name, const DirHandle::Entry* e,
                      off_t next, char* buf, size_t room, size_t* used) {
    struct stat st = {};
    if (e != nullptr) {
      st = e->st;
    } else {
      st.st_mode = S_IFDIR;
      st.st_ino = kUnknownIno;
    }
    if (!plus) {
      size_t len = fuse_add_direntry(req, buf, room, name, &st, next);
      if (len > room) return false;
      *used += len;
      return true;
    }
    struct fuse_entry_param param = {};
    param.attr = st;  // ino 0: the kernel only learns the name and type
    size_t len = fuse_add_direntry_plus(req, nullptr, 0, name, &param, next);
    if (len > room) return false;
    if (e != nullptr && e->has_attr) {
      uint64_t id = Self(req)->options_.nodes->AddLookup(dir, e->name);
      if (id != 0) {
        NoteInode(Self(req), id, e->attr);
        param.ino = id;
        if (param.attr.st_ino == 0 || param.attr.st_ino == kUnknownIno) {
          param.attr.st_ino = id;
        }
        param.attr_timeout = AttrTimeout(req, e->attr);
        param.entry_timeout = EntryTimeout(req, e->attr);
      }
    }
    fuse_add_direntry_plus(req, buf, room, name, &param, next);
    *used += len;
    return true;
  }

  // Replies with items starting at `off`, fetching more from the backend
  // while the buffer runs short and the directory has not ended.
  static void ContinueReaddir(fuse_req_t req, fuse_ino_t dir, DirHandle* h,
                              bool plus, size_t size, off_t off) {
    std::string buf;
    bool need_more = false;
    uint64_t cookie = 0;
    {
      absl::MutexLock lock(&h->mu);
      buf.resize(size);
      size_t used = 0;
      for (off_t item = off;; ++item) {
        bool fits;
        if (item == 0 || item == 1) {
          fits = AddItem(req, dir, plus, item == 0 ? "." : "..", nullptr,
                         item + 1, &buf[used], size - used, &used);
        } else if (static_cast<size_t>(item - 2) < h->entries.size()) {
          const DirHandle::Entry& e = h->entries[item - 2];
          fits = AddItem(req, dir, plus, e.name.c_str(), &e, item + 1,
                         &buf[used], size - used, &used);
        } else {
          // Ran out of fetched entries. Fetch more only if nothing fits yet;
          // otherwise the kernel comes back for the rest.
          need_more = !h->eof && used == 0;
          if (!h->entries.empty()) cookie = h->entries.back().cookie;
          break;
        }
        if (!fits) break;
        h->started = true;
      }
      buf.resize(used);
    }
    if (!need_more) {
      RBuf(req, buf.data(), buf.size());
      return;
    }
    v1::Op op = NewOp(req);
    v1::ReaddirRequest* r = op.mutable_readdir();
    r->set_path(h->path.empty() ? *HandlePath(req, dir) : h->path);
    r->set_fh(h->backend_fh);
    r->set_offset(cookie);
    Send(Self(req), std::move(op),
         [req, dir, h, plus, size, off](const v1::OpResult& res) {
           if (res.posix_errno() != 0) {
             RErr(req, SanitizeErrno(res.posix_errno()));
             return;
           }
           {
             absl::MutexLock lock(&h->mu);
             AddEntries(h, res.readdir());
           }
           ContinueReaddir(req, dir, h, plus, size, off);
         });
  }

  static void StartReaddir(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info* fi, bool plus) {
    DirHandle* h = DirHandleOf(fi);
    if (off == 0) {
      absl::MutexLock lock(&h->mu);
      if (h->started) {
        // rewinddir: a fresh pass sees a fresh listing.
        h->started = false;
        if (!FillFromCache(Self(req), h)) {
          if (h->backend_open) {
            h->entries.clear();
            h->names.clear();
            h->eof = false;
          }
          // Without a backend handle the old snapshot is all there is.
        }
      }
    }
    ContinueReaddir(req, ino, h, plus, size, off);
  }

  static void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info* fi) {
    Begin(req, KernelOp::kReaddir);
    StartReaddir(req, ino, size, off, fi, /*plus=*/false);
  }

  static void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off, struct fuse_file_info* fi) {
    Begin(req, KernelOp::kReaddirplus);
    StartReaddir(req, ino, size, off, fi, /*plus=*/true);
  }

  static void Releasedir(fuse_req_t req, fuse_ino_t,
                         struct fuse_file_info* fi) {
    Begin(req, KernelOp::kReleasedir);
    // The kernel does not wait for anything here; the backend learns of it
    // in the background.
    ReleaseDirHandle(Self(req), DirHandleOf(fi));
    RErr(req, 0);
  }

  static void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                       struct fuse_file_info* fi) {
    Begin(req, KernelOp::kFsyncdir);
    DirHandle* h = DirHandleOf(fi);
    if (!h->backend_open) {
      RErr(req, 0);  // nothing of the backend's is open to sync
      return;
    }
    v1::Op op = NewOp(req);
    op.mutable_fsyncdir()->set_path(*HandlePath(req, ino));
    op.mutable_fsyncdir()->set_fh(h->backend_fh);
    op.mutable_fsyncdir()->set_datasync(datasync != 0);
    SendSimple(req, std::move(op));
  }

  static struct fuse_lowlevel_ops Table(bool posix_locks, bool flock_locks) {
    struct fuse_lowlevel_ops ops = {};
    ops.init = Init;
    ops.lookup = Lookup;
    ops.forget = Forget;
    ops.forget_multi = ForgetMulti;
    ops.getattr = Getattr;
    ops.setattr = Setattr;
    ops.readlink = Readlink;
    ops.mknod = Mknod;
    ops.mkdir = Mkdir;
    ops.unlink = Unlink;
    ops.rmdir = Rmdir;
    ops.symlink = Symlink;
    ops.rename = Rename;
    ops.link = Link;
    ops.open = Open;
    ops.read = Read;
    ops.write = Write;
    ops.flush = Flush;
    ops.release = Release;
    ops.fsync = Fsync;
    ops.opendir = Opendir;
    ops.readdir = Readdir;
    ops.readdirplus = Readdirplus;
    ops.releasedir = Releasedir;
    ops.fsyncdir = Fsyncdir;
    ops.statfs = Statfs;
    ops.setxattr = Setxattr;
    ops.getxattr = Getxattr;
    ops.listxattr = Listxattr;
    ops.removexattr = Removexattr;
    ops.access = Access;
    ops.create = Create;
    // libfuse advertises lock support exactly when these are set.
    if (posix_locks) {
      ops.getlk = Getlk;
      ops.setlk = Setlk;
    }
    if (flock_locks) ops.flock = Flock;
    ops.ioctl = Ioctl;
    ops.fallocate = Fallocate;
    ops.copy_file_range = CopyFileRange;
    ops.lseek = Lseek;
    // poll and bmap stay unset: libfuse answers ENOSYS (see the .proto).
    return ops;
  }
};

KernelAdapter::KernelAdapter(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<KernelAdapter>> KernelAdapter::Start(
    Options options) {
  std::unique_ptr<KernelAdapter> adapter(new KernelAdapter(std::move(options)));
  struct fuse_lowlevel_ops ops = Ops::Table(adapter->options_.posix_locks,
                                            adapter->options_.flock_locks);
  char arg0[] = "fuse-hostd";
  char* argv[] = {arg0, nullptr};
  struct fuse_args args = FUSE_ARGS_INIT(1, argv);
  adapter->session_ =
      fuse_session_new(&args, &ops, sizeof(ops), adapter.get());
  if (adapter->session_ == nullptr) {
    close(adapter->options_.fuse_fd);
    return absl::InternalError("cannot create a FUSE session");
  }
  // "/dev/fd/N" makes libfuse use the connection mounted by the daemon.
  std::string fd_path = absl::StrCat("/dev/fd/", adapter->options_.fuse_fd);
  if (fuse_session_mount(adapter->session_, fd_path.c_str()) != 0) {
    fuse_session_destroy(adapter->session_);
    adapter->session_ = nullptr;
    close(adapter->options_.fuse_fd);
    return absl::InternalError("cannot attach the FUSE session");
  }
  KernelAdapter* self = adapter.get();
  adapter->inval_thread_ = std::thread([self] {
    pthread_setname_np(pthread_self(), "kernel-inval");  // for top -H
    self->InvalidationLoop();
  });
  adapter->loop_thread_ = std::thread([self] {
    // libfuse's worker threads inherit the name.
    pthread_setname_np(pthread_self(), "fuse-worker");
    struct fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, 4);
    fuse_session_loop_mt(self->session_, config);
    fuse_loop_cfg_destroy(config);
    self->session_ended_.store(true);
    if (self->options_.on_session_end) self->options_.on_session_end();
  });
  return adapter;
}

void KernelAdapter::BeginRequest(const void* req, KernelOp op) {
  if (!after_init_done_.load(std::memory_order_relaxed) &&
      !after_init_done_.exchange(true) && options_.after_init) {
    options_.after_init();
  }
  if (options_.stats == nullptr) return;
  absl::MutexLock lock(&requests_mu_);
  requests_[req] = Pending{op, absl::Now()};
}

void KernelAdapter::EndRequest(const void* req, int posix_errno) {
  if (options_.stats == nullptr) return;
  Pending pending;
  {
    absl::MutexLock lock(&requests_mu_);
    auto it = requests_.find(req);
    if (it == requests_.end()) return;
    pending = it->second;
    requests_.erase(it);
  }
  options_.stats->RecordRequest(pending.op, absl::Now() - pending.start,
                                posix_errno);
}

void KernelAdapter::Enqueue(Invalidation inv) {
  absl::MutexLock lock(&inval_mu_);
  inval_queue_.push_back(std::move(inv));
}

void KernelAdapter::InvalidateThen(const std::vector<uint64_t>& nodes,
                                   std::function<void()> then) {
  // Synchronously, not through the queue: a queued entry invalidation may
  // wait for a directory lock held by the very request `then` answers.
  // Dropping attributes only takes no lock the kernel could hold for us.
  // Cached pages follow by themselves: the kernel drops them when the fresh
  // attributes show a new size or mtime (auto_inval_data).
  for (uint64_t node : nodes) {
    fuse_lowlevel_notify_inval_inode(session_, node, -1, 0);
  }
  then();
}

void KernelAdapter::InvalidateInode(uint64_t node, bool data) {
  Enqueue(Invalidation{node, "", data});
}

void KernelAdapter::InvalidateEntry(uint64_t parent, std::string name) {
  Enqueue(Invalidation{parent, std::move(name), false});
}

void KernelAdapter::InvalidatePath(const std::string& path) {
  uint64_t node = options_.nodes->Find(path);
  if (node != 0) InvalidateInode(node, /*data=*/true);
  if (path == "/") return;
  // The name itself: it may be gone, or exist now where the kernel cached
  // its absence.
  uint64_t parent = options_.nodes->Find(ParentPath(path));
  if (parent != 0) InvalidateEntry(parent, std::string(BaseName(path)));
}

void KernelAdapter::InvalidateSubtree(const std::string& path) {
  InvalidatePath(path);
  uint64_t node = options_.nodes->Find(path);
  if (node == 0) return;
  for (const NodeTable::Link& link : options_.nodes->LinksBelow(node)) {
    InvalidateInode(link.id, /*data=*/true);
    InvalidateEntry(link.parent, link.name);
  }
}

void KernelAdapter::InvalidationLoop() {
  for (;;) {
    Invalidation inv;
    {
      absl::MutexLock lock(&inval_mu_);
      inval_mu_.Await(absl::Condition(
          +[](KernelAdapter* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->inval_stop_ || !self->inval_queue_.empty();
          },
          this));
      if (inval_stop_) return;
      inv = std::move(inval_queue_.front());
      inval_queue_.pop_front();
    }
    // Errors (ENOENT: the kernel already forgot the node) need no action.
    if (inv.name.empty()) {
      // A negative offset drops the attributes only, not cached data.
      fuse_lowlevel_notify_inval_inode(session_, inv.node, inv.data ? 0 : -1, 0);
    } else {
      fuse_lowlevel_notify_inval_entry(session_, inv.node, inv.name.data(),
                                       inv.name.size());
    }
  }
}

void KernelAdapter::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (session_ != nullptr) fuse_session_exit(session_);
  if (loop_thread_.joinable()) loop_thread_.join();
  {
    absl::MutexLock lock(&inval_mu_);
    inval_stop_ = true;
  }
  if (inval_thread_.joinable()) inval_thread_.join();
  // Requests still waiting for the backend hold fuse_req pointers into the
  // session: fail them fast and wait until every reply has been sent.
  stopping_.store(true);
  options_.transport->CancelAll();
  options_.transport->WaitIdle();
  if (session_ != nullptr) {
    fuse_session_destroy(session_);  // closes the /dev/fuse fd
    session_ = nullptr;
  }
}

KernelAdapter::~KernelAdapter() { Stop(); }

}  // namespace fusehost
