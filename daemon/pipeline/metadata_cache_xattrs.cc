#include "daemon/pipeline/metadata_cache.h"

// Extended attributes: answers per name, what a name list implies, and
// names the filesystem does not support at all.

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/pipeline/metadata_cache_clock.h"

namespace fusehost {
namespace {

using metadata_cache_clock::ExpiryAfter;
using metadata_cache_clock::NowNanos;

// Whether the listxattr answer `list` (names, each ending in NUL) has
// `name`.
bool ListHas(absl::string_view list, absl::string_view name) {
  for (absl::string_view n : absl::StrSplit(list, '\0', absl::SkipEmpty())) {
    if (n == name) return true;
  }
  return false;
}

}  // namespace

void MetadataCache::NoteXattrNames(Entry& e, const v1::Attr& attr) {
  if (!attr.xattr_names_known()) return;
  // The names are as fresh as the attributes they came with.
  e.ClearXattrs();
  e.xattr_expiry = e.attr_expiry;
  e.no_xattrs = attr.xattr_names().empty();
  if (e.no_xattrs) return;  // the common case costs no allocation
  std::string list;
  for (const std::string& name : attr.xattr_names()) {
    if (name.empty() || name.find('\0') != std::string::npos) {
      e.xattr_expiry = 0;  // a malformed list tells nothing
      return;
    }
    absl::StrAppend(&list, name, absl::string_view("\0", 1));
  }
  if (list.size() > kMaxCachedXattr) {
    e.xattr_expiry = 0;
    return;
  }
  e.MakeExtra().xattrs[""].value = std::move(list);
}

MetadataCache::AttrLookup MetadataCache::GetXattr(absl::string_view path,
                                                  absl::string_view name,
                                                  std::string* value,
                                                  int* negative_errno) {
  absl::MutexLock lock(&mu_);
  if (!name.empty()) {
    auto u = unsupported_xattrs_.find(name);
    if (u != unsupported_xattrs_.end()) {
      if (u->second > NowNanos()) {
        if (negative_errno != nullptr) *negative_errno = EOPNOTSUPP;
        return AttrLookup::kNegative;
      }
      unsupported_xattrs_.erase(u);
    }
  }
  auto it = entries_.find(path);
  if (it == entries_.end() || it->second.xattr_expiry <= NowNanos()) {
    return AttrLookup::kMiss;
  }
  Entry& e = it->second;
  const Extra::XattrAnswer* answer = nullptr;
  if (e.extra != nullptr) {
    auto x = e.extra->xattrs.find(name);
    if (x != e.extra->xattrs.end()) answer = &x->second;
  }
  if (answer == nullptr) {
    // What the name list (the listxattr answer) implies. trusted.* names
    // are left out of lists given to unprivileged callers, so their absence
    // from a list proves nothing.
    if (absl::StartsWith(name, "trusted.")) return AttrLookup::kMiss;
    if (e.no_xattrs) {
      e.referenced = true;
      if (name.empty()) {
        value->clear();
        return AttrLookup::kHit;
      }
      if (negative_errno != nullptr) *negative_errno = ENODATA;
      return AttrLookup::kNegative;
    }
    if (e.extra == nullptr) return AttrLookup::kMiss;
    auto list = e.extra->xattrs.find("");
    if (list == e.extra->xattrs.end() || list->second.negative_errno != 0 ||
        ListHas(list->second.value, name)) {
      return AttrLookup::kMiss;
    }
    e.referenced = true;
    if (negative_errno != nullptr) *negative_errno = ENODATA;
    return AttrLookup::kNegative;
  }
  e.referenced = true;
  if (answer->negative_errno != 0) {
    if (negative_errno != nullptr) *negative_errno = answer->negative_errno;
    return AttrLookup::kNegative;
  }
  *value = answer->value;
  return AttrLookup::kHit;
}

void MetadataCache::PutXattr(absl::string_view path, absl::string_view name,
                             const std::string* value, absl::Duration ttl,
                             uint64_t epoch, int negative_errno) {
  if (ttl <= absl::ZeroDuration()) return;
  if (value != nullptr && value->size() > kMaxCachedXattr) return;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  Entry& e = EntryFor(path);
  if (e.xattr_expiry <= NowNanos()) {
    // Expired answers go together; the new ones live for `ttl`.
    e.ClearXattrs();
    e.xattr_expiry = ExpiryAfter(ttl);
  }
  auto& xattrs = e.MakeExtra().xattrs;
  // A caller asking for ever new names must not grow one path's answers
  // without end; the usual few (capabilities, ACLs, labels) fit.
  if (xattrs.size() >= kMaxXattrAnswers && !xattrs.contains(name)) {
    e.TrimExtra();
    EraseIfEmpty(entries_.find(path));
    return;
  }
  Extra::XattrAnswer& answer = xattrs[std::string(name)];
  answer.negative_errno = value != nullptr ? 0 : negative_errno;
  answer.value = value != nullptr ? *value : std::string();
  Recharge(path, e);
}

void MetadataCache::PutUnsupportedXattr(absl::string_view name,
                                        absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration() || name.empty()) return;
  absl::MutexLock lock(&mu_);
  // Bounded: a backend answering EOPNOTSUPP to every name asked would
  // otherwise grow it without end.
  if (unsupported_xattrs_.size() >= 64) unsupported_xattrs_.clear();
  unsupported_xattrs_[std::string(name)] = ExpiryAfter(ttl);
}

void MetadataCache::XattrSupported(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  unsupported_xattrs_.erase(name);
}

void MetadataCache::DropXattrs(absl::string_view path) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  auto it = entries_.find(path);
  if (it == entries_.end()) return;
  it->second.ClearXattrs();
  EraseIfEmpty(it);
}

}  // namespace fusehost
