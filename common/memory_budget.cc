#include "common/memory_budget.h"

namespace fusehost {

MemoryBudget::~MemoryBudget() {
  if (parent_ != nullptr) parent_->Release(used_.load());
}

bool MemoryBudget::TryCharge(size_t bytes) {
  size_t now = used_.load(std::memory_order_relaxed);
  do {
    if (now + bytes > limit_ || now + bytes < now) return false;
  } while (!used_.compare_exchange_weak(now, now + bytes));
  if (parent_ != nullptr && !parent_->TryCharge(bytes)) {
    used_.fetch_sub(bytes);
    return false;
  }
  return true;
}

void MemoryBudget::Release(size_t bytes) {
  used_.fetch_sub(bytes);
  if (parent_ != nullptr) parent_->Release(bytes);
}

}  // namespace fusehost
