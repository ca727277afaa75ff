// Starting the daemon as the keeper's child (keeper.h).
//
// The child runs `binary` by its path, so that a file replaced since the
// keeper started (a package upgrade) is what the next child runs. It gets
// the keeper's environment with FUSE_HOSTD_KEEPER_FD naming its end of the
// keeper's socket, the only descriptor of the keeper's own it inherits
// (every other one is close-on-exec; descriptors the keeper inherited
// open, such as systemd's listening sockets, pass on). LISTEN_PID and
// WATCHDOG_PID, when they name the keeper, name the child instead: what
// systemd passed is meant for whoever serves. Signal mask and dispositions
// are the defaults, whatever the keeper set.
//
// Thread use: from a single-threaded process (it forks).

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_CHILD_LAUNCHER_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_CHILD_LAUNCHER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fusehost {

// The running binary's path, from /proc/self/exe, without the
// " (deleted)" the kernel adds once the file was replaced or removed.
absl::StatusOr<std::string> OwnBinaryPath();

struct ChildLaunch {
  std::string binary;             // absolute path
  std::vector<std::string> argv;  // argv[0] first
  int keeper_fd = -1;             // the child's end of the keeper's socket
};

// Starts the child; its pid. The child exits 127 if `binary` cannot run.
absl::StatusOr<pid_t> LaunchChild(const ChildLaunch& launch);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_CHILD_LAUNCHER_H_
