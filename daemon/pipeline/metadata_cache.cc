#include "daemon/pipeline/metadata_cache.h"

// Attributes, absences and symlink targets; what moves and drops entries;
// the bounds and eviction. Listings are in metadata_cache_listings.cc,
// extended attributes in metadata_cache_xattrs.cc.

#include <sys/stat.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "common/paths.h"
#include "daemon/pipeline/metadata_cache_clock.h"

namespace fusehost {
namespace {

using metadata_cache_clock::ExpiryAfter;
using metadata_cache_clock::NowNanos;

uint32_t MillisLeft(int64_t expiry, int64_t now) {
  int64_t ms = (expiry - now) / 1000000;
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 1, UINT32_MAX));
}

}  // namespace

CompactAttr CompactAttr::FromProto(const v1::Attr& a) {
  CompactAttr c;
  c.ino = a.ino();
  c.size = a.size();
  c.blocks = a.blocks();
  c.atime_sec = a.atime().sec();
  c.mtime_sec = a.mtime().sec();
  c.ctime_sec = a.ctime().sec();
  c.mode = a.mode();
  c.nlink = a.nlink();
  c.uid = a.uid();
  c.gid = a.gid();
  c.blksize = a.blksize();
  c.atime_nsec = a.atime().nsec();
  c.mtime_nsec = a.mtime().nsec();
  c.ctime_nsec = a.ctime().nsec();
  return c;
}

void CompactAttr::ToProto(v1::Attr* a) const {
  a->set_ino(ino);
  a->set_size(size);
  a->set_blocks(blocks);
  a->mutable_atime()->set_sec(atime_sec);
  a->mutable_mtime()->set_sec(mtime_sec);
  a->mutable_ctime()->set_sec(ctime_sec);
  a->set_mode(mode);
  a->set_nlink(nlink);
  a->set_uid(uid);
  a->set_gid(gid);
  a->set_blksize(blksize);
  a->mutable_atime()->set_nsec(atime_nsec);
  a->mutable_mtime()->set_nsec(mtime_nsec);
  a->mutable_ctime()->set_nsec(ctime_nsec);
}

void MetadataCache::Entry::SetAttr(const v1::Attr& a) {
  attr = CompactAttr::FromProto(a);
  if (a.rdev() != 0) {
    MakeExtra().rdev = a.rdev();
  } else if (extra != nullptr) {
    extra->rdev = 0;
    TrimExtra();
  }
}

void MetadataCache::Entry::ForgetAttr(State now) {
  state = now;
  if (extra == nullptr) return;
  extra->rdev = 0;
  if (now == kNegative) {
    extra->symlink_expiry = 0;
    std::string().swap(extra->symlink);
    extra->listing_expiry = 0;
    extra->listing.reset();
    extra->listing_bytes = 0;
    extra->xattrs.clear();
  }
  TrimExtra();
}

void MetadataCache::Entry::AttrToProto(v1::Attr* a) const {
  attr.ToProto(a);
  a->set_rdev(extra != nullptr ? extra->rdev : 0);
}

size_t MetadataCache::MaxBytesFor(size_t max_entries) {
  constexpr size_t kPerEntry = 384;
  return std::max(size_t{64} << 20, max_entries * kPerEntry);
}

MetadataCache::MetadataCache(Options options) : options_(options) {}

uint64_t MetadataCache::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

MetadataCache::AttrLookup MetadataCache::GetAttr(absl::string_view path,
                                                 v1::Attr* attr) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.state == Entry::kNone) {
    return AttrLookup::kMiss;
  }
  Entry& e = it->second;
  int64_t now = NowNanos();
  if (e.attr_expiry <= now) return AttrLookup::kMiss;
  e.referenced = true;
  if (e.state == Entry::kNegative) return AttrLookup::kNegative;
  e.AttrToProto(attr);
  attr->set_ttl_ms(MillisLeft(e.attr_expiry, now));
  return AttrLookup::kHit;
}

