#include "daemon/fuse/xattr_exclusions.h"

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace fusehost {

namespace {
// XATTR_NAME_MAX: no longer name exists, so no longer prefix means anything.
constexpr size_t kMaxNameBytes = 255;
}  // namespace

XattrExclusions::XattrExclusions(const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (prefixes_.size() == kMaxPrefixes) break;
    if (p.empty() || p.size() > kMaxNameBytes ||
        p.find('\0') != std::string::npos) {
      continue;
    }
    prefixes_.push_back(p);
  }
}

bool XattrExclusions::Excludes(absl::string_view name) const {
  for (const std::string& p : prefixes_) {
    if (absl::StartsWith(name, p)) return true;
  }
  return false;
}

void XattrExclusions::Filter(std::string* list) const {
  if (prefixes_.empty()) return;
  std::string kept;
  kept.reserve(list->size());
  for (absl::string_view name :
       absl::StrSplit(*list, '\0', absl::SkipEmpty())) {
    if (Excludes(name)) continue;
    kept.append(name.data(), name.size());
    kept.push_back('\0');
  }
  list->swap(kept);
}

}  // namespace fusehost
