// fusehost::Serve: a BackendServer that runs until SIGINT or SIGTERM.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/backend_server.h"
#include "client/filesystem.h"

namespace fusehost {
namespace {

// How long calls still running at shutdown may take to finish.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);

// Consumes stop signals that arrived after the first one (a second ^C during
// shutdown), so that restoring the old mask does not kill the process on its
// way out of Serve.
void DiscardPendingSignals(const sigset_t& signals) {
  struct timespec no_wait = {};
  while (sigtimedwait(&signals, nullptr, &no_wait) > 0) {
  }
}

// Serves until one of `stop_signals`, which the caller blocked, arrives.
int ServeUntilSignal(FileSystem& fs, const ServeOptions& options,
                     const sigset_t& stop_signals) {
  absl::StatusOr<std::unique_ptr<BackendServer>> server =
      BackendServer::Start(fs, options);
  if (!server.ok()) {
    std::fprintf(stderr, "fusehost: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "fusehost: %s serving on %s\n", fs.Name().c_str(),
               options.listen.c_str());
  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  std::fprintf(stderr, "fusehost: %s, shutting down\n",
               signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown(kShutdownGrace);
  return 0;
}

}  // namespace

int Serve(FileSystem& fs, const ServeOptions& options) {
  // Debian builds abseil without NDEBUG, which turns on lock-order cycle
  // detection in every absl::Mutex, gRPC's own locks included: a graph
  // update on each lock, on every call. Serve owns the process; tests of
  // the SDK run the same code with detection on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // Blocked before gRPC starts its threads, which inherit the mask; the
  // signals then stay pending until sigwait takes them. No signal handler,
  // hence no global state for one to talk to.
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  int rc = ServeUntilSignal(fs, options, stop_signals);
  DiscardPendingSignals(stop_signals);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return rc;
}

}  // namespace fusehost
