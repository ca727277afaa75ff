// Directories: opendir, readdir and readdirplus, releasedir, fsyncdir.
//
// An open directory is a DirHandle of the daemon's (dir_handle.h): the
// entries fetched so far from the backend, or a listing the daemon's cache holds, shared, not
// copied (then the backend is not even asked to open the directory; the
// entries' attributes are looked up as they are handed out). The kernel's readdir
// offset n means "continue with item n", where items 0 and 1 are "." and
// "..", and item k + 2 is entries[k].
//
// Readdirplus over names the backend sent without attributes would make the
// kernel look each name up, one backend round trip apiece. Instead, the
// attributes of the next names to hand out are fetched first, all in one
// go (OpTransport::SendAll: a few messages of many ops; dir_attrs_ahead.cc).

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log_line.h"
#include "common/paths.h"
#include "common/stat_convert.h"
#include "daemon/fuse/dir_handle.h"
#include "daemon/fuse/dirent_buffer.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {

using dir_handle::kMaxEntries;
using dir_handle::kUnknownIno;

RequestHandlers::DirHandlePtr RequestHandlers::DirHandleOf(uint64_t fh) {
  absl::MutexLock lock(&dirs_mu_);
  auto it = dirs_.find(fh);
  return it == dirs_.end() ? nullptr : it->second;
}

std::optional<uint64_t> RequestHandlers::DirBackendHandle(uint64_t fh) {
  DirHandlePtr h = DirHandleOf(fh);
  if (h == nullptr || !h->backend_open) return std::nullopt;
  return h->backend_fh;
}

void RequestHandlers::WithDirHandle(const Request& req, uint64_t node,
                                    uint64_t fh,
                                    std::function<void(const DirHandlePtr&)> then) {
  if (DirHandlePtr h = DirHandleOf(fh)) {
    then(h);
    return;
  }
  ReopenDirHandle(req, node, fh, std::move(then));
}

void RequestHandlers::ReopenDirHandle(const Request& req, uint64_t node,
                                      uint64_t fh,
                                      std::function<void(const DirHandlePtr&)> then) {
  OpenDir(req, node, O_RDONLY | O_DIRECTORY,
          [this, fh, then = std::move(then)](const DirHandlePtr& opened) {
            DirHandlePtr handle = opened;
            DirHandlePtr held;
            {
              absl::MutexLock lock(&dirs_mu_);
              auto [it, added] = dirs_.try_emplace(fh, handle);
              if (added) {
                handle->id = fh;
              } else {
                held = it->second;  // reopened meanwhile by another request
              }
            }
            if (held != nullptr) {
              ReleaseDirHandle(handle);
              handle = held;
            }
            then(handle);
          });
}

bool RequestHandlers::FillFromCache(DirHandle* h)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu) {
  if (options_.coherence == nullptr || h->path.empty()) return false;
  std::shared_ptr<const Listing> listing =
      options_.coherence->CachedListing(h->path);
  if (listing == nullptr) return false;
  h->Clear();
  h->cached = std::move(listing);
  h->cursor = h->cached->begin();
  h->eof = true;
  return true;
}

void RequestHandlers::ReplyOpendir(const Request& req,
                                   const DirHandlePtr& handle) {
  KernelOpenReply open;
  {
    absl::MutexLock lock(&dirs_mu_);
    handle->id = next_dir_++;
    dirs_[handle->id] = handle;
  }
  open.fh = handle->id;
  // Let the kernel keep listings in its page cache while they may be cached
  // at all. It drops them itself when the directory changes through the
  // mount or its mtime moves, and on invalidation.
  //
  // Except once the entries the last readdirplus handed the kernel for it
  // lapsed (or went out bare, to callers that look names up): listing its
  // copy, the kernel would then look each name up, one request apiece.
  // Listing anew, a readdirplus hands them all out again, their attributes
  // fetched many to a message. The kernel keeps its copy for a later open.
  if (options_.timeouts.cache_listings) {
    open.cache_readdir = !EntriesLapsed(handle->node);
    open.keep_cache = true;
  }
  if (!req->ReplyOpen(open)) ReleaseDirHandle(handle);
}