bool MetadataCache::GetLastAttr(absl::string_view path, v1::Attr* attr) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.state != Entry::kAttr) return false;
  const Entry& e = it->second;
  e.AttrToProto(attr);
  const int64_t now = NowNanos();
  attr->set_ttl_ms(e.attr_expiry > now ? MillisLeft(e.attr_expiry, now) : 0);
  return true;
}

void MetadataCache::PutAttr(absl::string_view path, const v1::Attr& attr,
                            absl::Duration ttl, uint64_t epoch) {
  if (ttl <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  Entry& e = EntryFor(path);
  Unlink(path, e);
  e.state = Entry::kAttr;
  e.SetAttr(attr);
  e.attr_expiry = ExpiryAfter(ttl);
  Link(path, e);
  NoteXattrNames(e, attr);
  Recharge(path, e);
}

void MetadataCache::PutNegative(absl::string_view path, absl::Duration ttl,
                                uint64_t epoch) {
  if (ttl <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  Entry& e = EntryFor(path);
  Unlink(path, e);
  e.ForgetAttr(Entry::kNegative);
  e.xattr_expiry = 0;
  e.no_xattrs = false;
  e.attr_expiry = ExpiryAfter(ttl);
  Recharge(path, e);
}

std::optional<std::string> MetadataCache::GetSymlink(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.symlink_expiry() <= NowNanos()) {
    return std::nullopt;
  }
  it->second.referenced = true;
  return it->second.extra->symlink;
}

void MetadataCache::PutSymlink(absl::string_view path,
                               const std::string& target, absl::Duration ttl,
                               uint64_t epoch) {
  if (ttl <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  Entry& e = EntryFor(path);
  e.MakeExtra().symlink = target;
  e.extra->symlink_expiry = ExpiryAfter(ttl);
  Recharge(path, e);
}

bool MetadataCache::AttrCachedLocked(absl::string_view path, int64_t now) {
  auto it = entries_.find(path);
  return it != entries_.end() && it->second.state != Entry::kNone &&
         it->second.attr_expiry > now;
}

void MetadataCache::UpdateAttr(absl::string_view path, const v1::Attr& attr,
                               absl::Duration ttl) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  if (ttl <= absl::ZeroDuration()) {
    auto it = entries_.find(path);
    if (it != entries_.end()) {
      it->second.ForgetAttr(Entry::kNone);
      EraseIfEmpty(it);
    }
    return;
  }
  Entry& e = EntryFor(path);
  Unlink(path, e);
  e.state = Entry::kAttr;
  e.SetAttr(attr);
  e.attr_expiry = ExpiryAfter(ttl);
  Link(path, e);
  NoteXattrNames(e, attr);
  Recharge(path, e);
}

bool MetadataCache::UpdateWritten(absl::string_view path,
                                  const struct stat& backing) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.state != Entry::kAttr ||
      it->second.attr_expiry <= NowNanos()) {
    return false;
  }
  ++epoch_;
  CompactAttr& a = it->second.attr;
  a.size = backing.st_size;
  a.blocks = backing.st_blocks;
  a.mtime_sec = backing.st_mtim.tv_sec;
  a.mtime_nsec = backing.st_mtim.tv_nsec;
  // A change answered early (write-behind) may have moved ctime past the
  // backing file's: it never goes back.
  if (std::make_pair(static_cast<int64_t>(backing.st_ctim.tv_sec),
                     static_cast<uint32_t>(backing.st_ctim.tv_nsec)) >
      std::make_pair(a.ctime_sec, a.ctime_nsec)) {
    a.ctime_sec = backing.st_ctim.tv_sec;
    a.ctime_nsec = backing.st_ctim.tv_nsec;
  }
  return true;
}

