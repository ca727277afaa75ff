// Directories: opendir, readdir and readdirplus, releasedir, fsyncdir.
//
// An open directory is a DirHandle of the daemon's: the entries fetched so
// far, from the backend or from a listing the daemon's cache holds (then the
// backend is not even asked to open the directory). The kernel's readdir
// offset n means "continue with item n", where items 0 and 1 are "." and
// "..", and item k + 2 is entries[k].

#include <cerrno>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/log_line.h"
#include "common/stat_convert.h"
#include "daemon/fuse/dirent_buffer.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {
namespace {

// Inode number shown for entries whose attributes the backend did not send
// (as libfuse's high-level API does).
constexpr ino_t kUnknownIno = 0xffffffff;

// A listing longer than this is taken for a backend that never ends one.
constexpr size_t kMaxEntries = 1 << 20;

}  // namespace

struct RequestHandlers::DirHandle {
  struct Entry {
    std::string name;
    // Full attributes when has_attr (answers readdirplus); otherwise only
    // st_ino and the S_IFMT bits of st_mode are meaningful.
    struct stat st = {};
    bool has_attr = false;
    v1::Attr attr;        // as received, when has_attr (for timeouts)
    uint64_t cookie = 0;  // backend's resume cookie (0 for whole listings)
  };

  bool backend_open = false;
  uint64_t backend_fh = 0;
  std::string path;  // at opendir time; for re-reading a cached listing
  absl::Mutex mu;
  std::vector<Entry> entries ABSL_GUARDED_BY(mu);
  // Names so far: a resumable listing that repeats a name across pages
  // shows it once.
  absl::flat_hash_set<std::string> names ABSL_GUARDED_BY(mu);
  bool eof ABSL_GUARDED_BY(mu) = false;
  // The cookie to resume after the last page, and how many pages in a row
  // brought no new name.
  uint64_t next_cookie ABSL_GUARDED_BY(mu) = 0;
  int barren_pages ABSL_GUARDED_BY(mu) = 0;
  // Some entries were handed to the kernel: offset 0 now means rewinddir.
  bool started ABSL_GUARDED_BY(mu) = false;

  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    entries.clear();
    names.clear();
    eof = false;
    next_cookie = 0;
    barren_pages = 0;
  }

  // Appends a page from the backend. False when the backend keeps the
  // listing from ending: a page that resumes where it started, pages that
  // repeat names only, or more entries than any directory should have.
  bool AddPage(const v1::ReaddirReply& reply) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    bool whole_listing = true;
    const uint64_t asked = next_cookie;
    const size_t before = entries.size();
    for (const v1::DirEntry& in : reply.entries()) {
      if (in.offset() != 0) whole_listing = false;
      next_cookie = in.offset();
      if (in.name() == "." || in.name() == "..") continue;  // ours are added
      if (!names.insert(in.name()).second) continue;
      Entry e;
      e.name = in.name();
      e.cookie = in.offset();
      if (in.has_attr()) {
        e.has_attr = true;
        e.attr = in.attr();
        StatFromProto(e.attr, &e.st);
      } else {
        e.st.st_mode = in.type();
      }
      if (e.st.st_ino == 0) e.st.st_ino = kUnknownIno;
      entries.push_back(std::move(e));
    }
    // A whole listing, an explicit end, or an empty page (which would loop
    // forever otherwise) ends the directory.
    eof = reply.eof() || whole_listing || reply.entries_size() == 0;
    if (eof) return true;
    // A first page of "." and ".." alone is fine; a second page in a row
    // with no new name is a backend going round in circles.
    barren_pages = entries.size() == before ? barren_pages + 1 : 0;
    return next_cookie != asked && barren_pages < 2 &&
           entries.size() <= kMaxEntries;
  }
};

RequestHandlers::DirHandle* RequestHandlers::DirHandleOf(uint64_t fh) {
  return reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fh));
}

bool RequestHandlers::FillFromCache(DirHandle* h)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu) {
  if (options_.coherence == nullptr || h->path.empty()) return false;
  std::optional<std::vector<CachedDirEntry>> listing =
      options_.coherence->CachedDirectory(h->path);
  if (!listing) return false;
  h->Clear();
  h->entries.reserve(listing->size());
  for (CachedDirEntry& in : *listing) {
    DirHandle::Entry e;
    e.name = std::move(in.name);
    if (in.has_attr) {
      e.has_attr = true;
      e.attr = std::move(in.attr);
      StatFromProto(e.attr, &e.st);
    } else {
      e.st.st_ino = in.ino;
      e.st.st_mode = in.type;
    }
    if (e.st.st_ino == 0) e.st.st_ino = kUnknownIno;
    h->entries.push_back(std::move(e));
  }
  h->eof = true;
  return true;
}

void RequestHandlers::ReplyOpendir(const Request& req, DirHandle* handle) {
  KernelOpenReply open;
  open.fh = reinterpret_cast<uintptr_t>(handle);
  // Let the kernel keep listings in its page cache while they may be cached
  // at all. It drops them itself when the directory changes through the
  // mount or its mtime moves, and on invalidation.
  if (options_.timeouts.cache_listings) {
    open.cache_readdir = true;
    open.keep_cache = true;
  }
  if (!req->ReplyOpen(open)) ReleaseDirHandle(handle);
}

