#include "daemon/pipeline/lookup_walk.h"

#include "common/paths.h"

namespace fusehost {

void LookupWalk::Hit(absl::string_view path) {
  const absl::string_view dir = ParentOf(path);
  const absl::string_view name = BaseName(path);
  absl::MutexLock lock(&mu_);
  if (dir == dir_) last_.assign(name.data(), name.size());
}

LookupWalk::Ahead LookupWalk::Miss(absl::string_view path,
                                   const Distance& distance) {
  const absl::string_view dir = ParentOf(path);
  const absl::string_view name = BaseName(path);
  absl::MutexLock lock(&mu_);
  if (dir != dir_) {
    dir_.assign(dir.data(), dir.size());
    last_.assign(name.data(), name.size());
    step_ = 0;
    every_name_ = false;
    return Ahead{};
  }
  Ahead ahead;
  ahead.fetch = true;
  if (name == last_) {
    // The same name again (a lookup, then a stat of it): no news of the
    // stride.
    ahead.step = every_name_ || step_ == 0 ? 1 : step_;
    return ahead;
  }
  const size_t moved = distance(dir, last_, name);
  last_.assign(name.data(), name.size());
  const size_t step = moved == 0 ? 1 : moved;
  // A stride fetched ahead at, then another: not a caller with a stride.
  if (step_ > 1 && step != step_) every_name_ = true;
  step_ = step;
  ahead.step = every_name_ ? 1 : step;
  return ahead;
}

}  // namespace fusehost