void MetadataCache::DropAttr(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  auto it = entries_.find(path);
  if (it == entries_.end()) return;
  // Which file the name was stays (ForgetAttr keeps the inode number), and
  // a hard-linked name keeps its place in hard_links_ while the entry
  // lives: its extended attribute answers, which outlive the attributes
  // (the kernel asks for security.capability before every write), must
  // stay reachable by a change through another name.
  it->second.ForgetAttr(Entry::kNone);
  EraseIfEmpty(it);
}

void MetadataCache::DropSubtree(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  DropSubtreeLocked(path);
}

void MetadataCache::DropSubtreeLocked(absl::string_view path) {
  ++epoch_;
  if (path == "/") {
    entries_.clear();
    hard_links_.clear();
    bytes_ = 0;
    return;
  }
  auto self = entries_.find(path);
  if (self != entries_.end()) EraseRange(self, std::next(self));
  auto [lo, hi] = BelowKeyRange(path);
  EraseRange(entries_.lower_bound(lo), entries_.lower_bound(hi));
}

void MetadataCache::MarkRemoved(absl::string_view path,
                                absl::Duration negative_ttl) {
  // One step: an answer stored between the drop and the mark would be
  // overwritten by the mark.
  absl::MutexLock lock(&mu_);
  DropSubtreeLocked(path);
  if (negative_ttl <= absl::ZeroDuration()) return;
  Entry& e = EntryFor(path);
  Unlink(path, e);
  e.state = Entry::kNegative;
  e.attr_expiry = ExpiryAfter(negative_ttl);
  Recharge(path, e);
}

void MetadataCache::Rename(absl::string_view from, absl::string_view to,
                           bool exchange) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  // Takes `path` and its subtree out of the map, keyed by the part after
  // `path` ("" for `path` itself).
  auto take = [this](absl::string_view path)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::pair<std::string, Entry>> out;
    auto self = entries_.find(path);
    if (self != entries_.end()) {
      Unlink(self->first, self->second);
      out.emplace_back("", std::move(self->second));
      EraseRange(self, std::next(self));
    }
    auto [lo, hi] = BelowKeyRange(path);
    auto first = entries_.lower_bound(lo), last = entries_.lower_bound(hi);
    for (auto it = first; it != last; ++it) {
      Unlink(it->first, it->second);
      out.emplace_back(it->first.view().substr(path.size()),
                       std::move(it->second));
    }
    EraseRange(first, last);
    return out;
  };
  auto from_entries = take(from);
  auto to_entries = take(to);
  // Attributes move with the names; listings of the two parents are
  // dropped by the caller, which knows them.
  auto put_back = [this](std::string key, Entry entry)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    entry.charged = 0;  // uncounted when taken out
    Entry& e = entries_[key] = std::move(entry);
    Link(key, e);
    Recharge(key, e);
  };
  for (auto& [suffix, entry] : from_entries) {
    put_back(std::string(to) + suffix, std::move(entry));
  }
  if (exchange) {
    for (auto& [suffix, entry] : to_entries) {
      put_back(std::string(from) + suffix, std::move(entry));
    }
  }
  if (entries_.size() > options_.max_entries) EvictLocked();
}

