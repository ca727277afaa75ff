#include "daemon/pipeline/metadata_cache.h"

// Directory listings: kept whole, edited in place by changes through the
// daemon, shared read-only with open directories.

#include <algorithm>
#include <utility>

#include "common/paths.h"
#include "daemon/pipeline/metadata_cache_clock.h"

namespace fusehost {
namespace {

using metadata_cache_clock::ExpiryAfter;
using metadata_cache_clock::NowNanos;

// What one listed name costs: its bytes, the string and entry beside them,
// and a share of the tree's node.
size_t ListedNameBytes(absl::string_view name) {
  return name.size() + sizeof(std::string) + sizeof(ListingEntry) + 16;
}

// Open directories may hold the listing: they keep the version they got.
void Unshare(std::shared_ptr<Listing>& listing) {
  if (listing.use_count() > 1) listing = std::make_shared<Listing>(*listing);
}

}  // namespace

std::optional<Listing> MetadataCache::GetListing(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.listing_expiry() <= NowNanos()) {
    return std::nullopt;
  }
  it->second.referenced = true;
  return *it->second.extra->listing;
}

std::shared_ptr<const Listing> MetadataCache::ShareListing(
    absl::string_view path) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.listing_expiry() <= NowNanos()) {
    return nullptr;
  }
  it->second.referenced = true;
  return it->second.extra->listing;
}

std::shared_ptr<const Listing> MetadataCache::ShareLastListing(
    absl::string_view path) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.listing_expiry() == 0) return nullptr;
  return it->second.extra->listing;
}

void MetadataCache::PutListing(absl::string_view path, Listing listing,
                               absl::Duration ttl, uint64_t epoch) {
  if (ttl <= absl::ZeroDuration()) return;
  size_t bytes = ListingBytes(listing);
  if (bytes > options_.max_bytes / 8) return;  // would crowd out the rest
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  Entry& e = EntryFor(path);
  Extra& x = e.MakeExtra();
  x.listing = std::make_shared<Listing>(std::move(listing));
  x.listing_bytes = bytes;
  x.listing_expiry = ExpiryAfter(ttl);
  Recharge(path, e);
}

std::vector<std::string> MetadataCache::UncachedPathsIn(absl::string_view dir,
                                                        absl::string_view name,
                                                        size_t max,
                                                        size_t step) {
  std::vector<std::string> paths;
  if (step == 0) step = 1;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end() || it->second.listing_expiry() == 0) return paths;
  const Listing& listing = *it->second.extra->listing;
  const int64_t now = NowNanos();
  // Names already cached are passed over, a bounded number of them: the
  // lock is held.
  const size_t looks = std::min(listing.size(), 4 * max * step);
  auto next = listing.upper_bound(name);
  std::string child;
  for (size_t looked = 1; looked <= looks && paths.size() < max; ++looked) {
    if (next == listing.end()) {
      if (step > 1) break;
      next = listing.begin();  // round to the start
    }
    if (looked % step == 0 && next->first != name) {
      ChildPathInto(dir, next->first, &child);
      if (!AttrCachedLocked(child, now)) paths.push_back(child);
    }
    ++next;
  }
  return paths;
}

size_t MetadataCache::ListingDistance(absl::string_view dir,
                                      absl::string_view from,
                                      absl::string_view to, size_t max) {
  if (to <= from) return 0;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end() || it->second.listing_expiry() == 0) return 0;
  const Listing& listing = *it->second.extra->listing;
  auto next = listing.find(from);
  if (next == listing.end()) return 0;
  for (size_t places = 1; places <= max; ++places) {
    if (++next == listing.end()) return 0;
    if (next->first == to) return places;
  }
  return 0;
}

bool MetadataCache::ListingKnows(absl::string_view dir, absl::string_view name,
                                 bool* present) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end() || it->second.listing_expiry() <= NowNanos()) {
    return false;
  }
  it->second.referenced = true;
  *present = it->second.extra->listing->contains(name);
  return true;
}

bool MetadataCache::ListingEmpty(absl::string_view dir) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end() || it->second.listing_expiry() <= NowNanos()) {
    return false;
  }
  it->second.referenced = true;
  return it->second.extra->listing->empty();
}

void MetadataCache::EditListing(absl::string_view dir,
                                absl::FunctionRef<void(Extra&)> edit) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  auto it = entries_.find(dir);
  if (it == entries_.end() || it->second.listing_expiry() == 0) return;
  Entry& e = it->second;
  Unshare(e.extra->listing);
  edit(*e.extra);
  Recharge(dir, e);
}

void MetadataCache::ListingAdd(absl::string_view dir, absl::string_view name,
                               ListingEntry entry) {
  EditListing(dir, [&](Extra& x) {
    auto [slot, added] = x.listing->insert_or_assign(CompactString(name), entry);
    if (added) x.listing_bytes += ListedNameBytes(name);
  });
}

void MetadataCache::ListingRemove(absl::string_view dir,
                                  absl::string_view name) {
  EditListing(dir, [&](Extra& x) {
    if (x.listing->erase(name) > 0) {
      x.listing_bytes -= std::min(x.listing_bytes, ListedNameBytes(name));
    }
  });
}

void MetadataCache::PutNewDirectory(absl::string_view path,
                                    absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  ++epoch_;
  Entry& e = EntryFor(path);
  Extra& x = e.MakeExtra();
  x.listing = std::make_shared<Listing>();
  x.listing_bytes = 0;
  x.listing_expiry = ExpiryAfter(ttl);
  Recharge(path, e);
}

void MetadataCache::DropListing(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  auto it = entries_.find(path);
  if (it == entries_.end()) return;
  if (Extra* x = it->second.extra.get()) {
    x->listing_expiry = 0;
    x->listing.reset();
    x->listing_bytes = 0;
    it->second.TrimExtra();
  }
  EraseIfEmpty(it);
}

size_t MetadataCache::ListingBytes(const Listing& listing) {
  size_t bytes = 0;
  for (const auto& [name, entry] : listing) bytes += ListedNameBytes(name);
  return bytes;
}

}  // namespace fusehost
