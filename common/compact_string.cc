#include "common/compact_string.h"

#include <cstdlib>

namespace fusehost {

void CompactString::Init(absl::string_view s) {
  if (s.size() <= kInline) {
    std::memset(bytes_, 0, sizeof(bytes_));
    if (!s.empty()) std::memcpy(bytes_, s.data(), s.size());
    bytes_[kTag] = static_cast<char>(kInline - s.size());
    return;
  }
  // Names and paths are bounded far below this (PATH_MAX); a longer string
  // would be a broken invariant, not something to cut short.
  if (s.size() > UINT32_MAX) std::abort();
  char* p = new char[s.size()];
  std::memcpy(p, s.data(), s.size());
  uint32_t n = static_cast<uint32_t>(s.size());
  std::memset(bytes_, 0, sizeof(bytes_));
  std::memcpy(bytes_, &p, sizeof(p));
  std::memcpy(bytes_ + sizeof(p), &n, sizeof(n));
  bytes_[kTag] = kHeap;
}

}  // namespace fusehost
