#include "daemon/survival/restart_backoff.h"

#include <algorithm>

namespace fusehost {

absl::Duration RestartBackoff::AfterCrash(absl::Duration ran_for,
                                          bool served) {
  if (served || ran_for >= kSteady) next_ = kFirst;
  absl::Duration wait = next_;
  next_ = std::min(next_ * 2, kLongest);
  return wait;
}

}  // namespace fusehost
