// Directories: opendir, readdir and readdirplus, releasedir, fsyncdir.
//
// An open directory is a DirHandle of the daemon's: the entries fetched so
// far from the backend, or a listing the daemon's cache holds, shared, not
// copied (then the backend is not even asked to open the directory; the
// entries' attributes are looked up as they are handed out). The kernel's readdir
// offset n means "continue with item n", where items 0 and 1 are "." and
// "..", and item k + 2 is entries[k].
//
// Readdirplus over names the backend sent without attributes would make the
// kernel look each name up, one backend round trip apiece. Instead, the
// attributes of the next names to hand out are fetched first, all in one
// go (OpTransport::SendAll: a few messages of many ops).

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/log_line.h"
#include "common/paths.h"
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

// How many names ahead readdirplus fetches attributes for: several kernel
// buffers' worth, so that one fetch serves a few requests.
constexpr size_t kAttrFetchAhead = 256;

// What an open directory's parts cost in memory, for the listing budget
// (names: StringHeapBytes, common/memory_budget.h).
size_t AttrBytes(const v1::Attr& attr) {
  return HeapBlockBytes(attr.SpaceUsedLong());
}

// The name index for `n` names: absl's flat_hash_set keeps at most 7/8 of
// its 2^k - 1 slots full, one 4-byte slot and one control byte each.
size_t NameIndexBytes(size_t n) {
  if (n == 0) return 0;
  size_t capacity = 1;
  while (capacity - capacity / 8 < n) capacity = capacity * 2 + 1;
  return HeapBlockBytes(capacity * (sizeof(uint32_t) + 1) + 16);
}

}  // namespace

struct RequestHandlers::DirHandle {
  struct Entry {
    std::string name;
    uint64_t cookie = 0;  // backend's resume cookie (0 for whole listings)
    // Without attributes only the inode number and the file type are known.
    uint64_t ino = 0;
    uint32_t type = 0;        // S_IFMT bits
    bool attr_asked = false;  // fetched for readdirplus (even if it failed)
    // As received, when known (answers readdirplus, gives the timeouts).
    std::unique_ptr<v1::Attr> attr;

    struct stat Stat() const {
      struct stat st = {};
      if (attr != nullptr) {
        StatFromProto(*attr, &st);
      } else {
        st.st_ino = ino;
        st.st_mode = type;
      }
      if (st.st_ino == 0) st.st_ino = kUnknownIno;
      return st;
    }
  };

  // The names fetched so far, as positions in `entries` (hashed and compared
  // by name): a resumable listing that repeats a name across pages shows it
  // once, and no name is held twice.
  struct NameOfEntryHash {
    using is_transparent = void;
    const std::vector<Entry>* entries;
    size_t operator()(uint32_t i) const { return (*this)((*entries)[i].name); }
    size_t operator()(absl::string_view name) const {
      return absl::Hash<absl::string_view>()(name);
    }
  };
  struct NameOfEntryEq {
    using is_transparent = void;
    const std::vector<Entry>* entries;
    absl::string_view NameOf(uint32_t i) const { return (*entries)[i].name; }
    absl::string_view NameOf(absl::string_view name) const { return name; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return NameOf(a) == NameOf(b);
    }
  };

  uint64_t node = 0;  // the directory's, at opendir
  uint64_t id = 0;    // the kernel's handle, once it has one
  // Readdirplus handed the kernel names without attributes.
  std::atomic<bool> handed_bare{false};

  bool backend_open = false;
  uint64_t backend_fh = 0;
  // Opened without the backend, which lists by path (with fh 0): a fresh
  // pass after rewinddir asks it again.
  bool by_path = false;
  std::string path;  // at opendir time; for re-reading a cached listing
  absl::Mutex mu;
  // A listing from the daemon's cache, shared read-only, with a cursor at
  // item `cursor_index` (readdir goes forward through it).
  std::shared_ptr<const Listing> cached ABSL_GUARDED_BY(mu);
  Listing::const_iterator cursor ABSL_GUARDED_BY(mu);
  size_t cursor_index ABSL_GUARDED_BY(mu) = 0;
  // Otherwise: what the backend sent so far, and the bytes it is charged
  // to the listing budget.
  std::vector<Entry> entries ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<uint32_t, NameOfEntryHash, NameOfEntryEq> names
      ABSL_GUARDED_BY(mu){0, NameOfEntryHash{&entries},
                          NameOfEntryEq{&entries}};
  size_t charged ABSL_GUARDED_BY(mu) = 0;
  MemoryBudget* budget = nullptr;
  bool eof ABSL_GUARDED_BY(mu) = false;
  // The cookie to resume after the last page, and how many pages in a row
  // brought no new name.
  uint64_t next_cookie ABSL_GUARDED_BY(mu) = 0;
  int barren_pages ABSL_GUARDED_BY(mu) = 0;
  // Some entries were handed to the kernel: offset 0 now means rewinddir.
  bool started ABSL_GUARDED_BY(mu) = false;
  // The kernel released it: an answer still on its way keeps nothing.
  bool released ABSL_GUARDED_BY(mu) = false;