void RequestHandlers::ReleaseDirHandle(const DirHandlePtr& handle) {
  if (handle->id != 0) {
    absl::MutexLock lock(&dirs_mu_);
    auto it = dirs_.find(handle->id);
    if (it != dirs_.end() && it->second == handle) dirs_.erase(it);
  }
  absl::Time handed_until;
  {
    absl::MutexLock lock(&handle->mu);
    handed_until = handle->handed_until;
    handle->released = true;
    handle->Clear();  // gives its bytes back to the budget
  }
  if (handle->handed_bare.load()) {
    NoteListingReleased(handle->node, handed_until);
  }
  if (handle->backend_open) {
    v1::Op op;
    op.mutable_releasedir()->set_path(handle->path);
    op.mutable_releasedir()->set_fh(handle->backend_fh);
    Send(std::move(op), [](const v1::OpResult&) {});
  }
  // Freed when the last answer still holding it is done.
}

void RequestHandlers::Opendir(Request req, uint64_t node, int flags) {
  OpenDir(req, node, flags,
          [this, req](const DirHandlePtr& handle) {
            ReplyOpendir(req, handle);
          });
}

void RequestHandlers::OpenDir(const Request& req, uint64_t node, int flags,
                              std::function<void(const DirHandlePtr&)> opened) {
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  auto handle = std::make_shared<DirHandle>();
  handle->path = *path;
  handle->node = node;
  handle->budget = options_.listing_budget;
  OpenDirHandle(req, std::move(handle), flags, std::move(opened),
                /*may_wait=*/true);
}

void RequestHandlers::OpenDirHandle(const Request& req, DirHandlePtr handle,
                                    int flags,
                                    std::function<void(const DirHandlePtr&)> opened,
                                    bool may_wait) {
  bool cached;
  {
    absl::MutexLock lock(&handle->mu);
    cached = FillFromCache(handle.get());
  }
  // After the reply the kernel may release the handle at any moment, so
  // nothing of it may be held (its lock included) while replying.
  if (cached) {
    // The walker is here: the level below may be fetched ahead.
    if (options_.coherence->FetchesListingsAhead()) {
      options_.coherence->DirectoryOpened(handle->path, NewOp(*req).caller());
    }
    opened(handle);
    return;
  }
  // Its listing is being fetched ahead: wait for it rather than ask twice.
  if (may_wait && options_.coherence != nullptr &&
      options_.coherence->AwaitListing(
          handle->path, [this, req, handle, flags, opened]() mutable {
            OpenDirHandle(req, handle, flags, std::move(opened),
                          /*may_wait=*/false);
          })) {
    return;
  }
  // Past what was fetched ahead: the window moves on all the same.
  if (may_wait && options_.coherence != nullptr &&
      options_.coherence->FetchesListingsAhead()) {
    options_.coherence->DirectoryOpened(handle->path, NewOp(*req).caller());
  }
  if (options_.lists_by_path != nullptr && options_.lists_by_path->load()) {
    ListOnOpen(req, std::move(handle), std::move(opened));
    return;
  }
  v1::Op op = NewOp(*req);
  op.mutable_opendir()->set_path(handle->path);
  op.mutable_opendir()->set_flags(flags);
  Send(std::move(op), [req, handle, opened = std::move(opened)](
                          const v1::OpResult& res) {
    if (res.posix_errno() != 0) {
      req->ReplyError(res.posix_errno());
      return;
    }
    handle->backend_open = true;
    handle->backend_fh = res.opendir().fh();
    opened(handle);
  });
}

