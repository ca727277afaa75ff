// Readdirplus over a listing whose names came without attributes: which
// directories' callers look up what they list, and the attributes of the
// next names to hand out fetched in one go (see dir_handlers.cc). And when
// the entries a readdirplus handed out lapse, so that the kernel lists
// again rather than look each name up.

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/paths.h"
#include "daemon/fuse/dir_handle.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {
namespace {

// How many names ahead readdirplus fetches attributes for: several kernel
// buffers' worth, so that one fetch serves a few requests.
constexpr size_t kAttrFetchAhead = 256;

// How many directories' handed-out entries are remembered (NoteEntriesHanded).
constexpr size_t kListingsRemembered = 4096;

// Unless callers are known to list only, one readdirplus pass in this many
// hands its first few files out bare, to learn whether they look them up:
// a caller that looks files up looks up those too, and each costs it a
// LOOKUP.
constexpr uint32_t kProbeEvery = 16;
constexpr size_t kProbeFiles = 8;

}  // namespace

void RequestHandlers::NoteBareListing(uint64_t dir, bool typed, bool ended) {
  absl::MutexLock lock(&bare_mu_);
  if (bare_listings_.size() >= 64 && !bare_listings_.contains(dir)) {
    bare_listings_.clear();  // a few recent ones are all it takes
  }
  BareListing& listing = bare_listings_[dir];
  listing.typed &= typed;
  listing.ended |= ended;
  // The kernel looks each name up as it is used.
  NoteEntriesHandedLocked(dir, absl::InfinitePast());
}

void RequestHandlers::NoteLookupIn(uint64_t parent, bool is_dir) {
  absl::MutexLock lock(&bare_mu_);
  auto it = bare_listings_.find(parent);
  if (it != bare_listings_.end()) {
    if (is_dir && it->second.typed) return;
    it->second.looked_up = true;
  } else {
    // Listed bare before, by a handle released since: the kernel lists its
    // own copy of such a directory and looks each name up.
    auto handed = entries_until_.find(parent);
    if (is_dir || handed == entries_until_.end() ||
        handed->second != absl::InfinitePast()) {
      return;
    }
  }
  listing_use_.store(ListingUse::kLooksUp);
}

void RequestHandlers::NoteListingStarts(uint64_t dir) {
  absl::MutexLock lock(&bare_mu_);
  for (auto it = bare_listings_.begin(); it != bare_listings_.end();) {
    if (it->first != dir && it->second.ended && !it->second.looked_up) {
      listing_use_.store(ListingUse::kListsOnly);
      // Its release has nothing more to tell. A file looked up in it later
      // still counts (NoteLookupIn finds it listed bare).
      bare_listings_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t RequestHandlers::FilesToHandBare(uint64_t dir) {
  NoteListingStarts(dir);
  if (listing_use_.load() == ListingUse::kListsOnly) {
    return std::numeric_limits<size_t>::max();
  }
  if (probe_due_.load()) return kProbeFiles;
  // The mount's first pass comes with attributes (a single ls -l), and
  // every kProbeEvery-th from the second on probes.
  if (passes_.fetch_add(1) % kProbeEvery != 1) return 0;
  probe_due_.store(true);
  return kProbeFiles;
}

void RequestHandlers::NoteListingReleased(uint64_t dir,
                                          absl::Time handed_until) {
  absl::MutexLock lock(&bare_mu_);
  auto it = bare_listings_.find(dir);
  if (it == bare_listings_.end()) return;
  if (!it->second.looked_up) {
    listing_use_.store(ListingUse::kListsOnly);
  } else if (handed_until != absl::InfiniteFuture()) {
    // The names that went out bare were looked up (a probe that found an
    // ls -l): the kernel holds every name now, and its copy of the
    // listing serves until they lapse, as for a listing handed out whole.
    NoteEntriesHandedLocked(dir, handed_until);
  }
  bare_listings_.erase(it);
}

void RequestHandlers::NoteEntriesHanded(uint64_t dir, absl::Time lapse) {
  absl::MutexLock lock(&bare_mu_);
  NoteEntriesHandedLocked(dir, lapse);
}

void RequestHandlers::NoteEntriesHandedLocked(uint64_t dir, absl::Time lapse) {
  if (entries_until_.size() >= kListingsRemembered &&
      !entries_until_.contains(dir)) {
    entries_until_.clear();  // forgotten ones list from the kernel's copy
  }
  entries_until_[dir] = lapse;
}

bool RequestHandlers::EntriesLapsed(uint64_t dir) {
  absl::MutexLock lock(&bare_mu_);
  auto it = entries_until_.find(dir);
  if (it == entries_until_.end()) return false;
  // Handed out bare, they are worth listing again only for callers that
  // look up what they list; a plain `ls` is served best by the kernel's copy.
  if (it->second == absl::InfinitePast()) return CallersLookUp();
  return absl::Now() >= it->second;
}

bool RequestHandlers::FetchAttrsAhead(const Request& req, uint64_t dir,
                                      DirHandlePtr h, size_t first,
                                      std::function<void()> then) {
  if (!CallersLookUp()) return false;
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

}  // namespace fusehost
