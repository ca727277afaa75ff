#include "daemon/pipeline/lookup_walk.h"

namespace fusehost {
namespace {

// Splits "/a/b" into "/a" and "b" (the root's children have "/").
void Split(absl::string_view path, absl::string_view* dir,
           absl::string_view* name) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) {
    *dir = absl::string_view();
    *name = path;
    return;
  }
  *dir = slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
  *name = path.substr(slash + 1);
}

}  // namespace

void LookupWalk::Hit(absl::string_view path) {
  absl::string_view dir, name;
  Split(path, &dir, &name);
  absl::MutexLock lock(&mu_);
  if (dir == dir_) last_.assign(name.data(), name.size());
}

LookupWalk::Ahead LookupWalk::Miss(absl::string_view path,
                                   const Distance& distance) {
  absl::string_view dir, name;
  Split(path, &dir, &name);
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
