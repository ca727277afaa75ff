// The keeper: `fuse-hostd --supervise`, a small process that runs the
// daemon as its child and holds, for each mount, the descriptors the
// daemon hands it (keeper_protocol.h): its /dev/fuse descriptor keeps the
// mount alive, its state memfd says what the kernel knows. When the daemon
// crashes the keeper starts it again, and the new daemon takes them back.
// The keeper itself never opens /dev/fuse and never touches a mount.
//
// Its life:
//   - starts the daemon (child_launcher.h) with the keeper's arguments,
//     less --supervise, and serves its requests (kept_descriptors.h);
//   - the daemon exits 75 (it handed over: a planned restart): the next
//     one starts at once;
//   - the daemon exits 0 (it stopped on purpose): the keeper exits 0;
//   - the daemon crashes (a signal, another status): it starts again after
//     a backoff (restart_backoff.h);
//   - SIGTERM or SIGINT: the daemon gets SIGTERM; once it is gone the
//     keeper exits 0, closing what it kept (which ends the mounts);
//   - SIGUSR2 or SIGHUP: the daemon gets SIGUSR2, asking it to hand over.
//
// Thread use: Run from a process's only thread; it blocks the signals it
// handles for the whole process and forks.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "daemon/survival/kept_descriptors.h"
#include "daemon/survival/restart_backoff.h"

namespace fusehost {

class Keeper {
 public:
  // The exit status of a daemon that handed over (EX_TEMPFAIL).
  static constexpr int kHandedOver = 75;

  struct Options {
    std::string binary;             // started anew for each daemon
    std::vector<std::string> argv;  // argv[0] first
  };

  explicit Keeper(Options options);
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  // Supervises until the daemon stops on purpose or the keeper is told to
  // stop; returns the keeper's exit status.
  int Run();

 private:
  using Clock = std::chrono::steady_clock;

  int Loop(int signal_fd);
  void StartDaemon();
  void ServeDaemon();
  // Each handler returns the keeper's exit status once it is time to go.
  std::optional<int> TakeSignals(int signal_fd);
  std::optional<int> ReapChildren();
  std::optional<int> DaemonExited(int wait_status);
  std::optional<int> Stop(int signal);
  void HandOver(int signal);
  // Carries out what the daemon sent before it exited; no one reads the
  // replies.
  void DrainRequests();

  const Options options_;
  KeptDescriptors kept_;
  RestartBackoff backoff_;
  pid_t daemon_pid_ = 0;  // 0: none running
  Clock::time_point daemon_started_;
  UniqueFd socket_;  // the keeper's end of the running daemon's socket
  Clock::time_point start_at_;  // when to start the next daemon
  bool stopping_ = false;
};

// fuse-hostd --supervise: the keeper of the daemon started from this
// process's own binary with `daemon_argv` (argv[0] first). Returns the exit
// status.
int RunKeeper(const std::vector<std::string>& daemon_argv);

// argv without --supervise (and its -supervise and --supervise=VALUE
// spellings) before a "--".
std::vector<std::string> WithoutSuperviseFlag(int argc, char** argv);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_H_
