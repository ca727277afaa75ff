// An open directory of the daemon's (RequestHandlers::DirHandle), shared by
// the directory handlers (dir_handlers.cc) and the attributes fetched ahead
// for readdirplus (dir_attrs_ahead.cc). Internal to request_handlers.

#ifndef FUSE_HOSTD_DAEMON_FUSE_DIR_HANDLE_H_
#define FUSE_HOSTD_DAEMON_FUSE_DIR_HANDLE_H_

#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/memory_budget.h"
#include "common/paths.h"
#include "common/stat_convert.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {
namespace dir_handle {

// Inode number shown for entries whose attributes the backend did not send
// (as libfuse's high-level API does).
constexpr ino_t kUnknownIno = 0xffffffff;

// A listing longer than this is taken for a backend that never ends one.
constexpr size_t kMaxEntries = 1 << 20;

// What an open directory's parts cost in memory, for the listing budget
// (names: StringHeapBytes, common/memory_budget.h).
inline size_t AttrBytes(const v1::Attr& attr) {
  return HeapBlockBytes(attr.SpaceUsedLong());
}

// The name index for `n` names: absl's flat_hash_set keeps at most 7/8 of
// its 2^k - 1 slots full, one 4-byte slot and one control byte each.
inline size_t NameIndexBytes(size_t n) {
  if (n == 0) return 0;
  size_t capacity = 1;
  while (capacity - capacity / 8 < n) capacity = capacity * 2 + 1;
  return HeapBlockBytes(capacity * (sizeof(uint32_t) + 1) + 16);
}

}  // namespace dir_handle

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
      if (st.st_ino == 0) st.st_ino = dir_handle::kUnknownIno;
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
  std::string child_path ABSL_GUARDED_BY(mu);  // CachedAt's, reused
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
  // How many more files (all but directories) this readdirplus pass hands
  // out without attributes (RequestHandlers::FilesToHandBare).
  size_t files_bare ABSL_GUARDED_BY(mu) = 0;
  // When the first of the entries handed out with attributes lapses.
  absl::Time handed_until ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
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
    // *out holds the previous item: its name's and its attributes' storage
    // are reused. Building them anew for each entry was most of what a
    // readdirplus from the cache cost.
    std::unique_ptr<v1::Attr> attr = std::move(out->attr);
    out->name.assign(name.view().data(), name.size());
    out->cookie = 0;
    out->ino = le.ino;
    out->type = le.type;
    out->attr_asked = false;
    if (plus || le.ino == 0) {
      ChildPathInto(path, name, &child_path);
      if (attr == nullptr) attr = std::make_unique<v1::Attr>();
      if (coherence->CachedAttrInto(child_path, attr.get())) {
        out->attr = std::move(attr);
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
    const size_t bytes = dir_handle::AttrBytes(attr);
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
                   dir_handle::NameIndexBytes(want) -
                   dir_handle::NameIndexBytes(names.size());
    for (const v1::DirEntry& in : reply.entries()) {
      bytes += StringHeapBytes(in.name());
      if (in.has_attr()) bytes += dir_handle::AttrBytes(in.attr());
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
                   entries.size() <= dir_handle::kMaxEntries
               ? Page::kAdded
               : Page::kEndless;
  }
};


}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_DIR_HANDLE_H_