void RequestHandlers::ListOnOpen(
    const Request& req, DirHandlePtr handle,
    std::function<void(const DirHandlePtr&)> opened) {
  // One message where there would be three (opendir, readdir, releasedir),
  // sent now rather than at the first readdir so that a directory the
  // caller may not read, or that is gone, fails the opendir as it would
  // have.
  handle->by_path = true;
  v1::Op op = NewOp(*req);
  op.mutable_readdir()->set_path(handle->path);
  Send(std::move(op), [this, req, handle, opened = std::move(opened)](
                          const v1::OpResult& res) {
    if (Failed(req, res)) return;
    DirHandle::Page page;
    {
      absl::MutexLock lock(&handle->mu);
      // Kept by the handle, as a page read through a backend handle is,
      // not shared from the cache (where a whole listing went on its way
      // here): names that came without attributes are fetched together
      // before a readdirplus hands them out (FetchAttrsAhead), which a
      // cached listing leaves to the kernel's lookups.
      page = handle->AddPage(res.readdir());
    }
    if (PageRefused(req, *handle, static_cast<int>(page))) return;
    opened(handle);
  });
}

bool RequestHandlers::PageRefused(const Request& req, const DirHandle& h,
                                  int page) {
  switch (static_cast<DirHandle::Page>(page)) {
    case DirHandle::Page::kAdded:
      return false;
    case DirHandle::Page::kEndless:
      Log("%s: the backend's listing does not end (it repeats itself or grew "
          "past %zu entries): EIO", h.path, kMaxEntries);
      req->ReplyError(EIO);
      return true;
    case DirHandle::Page::kNoRoom:
      // Open directories of this mount (or of all) hold as much as the
      // daemon allows them.
      req->ReplyError(ENOMEM);
      return true;
  }
  return false;
}

void RequestHandlers::ContinueReaddir(const Request& req, uint64_t dir,
                                      DirHandlePtr h, bool plus, size_t size,
                                      off_t offset) {
  {
    absl::MutexLock lock(&h->mu);
    // Released while this readdir waited (the kernel abandoned it): its
    // answer went out already, and nothing more may be added to the handle.
    if (h->released) {
      req->ReplyError(EBADF);
      return;
    }
  }
  if (plus && options_.coherence != nullptr &&
      FetchAttrsAhead(req, dir, h, offset >= 2 ? offset - 2 : 0,
                      [this, req, dir, h, size, offset] {
                        ContinueReaddir(req, dir, h, true, size, offset);
                      })) {
    return;
  }
  DirentBuffer buf(size, plus);
  std::vector<uint64_t> referenced;  // lookups the buffer hands the kernel
  double shortest_entry_timeout = std::numeric_limits<double>::infinity();
  bool need_more = false;
  bool files_went_bare = false;
  bool untyped = false;  // a name went out bare without its file type
  bool ended = false;    // the listing's end went out
  absl::Time handed_until;  // when the entries handed out here lapse
  uint64_t cookie = 0;
  {
    absl::MutexLock lock(&h->mu);
    DirHandle::Entry from_cache;
    for (off_t item = offset;; ++item) {
      KernelEntry entry;
      const DirHandle::Entry* e = nullptr;
      std::string dots;
      if (item == 0 || item == 1) {
        dots = item == 0 ? "." : "..";
        entry.attr.st_mode = S_IFDIR;
        entry.attr.st_ino = kUnknownIno;
      } else if (static_cast<size_t>(item - 2) < h->size()) {
        e = h->cached ? h->CachedAt(item - 2, plus, options_.coherence,
                                    &from_cache)
                      : &h->entries[item - 2];
        entry.attr = e->Stat();
      } else {
        // Ran out of fetched entries. Fetch more only if nothing fits yet;
        // otherwise the kernel comes back for the rest.
        need_more = !h->eof && buf.empty();
        ended = h->eof;
        cookie = h->next_cookie;
        break;
      }
      const std::string& name = e != nullptr ? e->name : dots;
      if (!buf.Fits(name)) break;
      // Files go out without attributes while the pass hands them bare
      // (FilesToHandBare), unless the attributes were fetched for it (for
      // callers who look names up); names the backend sent without them,
      // always.
      const bool file_bare = plus && e != nullptr && e->attr != nullptr &&
                             !e->attr_asked && h->files_bare > 0 &&
                             !S_ISDIR(e->attr->mode());
      if (file_bare) --h->files_bare;
      const bool bare = e != nullptr && (e->attr == nullptr || file_bare);
      files_went_bare |= file_bare;
      untyped |= bare && (entry.attr.st_mode & S_IFMT) == 0;
      // For readdirplus, an entry with attributes hands the kernel a lookup
      // reference, counted only now that the entry is known to fit.
      if (plus && e != nullptr && !bare) {
        uint64_t id = options_.nodes->AddLookup(dir, e->name);
        if (id != 0) {
          referenced.push_back(id);
          NoteInode(id, *e->attr);
          entry.node = id;
          if (entry.attr.st_ino == 0 || entry.attr.st_ino == kUnknownIno) {
            entry.attr.st_ino = id;
          }
          entry.attr_timeout = AttrTimeout(*e->attr);
          entry.entry_timeout = EntryTimeout(*e->attr);
          shortest_entry_timeout =
              std::min(shortest_entry_timeout, entry.entry_timeout);
        }
      }
      if (plus && bare) h->handed_bare = true;
      buf.Add(name, entry, item + 1);
      h->started = true;
    }
    if (!referenced.empty()) {
      handed_until = absl::Now() + absl::Seconds(shortest_entry_timeout);
      h->handed_until = std::min(h->handed_until, handed_until);
    }
  }
  if (files_went_bare) NoteFilesHandedBare();
  if (plus && h->handed_bare.load()) {
    NoteBareListing(dir, !untyped, ended);
  } else if (!referenced.empty()) {
    NoteEntriesHanded(dir, handed_until);
  }
  if (!need_more) {
    if (!req->ReplyData(buf.Take())) {
      // Abandoned meanwhile: the kernel never got these references.
      for (uint64_t id : referenced) options_.nodes->Forget(id, 1);
    }
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
         DirHandle::Page page;
         {
           absl::MutexLock lock(&h->mu);
           if (h->released) {
             req->ReplyError(EBADF);
             return;
           }
           page = h->AddPage(res.readdir());
         }
         if (PageRefused(req, *h, static_cast<int>(page))) return;
         ContinueReaddir(req, dir, h, plus, size, offset);
       });
}