std::vector<std::string> MetadataCache::PathsWithIno(uint64_t ino,
                                                     absl::string_view except) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  auto it = hard_links_.find(ino);
  if (it == hard_links_.end()) return out;
  for (const CompactString& path : it->second) {
    if (path != except) out.push_back(path.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void MetadataCache::Link(absl::string_view path, Entry& e) {
  // Only files share an inode between names: a directory's link count
  // counts its subdirectories, and 0 is no inode number at all (a backend
  // that does not report them), so neither identifies a hard link. An
  // entry whose attributes were dropped still knows its file (a rename
  // moves such entries too).
  if (e.linked || e.state == Entry::kNegative || e.attr.nlink <= 1 ||
      e.attr.ino == 0 || S_ISDIR(e.attr.mode)) {
    return;
  }
  hard_links_[e.attr.ino].emplace_back(path);
  e.linked = true;
}

void MetadataCache::Unlink(absl::string_view path, Entry& e) {
  if (!e.linked) return;
  e.linked = false;
  auto it = hard_links_.find(e.attr.ino);
  if (it == hard_links_.end()) return;
  std::vector<CompactString>& paths = it->second;
  auto p = std::find(paths.begin(), paths.end(), path);
  if (p != paths.end()) {
    *p = std::move(paths.back());
    paths.pop_back();
  }
  if (paths.empty()) hard_links_.erase(it);
}

bool MetadataCache::GetIno(absl::string_view path, uint64_t* ino,
                           uint32_t* nlink) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(path);
  // A hard-linked name whose attributes were dropped still says which file
  // it is.
  if (it == entries_.end() ||
      !(it->second.state == Entry::kAttr || it->second.linked)) {
    return false;
  }
  *ino = it->second.attr.ino;
  *nlink = it->second.attr.nlink;
  return true;
}

void MetadataCache::Clear() {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  entries_.clear();
  hard_links_.clear();
  bytes_ = 0;
}

size_t MetadataCache::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

size_t MetadataCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

MetadataCache::Entry& MetadataCache::EntryFor(absl::string_view path) {
  auto it = entries_.find(path);
  if (it != entries_.end()) return it->second;
  if (entries_.size() >= options_.max_entries) EvictLocked();
  return entries_[CompactString(path)];
}

void MetadataCache::EraseIfEmpty(Map::iterator it) {
  if (it == entries_.end()) return;
  if (it->second.empty()) {
    EraseRange(it, std::next(it));
  } else {
    Recharge(it->first, it->second);
  }
}

MetadataCache::Map::iterator MetadataCache::EraseRange(Map::iterator first,
                                                       Map::iterator last) {
  for (auto it = first; it != last; ++it) {
    bytes_ -= std::min<size_t>(bytes_, it->second.charged);
    Unlink(it->first, it->second);
  }
  return entries_.erase(first, last);
}

void MetadataCache::Recharge(absl::string_view path, Entry& e) {
  // The entry, its key and its share of the tree, plus what it points to.
  size_t bytes = path.size() + sizeof(Entry) + 64;
  if (const Extra* x = e.extra.get()) {
    bytes += sizeof(Extra) + x->symlink.capacity() + x->listing_bytes;
    for (const auto& [name, answer] : x->xattrs) {
      bytes += name.size() + answer.value.capacity() + 64;
    }
  }
  // A listing is at most an eighth of max_bytes; nothing near 4 GiB.
  bytes = std::min<size_t>(bytes, UINT32_MAX);
  bytes_ = bytes_ - std::min<size_t>(bytes_, e.charged) + bytes;
  e.charged = static_cast<uint32_t>(bytes);
  if (bytes_ > options_.max_bytes) EvictLocked();
}

void MetadataCache::EvictLocked() {
  // Free a tenth so that eviction runs rarely.
  size_t target = options_.max_entries - options_.max_entries / 10;
  size_t byte_target = options_.max_bytes - options_.max_bytes / 10;
  // Small bounds: still make room for the entry about to be added.
  if (target >= options_.max_entries && options_.max_entries > 0) {
    target = options_.max_entries - 1;
  }
  int64_t now = NowNanos();
  // Two passes at most: the first clears reference bits it passes over.
  auto over = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return entries_.size() > target || bytes_ > byte_target;
  };
  for (int pass = 0; pass < 2 * 2 && over(); ++pass) {
    auto it = entries_.lower_bound(clock_hand_);
    while (it != entries_.end() && over()) {
      Entry& e = it->second;
      bool expired = e.attr_expiry <= now && e.symlink_expiry() <= now &&
                     e.listing_expiry() <= now && e.xattr_expiry <= now;
      if (e.referenced && !expired) {
        e.referenced = false;
        ++it;
      } else {
        it = EraseRange(it, std::next(it));
      }
    }
    clock_hand_ = it == entries_.end() ? std::string() : it->first.str();
  }
}

}  // namespace fusehost