void RequestHandlers::ReleaseDirHandle(DirHandle* handle) {
  if (handle->backend_open) {
    v1::Op op;
    op.mutable_releasedir()->set_path(handle->path);
    op.mutable_releasedir()->set_fh(handle->backend_fh);
    Send(std::move(op), [](const v1::OpResult&) {});
  }
  delete handle;
}

void RequestHandlers::Opendir(Request req, uint64_t node, int flags) {
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  auto* handle = new DirHandle;
  handle->path = *path;
  bool cached;
  {
    absl::MutexLock lock(&handle->mu);
    cached = FillFromCache(handle);
  }
  // After the reply the kernel may release the handle at any moment, so
  // nothing of it may be held (its lock included) while replying.
  if (cached) {
    ReplyOpendir(req, handle);
    return;
  }
  v1::Op op = NewOp(*req);
  op.mutable_opendir()->set_path(*path);
  op.mutable_opendir()->set_flags(flags);
  Send(std::move(op), [this, req, handle](const v1::OpResult& res) {
    if (res.posix_errno() != 0) {
      delete handle;
      req->ReplyError(res.posix_errno());
      return;
    }
    handle->backend_open = true;
    handle->backend_fh = res.opendir().fh();
    ReplyOpendir(req, handle);
  });
}

void RequestHandlers::ContinueReaddir(const Request& req, uint64_t dir,
                                      DirHandle* h, bool plus, size_t size,
                                      off_t offset) {
  DirentBuffer buf(size, plus);
  bool need_more = false;
  uint64_t cookie = 0;
  {
    absl::MutexLock lock(&h->mu);
    for (off_t item = offset;; ++item) {
      KernelEntry entry;
      const DirHandle::Entry* e = nullptr;
      std::string dots;
      if (item == 0 || item == 1) {
        dots = item == 0 ? "." : "..";
        entry.attr.st_mode = S_IFDIR;
        entry.attr.st_ino = kUnknownIno;
      } else if (static_cast<size_t>(item - 2) < h->entries.size()) {
        e = &h->entries[item - 2];
        entry.attr = e->st;
      } else {
        // Ran out of fetched entries. Fetch more only if nothing fits yet;
        // otherwise the kernel comes back for the rest.
        need_more = !h->eof && buf.empty();
        cookie = h->next_cookie;
        break;
      }
      const std::string& name = e != nullptr ? e->name : dots;
      if (!buf.Fits(name)) break;
      // For readdirplus, an entry with attributes hands the kernel a lookup
      // reference, counted only now that the entry is known to fit.
      if (plus && e != nullptr && e->has_attr) {
        uint64_t id = options_.nodes->AddLookup(dir, e->name);
        if (id != 0) {
          NoteInode(id, e->attr);
          entry.node = id;
          if (entry.attr.st_ino == 0 || entry.attr.st_ino == kUnknownIno) {
            entry.attr.st_ino = id;
          }
          entry.attr_timeout = AttrTimeout(e->attr);
          entry.entry_timeout = EntryTimeout(e->attr);
        }
      }
      buf.Add(name, entry, item + 1);
      h->started = true;
    }
  }
  if (!need_more) {
    req->ReplyData(buf.Take());
    return;
  }
  v1::Op op = NewOp(*req);
  v1::ReaddirRequest* r = op.mutable_readdir();
  r->set_path(h->path.empty() ? HandlePath(dir) : h->path);
  r->set_fh(h->backend_fh);
  r->set_offset(cookie);
  Send(std::move(op),
       [this, req, dir, h, plus, size, offset](const v1::OpResult& res) {
         if (Failed(req, res)) return;
         bool progress;
         {
           absl::MutexLock lock(&h->mu);
           progress = h->AddPage(res.readdir());
         }
         if (!progress) {
           Log("%s: the backend's listing does not end (it repeats itself "
               "or grew past %zu entries): EIO", h->path, kMaxEntries);
           req->ReplyError(EIO);
           return;
         }
         ContinueReaddir(req, dir, h, plus, size, offset);
       });
}

void RequestHandlers::Readdir(Request req, uint64_t node, uint64_t fh,
                              size_t size, off_t offset, bool plus) {
  DirHandle* h = DirHandleOf(fh);
  if (offset == 0) {
    absl::MutexLock lock(&h->mu);
    if (h->started) {
      // rewinddir: a fresh pass sees a fresh listing.
      h->started = false;
      if (!FillFromCache(h) && h->backend_open) h->Clear();
      // Without a backend handle the old snapshot is all there is.
    }
  }
  ContinueReaddir(req, node, h, plus, size, offset);
}

void RequestHandlers::Releasedir(Request req, uint64_t fh) {
  // The kernel does not wait for anything here; the backend learns of it in
  // the background.
  ReleaseDirHandle(DirHandleOf(fh));
  req->ReplyError(0);
}

void RequestHandlers::Fsyncdir(Request req, uint64_t node, uint64_t fh,
                               bool datasync) {
  DirHandle* h = DirHandleOf(fh);
  if (!h->backend_open) {
    req->ReplyError(0);  // nothing of the backend's is open to sync
    return;
  }
  v1::Op op = NewOp(*req);
  op.mutable_fsyncdir()->set_path(HandlePath(node));
  op.mutable_fsyncdir()->set_fh(h->backend_fh);
  op.mutable_fsyncdir()->set_datasync(datasync);
  SendSimple(req, std::move(op));
}

}  // namespace fusehost