void RequestHandlers::Readdir(Request req, uint64_t node, uint64_t fh,
                              size_t size, off_t offset, bool plus) {
  WithDirHandle(req, node, fh, [=](const DirHandlePtr& h) {
    if (offset == 0) {
      const size_t files_bare = plus ? FilesToHandBare(node) : 0;
      absl::MutexLock lock(&h->mu);
      h->files_bare = files_bare;
      if (h->started) {
        // rewinddir: a fresh pass sees a fresh listing.
        h->started = false;
        if (!FillFromCache(h.get()) && (h->backend_open || h->by_path)) {
          h->Clear();
        }
        // Without a backend handle or listing by path, the old snapshot is
        // all there is.
      }
    }
    ContinueReaddir(req, node, h, plus, size, offset);
  });
}

void RequestHandlers::Releasedir(Request req, uint64_t fh) {
  // The kernel does not wait for anything here; the backend learns of it in
  // the background. A handle of a previous daemon that was never reopened
  // has nothing here to release.
  if (DirHandlePtr h = DirHandleOf(fh)) ReleaseDirHandle(h);
  req->ReplyError(0);
}

void RequestHandlers::Fsyncdir(Request req, uint64_t node, uint64_t fh,
                               bool datasync) {
  WithDirHandle(req, node, fh, [=](const DirHandlePtr& h) {
    if (!h->backend_open) {
      // Nothing of the backend's is open to sync, but changes answered
      // early must have reached it, and their errors are reported here.
      if (options_.settle) {
        options_.settle([req](int posix_errno) { req->ReplyError(posix_errno); });
      } else {
        req->ReplyError(0);
      }
      return;
    }
    v1::Op op = NewOp(*req);
    op.mutable_fsyncdir()->set_path(HandlePath(node));
    op.mutable_fsyncdir()->set_fh(h->backend_fh);
    op.mutable_fsyncdir()->set_datasync(datasync);
    SendSimple(req, std::move(op));
  });
}

}  // namespace fusehost
