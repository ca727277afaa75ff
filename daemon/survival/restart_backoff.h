// How long the keeper waits before starting a daemon that crashed: at
// once would spin on a daemon that dies at start (a bad configuration, a
// broken upgrade), forever would leave the mounts without a server.
//
// The first crash waits kFirst; each crash of a daemon that never said it
// served and ran less than kSteady waits twice the last wait, up to
// kLongest; a daemon that served (READY), or ran kSteady or more, starts
// the count again: its mounts' programs wait, so it comes back at once.
//
// Thread use: like any value type (one owner).

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_RESTART_BACKOFF_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_RESTART_BACKOFF_H_

#include "absl/time/time.h"

namespace fusehost {

class RestartBackoff {
 public:
  static constexpr absl::Duration kFirst = absl::Milliseconds(100);
  static constexpr absl::Duration kLongest = absl::Seconds(5);
  static constexpr absl::Duration kSteady = absl::Seconds(10);

  // The wait before restarting a daemon that crashed after running
  // `ran_for`; `served`: it had said it served.
  absl::Duration AfterCrash(absl::Duration ran_for, bool served = false);

 private:
  absl::Duration next_ = kFirst;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_RESTART_BACKOFF_H_