  size_t size() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return cached ? cached->size() : entries.size();
  }

  // Item `index` of the cached listing, built in *out: its attributes are
  // the cache's at this moment (when readdirplus hands them out, or when
  // the listing does not know the inode number).
  const Entry* CachedAt(size_t index, bool plus, CacheCoherence* coherence,
                        Entry* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (index < cursor_index) {
      cursor = cached->begin();
      cursor_index = 0;
    }
    for (; cursor_index < index; ++cursor_index) ++cursor;
    const auto& [name, le] = *cursor;
    *out = Entry();
    out->name = name.str();
    out->ino = le.ino;
    out->type = le.type;
    if (plus || le.ino == 0) {
      if (std::optional<v1::Attr> attr =
              coherence->CachedAttr(ChildPathOf(path, name))) {
        out->attr = std::make_unique<v1::Attr>(*std::move(attr));
      }
    }
    return out;
  }

  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cached.reset();
    cursor_index = 0;
    if (budget != nullptr) budget->Release(charged);
    charged = 0;
    // Given back to the allocator, not only emptied: the budget no longer
    // counts them.
    std::vector<Entry>().swap(entries);
    names = decltype(names)(0, NameOfEntryHash{&entries},
                            NameOfEntryEq{&entries});
    eof = false;
    next_cookie = 0;
    barren_pages = 0;
  }

  // Keeps attributes fetched for an entry if the listing budget has room for
  // them; otherwise the entry stays without (the kernel looks it up).
  void KeepAttr(Entry* e, v1::Attr attr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (e->attr != nullptr) return;
    const size_t bytes = AttrBytes(attr);
    if (budget != nullptr) {
      if (!budget->TryCharge(bytes)) return;
      charged += bytes;
    }
    e->attr = std::make_unique<v1::Attr>(std::move(attr));
  }

  enum class Page { kAdded, kEndless, kNoRoom };

  // Appends a page from the backend. kEndless when the backend keeps the
  // listing from ending: a page that resumes where it started, pages that
  // repeat names only, or more entries than any directory should have;
  // kNoRoom when the listing budget cannot hold it.
  Page AddPage(const v1::ReaddirReply& reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    // Charged before anything is kept: the slots the page needs (the
    // vector grows by doubling, the name index likewise), each name's own
    // heap block and the attributes sent with it.
    const size_t want = entries.size() + reply.entries_size();
    size_t capacity = entries.capacity();
    if (want > capacity) capacity = std::max(want, 2 * capacity);
    size_t bytes = (capacity - entries.capacity()) * sizeof(Entry) +
                   NameIndexBytes(want) - NameIndexBytes(names.size());
    for (const v1::DirEntry& in : reply.entries()) {
      bytes += StringHeapBytes(in.name());
      if (in.has_attr()) bytes += AttrBytes(in.attr());
    }
    if (budget != nullptr) {
      if (!budget->TryCharge(bytes)) return Page::kNoRoom;
      charged += bytes;
    }
    entries.reserve(capacity);
    names.reserve(want);
    bool whole_listing = true;
    const uint64_t asked = next_cookie;
    const size_t before = entries.size();
    for (const v1::DirEntry& in : reply.entries()) {
      if (in.offset() != 0) whole_listing = false;
      next_cookie = in.offset();
      if (in.name() == "." || in.name() == "..") continue;  // ours are added
      if (names.contains(absl::string_view(in.name()))) continue;
      Entry e;
      e.name = in.name();
      e.cookie = in.offset();
      e.type = in.type();
      if (in.has_attr()) e.attr = std::make_unique<v1::Attr>(in.attr());
      entries.push_back(std::move(e));
      names.insert(static_cast<uint32_t>(entries.size() - 1));
    }
    // A whole listing, an explicit end, or an empty page (which would loop
    // forever otherwise) ends the directory.
    eof = reply.eof() || whole_listing || reply.entries_size() == 0;
    if (eof) return Page::kAdded;
    // A first page of "." and ".." alone is fine; a second page in a row
    // with no new name is a backend going round in circles.
    barren_pages = entries.size() == before ? barren_pages + 1 : 0;
    return next_cookie != asked && barren_pages < 2 &&
                   entries.size() <= kMaxEntries
               ? Page::kAdded
               : Page::kEndless;
  }
};

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
  if (options_.timeouts.cache_listings) {
    open.cache_readdir = true;
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
  if (handle->handed_bare.load()) NoteListingReleased(handle->node);
  {
    absl::MutexLock lock(&handle->mu);
    handle->released = true;
    handle->Clear();  // gives its bytes back to the budget
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

void RequestHandlers::NoteBareListing(uint64_t dir) {
  absl::MutexLock lock(&bare_mu_);
  if (bare_listings_.size() >= 64 && !bare_listings_.contains(dir)) {
    bare_listings_.clear();  // a few recent ones are all it takes
  }
  bare_listings_.try_emplace(dir, false);
}

void RequestHandlers::NoteLookupIn(uint64_t parent) {
  absl::MutexLock lock(&bare_mu_);
  auto it = bare_listings_.find(parent);
  if (it == bare_listings_.end()) return;
  it->second = true;
  callers_stat_listings_.store(true);
}

void RequestHandlers::NoteListingReleased(uint64_t dir) {
  absl::MutexLock lock(&bare_mu_);
  auto it = bare_listings_.find(dir);
  if (it == bare_listings_.end()) return;
  if (!it->second) callers_stat_listings_.store(false);
  bare_listings_.erase(it);
}

bool RequestHandlers::FetchAttrsAhead(const Request& req, uint64_t dir,
                                      DirHandlePtr h, size_t first,
                                      std::function<void()> then) {
  if (!callers_stat_listings_.load()) return false;
  std::vector<PendingOp> ops;
  std::vector<size_t> which;
  {
    absl::MutexLock lock(&h->mu);
    if (h->cached) return false;  // attributes come from the cache itself
    const std::string& base = h->path.empty() ? HandlePath(dir) : h->path;
    size_t end = std::min(h->entries.size(), first + kAttrFetchAhead);
    for (size_t i = first; i < end; ++i) {
      DirHandle::Entry& e = h->entries[i];
      if (e.attr != nullptr || e.attr_asked) continue;
      e.attr_asked = true;
      std::string child = ChildPathOf(base, e.name);
      if (std::optional<v1::Attr> a = options_.coherence->CachedAttr(child)) {
        h->KeepAttr(&e, *std::move(a));
        continue;
      }
      v1::Op op = NewOp(*req);
      op.mutable_getattr()->set_path(std::move(child));
      ops.push_back(PendingOp{std::move(op), nullptr, nullptr});
      which.push_back(i);
    }
  }
  if (ops.empty()) return false;
  auto left = std::make_shared<std::atomic<size_t>>(ops.size());
  auto done = std::make_shared<std::function<void()>>(std::move(then));
  for (size_t k = 0; k < ops.size(); ++k) {
    ops[k].done = [h, i = which[k], name = h->entries[which[k]].name, left,
                   done](const v1::OpResult& r) {
      if (r.posix_errno() == 0 && r.has_getattr()) {
        absl::MutexLock lock(&h->mu);
        // The kernel serializes readdir on one open directory, so the
        // entries stay put; the name check is a second guard.
        if (!h->released && i < h->entries.size() &&
            h->entries[i].name == name) {
          h->KeepAttr(&h->entries[i], r.getattr().attr());
        }
      }
      // A name that failed (gone meanwhile), or whose attributes the
      // listing budget cannot hold, is handed out without them: the kernel
      // looks it up itself.
      if (left->fetch_sub(1) == 1) (*done)();
    };
  }
  SendAll(std::move(ops));
  return true;
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
  bool need_more = false;
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
        cookie = h->next_cookie;
        break;
      }
      const std::string& name = e != nullptr ? e->name : dots;
      if (!buf.Fits(name)) break;
      // For readdirplus, an entry with attributes hands the kernel a lookup
      // reference, counted only now that the entry is known to fit.
      if (plus && e != nullptr && e->attr != nullptr) {
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
        }
      }
      if (plus && e != nullptr && e->attr == nullptr) h->handed_bare = true;
      buf.Add(name, entry, item + 1);
      h->started = true;
    }
  }
  if (plus && h->handed_bare.load()) NoteBareListing(dir);
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
      absl::MutexLock lock(&h->mu);
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
