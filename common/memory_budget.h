// A budget of bytes the daemon may hold for one purpose, nested: a mount's
// budget draws on the daemon's, so that neither one mount nor all of them
// together can make the root daemon grow without bound, whatever backends
// send and however many directories users keep open.
//
// Thread-safe: lock-free counters.

#ifndef FUSE_HOSTD_COMMON_MEMORY_BUDGET_H_
#define FUSE_HOSTD_COMMON_MEMORY_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <string>

namespace fusehost {

class MemoryBudget {
 public:
  // `parent` (may be null) must outlive this budget.
  explicit MemoryBudget(size_t limit, MemoryBudget* parent = nullptr)
      : limit_(limit), parent_(parent) {}
  ~MemoryBudget();  // gives back to the parent what is still charged

  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Takes `bytes` from this budget and every parent; false (and nothing
  // taken) if any of them would go over its limit.
  bool TryCharge(size_t bytes);
  void Release(size_t bytes);

  size_t used() const { return used_.load(std::memory_order_relaxed); }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  MemoryBudget* const parent_;
  std::atomic<size_t> used_{0};
};

// What a heap allocation of `bytes` really takes, for what is charged to a
// budget: a budget bounds the daemon's growth only if charges are not
// guesses on the low side. glibc's malloc adds 8 bytes to a block and rounds
// it up to 16.
constexpr size_t HeapBlockBytes(size_t bytes) {
  return (bytes + 8 + 15) / 16 * 16;
}

// The heap block a std::string owns beside itself: none for strings that fit
// its inline buffer (15 characters in libstdc++).
inline size_t StringHeapBytes(const std::string& s) {
  return s.size() <= 15 ? 0 : HeapBlockBytes(s.size() + 1);
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_MEMORY_BUDGET_H_
