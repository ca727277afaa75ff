// A string in 16 bytes, for what the daemon keeps once per file (names in
// the inode table and in cached listings, the cache's paths): up to 15
// characters are kept inline, longer strings in one exact-size heap block.
// std::string takes 32 bytes and inlines only 15 characters as well.
//
// Not NUL-terminated: use view(). Compares and hashes as its characters, so
// ordered and hashed containers can be searched with any absl::string_view
// (CompactStringLess).

#ifndef FUSE_HOSTD_COMMON_COMPACT_STRING_H_
#define FUSE_HOSTD_COMMON_COMPACT_STRING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace fusehost {

class CompactString {
 public:
  CompactString() noexcept { SetEmpty(); }
  CompactString(absl::string_view s) { Init(s); }  // NOLINT: implicit
  CompactString(const std::string& s) : CompactString(absl::string_view(s)) {}  // NOLINT
  CompactString(const char* s) : CompactString(absl::string_view(s)) {}  // NOLINT
  CompactString(const CompactString& other) { Init(other.view()); }
  CompactString(CompactString&& other) noexcept {
    std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
    other.SetEmpty();
  }
  CompactString& operator=(const CompactString& other) {
    if (this != &other) {
      CompactString copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  CompactString& operator=(CompactString&& other) noexcept {
    if (this != &other) {
      Free();
      std::memcpy(bytes_, other.bytes_, sizeof(bytes_));
      other.SetEmpty();
    }
    return *this;
  }
  ~CompactString() { Free(); }

  absl::string_view view() const {
    if (on_heap()) return absl::string_view(heap_data(), heap_size());
    return absl::string_view(bytes_, kInline - bytes_[kTag]);
  }
  operator absl::string_view() const { return view(); }  // NOLINT: implicit
  std::string str() const { return std::string(view()); }
  size_t size() const { return view().size(); }
  bool empty() const { return size() == 0; }

  friend bool operator==(const CompactString& a, const CompactString& b) {
    return a.view() == b.view();
  }
  friend bool operator!=(const CompactString& a, const CompactString& b) {
    return !(a == b);
  }
  friend bool operator<(const CompactString& a, const CompactString& b) {
    return a.view() < b.view();
  }
  friend bool operator==(const CompactString& a, absl::string_view b) {
    return a.view() == b;
  }
  friend bool operator!=(const CompactString& a, absl::string_view b) {
    return a.view() != b;
  }
  template <typename H>
  friend H AbslHashValue(H h, const CompactString& s) {
    return H::combine(std::move(h), s.view());
  }

 private:
  // bytes_[kTag] is kInline minus the length for an inline string (0 when
  // all 15 characters are used), kHeap for one on the heap, whose pointer
  // and length are in the first 12 bytes.
  static constexpr size_t kInline = 15;
  static constexpr size_t kTag = 15;
  static constexpr char kHeap = static_cast<char>(0x80);

  bool on_heap() const { return bytes_[kTag] == kHeap; }
  const char* heap_data() const {
    const char* p;
    std::memcpy(&p, bytes_, sizeof(p));
    return p;
  }
  uint32_t heap_size() const {
    uint32_t n;
    std::memcpy(&n, bytes_ + sizeof(char*), sizeof(n));
    return n;
  }
  void SetEmpty() {
    std::memset(bytes_, 0, sizeof(bytes_));
    bytes_[kTag] = kInline;
  }
  void Init(absl::string_view s);
  void Free() {
    if (on_heap()) delete[] heap_data();
  }

  alignas(char*) char bytes_[16];
};
static_assert(sizeof(CompactString) == 16, "a CompactString is 16 bytes");

// Orders CompactStrings, std::strings and string_views alike, so that
// containers keyed by CompactString are searched without making one.
struct CompactStringLess {
  using is_transparent = void;
  bool operator()(absl::string_view a, absl::string_view b) const {
    return a < b;
  }
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_COMPACT_STRING_H_
