#include "examples/loopback/handle_table.h"

#include <utility>

namespace fusehost {
namespace examples {

uint64_t HandleTable::Add(int fd) {
  Ref ref = std::make_shared<const ScopedFd>(fd);
  absl::MutexLock lock(&mu_);
  const uint64_t fh = next_++;
  open_.emplace(fh, std::move(ref));
  return fh;
}

HandleTable::Ref HandleTable::Find(uint64_t fh) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(fh);
  return it == open_.end() ? nullptr : it->second;
}

bool HandleTable::Remove(uint64_t fh) {
  Ref ref;  // closed here, after the lock is released, if it was the last
  absl::MutexLock lock(&mu_);
  auto it = open_.find(fh);
  if (it == open_.end()) return false;
  ref = std::move(it->second);
  open_.erase(it);
  return true;
}

}  // namespace examples
}  // namespace fusehost
