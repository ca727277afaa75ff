#include "daemon/survival/keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/log_line.h"
#include "daemon/survival/child_launcher.h"
#include "daemon/survival/keeper_protocol.h"

namespace fusehost {
namespace {

// How long the daemon has to take each reply: a daemon that hangs must not
// hang its keeper.
constexpr absl::Duration kReplyTimeout = absl::Seconds(5);

sigset_t KeeperSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGUSR2, SIGHUP}) {
    sigaddset(&set, sig);
  }
  return set;
}

std::string DescribeExit(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    return absl::StrCat("killed by signal ", sig, " (", strsignal(sig), ")");
  }
  return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
}

// A closed stdin, stdout or stderr would be the number the next descriptor
// takes: the daemon's socket to the keeper could become its stderr.
void OpenStandardDescriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    // The lowest free number, so `fd` itself.
    int opened = open("/dev/null", O_RDWR);
    if (opened >= 0 && opened != fd) close(opened);
  }
}

bool IsSuperviseFlag(absl::string_view arg) {
  if (!absl::ConsumePrefix(&arg, "--")) {
    if (!absl::ConsumePrefix(&arg, "-")) return false;
  }
  return arg == "supervise" || absl::StartsWith(arg, "supervise=");
}

}  // namespace

Keeper::Keeper(Options options) : options_(std::move(options)) {}

int Keeper::Run() {
  // Signals come through a descriptor, in the loop, rather than to
  // handlers: the loop is the only place that changes the keeper's state.
  const sigset_t signals = KeeperSignals();
  sigset_t previous;
  sigprocmask(SIG_BLOCK, &signals, &previous);
  int status = 1;
  UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (signal_fd.valid()) {
    status = Loop(signal_fd.get());
  } else {
    Log("keeper: signalfd: %s", std::strerror(errno));
  }
  socket_.reset();
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  return status;
}

int Keeper::Loop(int signal_fd) {
  start_at_ = Clock::now();
  for (;;) {
    int wait_ms = -1;
    if (daemon_pid_ == 0) {
      Clock::duration left = start_at_ - Clock::now();
      if (left <= Clock::duration::zero()) {
        StartDaemon();
        continue;
      }
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      wait_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
    struct pollfd fds[2] = {{signal_fd, POLLIN, 0},
                            {socket_.valid() ? socket_.get() : -1, POLLIN, 0}};
    if (poll(fds, 2, wait_ms) < 0) {
      if (errno == EINTR) continue;
      Log("keeper: poll: %s", std::strerror(errno));
      return 1;
    }
    if (fds[1].revents != 0) ServeDaemon();
    if (fds[0].revents != 0) {
      if (std::optional<int> status = TakeSignals(signal_fd)) return *status;
    }
  }
}

void Keeper::StartDaemon() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    absl::Duration wait = backoff_.AfterCrash(absl::ZeroDuration());
    Log("keeper: socketpair: %s; trying again in %s", std::strerror(errno),
        absl::FormatDuration(wait));
    start_at_ = Clock::now() + absl::ToChronoNanoseconds(wait);
    return;
  }
  UniqueFd mine(pair[0]);
  UniqueFd theirs(pair[1]);  // the daemon's copy is all it needs
  absl::StatusOr<pid_t> pid =
      LaunchChild({options_.binary, options_.argv, theirs.get()});
  if (!pid.ok()) {
    absl::Duration wait = backoff_.AfterCrash(absl::ZeroDuration());
    Log("keeper: cannot start %s: %s; trying again in %s", options_.binary,
        pid.status().message(), absl::FormatDuration(wait));
    start_at_ = Clock::now() + absl::ToChronoNanoseconds(wait);
    return;
  }
  daemon_pid_ = *pid;
  daemon_started_ = Clock::now();
  socket_ = std::move(mine);
  Log("keeper: daemon pid %d started (%zu entries kept)", daemon_pid_,
      kept_.size());
}

void Keeper::ServeDaemon() {
  absl::Status served = ServeKeeperRequest(socket_.get(), absl::ZeroDuration(),
                                           kReplyTimeout, &kept_);
  if (served.ok() || absl::IsDeadlineExceeded(served)) return;
  // Unavailable: the daemon closed its end, most often by exiting.
  if (!absl::IsUnavailable(served)) {
    Log("keeper: closing the connection to daemon pid %d: %s", daemon_pid_,
        served.message());
  }
  socket_.reset();
}

std::optional<int> Keeper::TakeSignals(int signal_fd) {
  struct signalfd_siginfo info;
  while (read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
    std::optional<int> status;
    switch (static_cast<int>(info.ssi_signo)) {
      case SIGCHLD:
        status = ReapChildren();
        break;
      case SIGTERM:
      case SIGINT:
        status = Stop(info.ssi_signo);
        break;
      case SIGUSR2:
      case SIGHUP:
        HandOver(info.ssi_signo);
        break;
    }
    if (status.has_value()) return status;
  }
  return std::nullopt;
}

std::optional<int> Keeper::ReapChildren() {
  // One SIGCHLD may stand for several exits.
  int wait_status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &wait_status, WNOHANG)) > 0) {
    if (pid != daemon_pid_) continue;
    if (std::optional<int> status = DaemonExited(wait_status)) return status;
  }
  return std::nullopt;
}

std::optional<int> Keeper::DaemonExited(int wait_status) {
  const pid_t pid = daemon_pid_;
  const absl::Duration ran_for =
      absl::FromChrono(Clock::now() - daemon_started_);
  daemon_pid_ = 0;
  DrainRequests();
  const bool served = kept_.TakeReady();
  if (stopping_) {
    Log("keeper: daemon pid %d %s; stopping", pid, DescribeExit(wait_status));
    return 0;
  }
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) {
    Log("keeper: daemon pid %d stopped; stopping too", pid);
    return 0;
  }
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == kHandedOver) {
    Log("keeper: handed over; starting %s", options_.binary);
    start_at_ = Clock::now();
    return std::nullopt;
  }
  absl::Duration wait = backoff_.AfterCrash(ran_for, served);
  Log("keeper: daemon pid %d %s; restarting in %s", pid,
      DescribeExit(wait_status), absl::FormatDuration(wait));
  start_at_ = Clock::now() + absl::ToChronoNanoseconds(wait);
  return std::nullopt;
}

std::optional<int> Keeper::Stop(int signal) {
  stopping_ = true;
  if (daemon_pid_ == 0) {
    Log("keeper: %s; no daemon running, stopping", strsignal(signal));
    return 0;
  }
  Log("keeper: %s; stopping daemon pid %d", strsignal(signal), daemon_pid_);
  kill(daemon_pid_, SIGTERM);
  return std::nullopt;
}

void Keeper::HandOver(int signal) {
  if (daemon_pid_ == 0) {
    Log("keeper: %s; no daemon running to hand over", strsignal(signal));
    return;
  }
  Log("keeper: %s; asking daemon pid %d to hand over", strsignal(signal),
      daemon_pid_);
  kill(daemon_pid_, SIGUSR2);
}

void Keeper::DrainRequests() {
  if (!socket_.valid()) return;
  // What the daemon asked before it died stands, whether or not it saw the
  // answer: the next daemon finds what it put.
  for (;;) {
    absl::StatusOr<KeeperMessage> request =
        ReceiveMessage(socket_.get(), absl::ZeroDuration());
    if (request.ok()) {
      kept_.Handle(request->header, std::move(request->fds));
    } else if (!absl::IsInvalidArgument(request.status())) {
      break;
    }
  }
  socket_.reset();
}

int RunKeeper(const std::vector<std::string>& daemon_argv) {
  // A daemon started by a keeper that is told --supervise again (from a
  // flag file, say) would start keepers without end.
  if (std::getenv(kKeeperFdVariable) != nullptr) {
    Log("keeper: %s is set: already running under a keeper", kKeeperFdVariable);
    return 2;
  }
  absl::StatusOr<std::string> binary = OwnBinaryPath();
  if (!binary.ok()) {
    Log("keeper: %s", binary.status().message());
    return 1;
  }
  OpenStandardDescriptors();
  Keeper::Options options;
  options.binary = *binary;
  options.argv = daemon_argv;
  if (options.argv.empty()) options.argv.push_back(*binary);
  Keeper keeper(std::move(options));
  return keeper.Run();
}

std::vector<std::string> WithoutSuperviseFlag(int argc, char** argv) {
  std::vector<std::string> kept;
  bool flags_ended = false;
  for (int i = 0; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (i > 0 && !flags_ended) {
      if (arg == "--") {
        flags_ended = true;
      } else if (IsSuperviseFlag(arg)) {
        continue;
      }
    }
    kept.emplace_back(arg);
  }
  return kept;
}

}  // namespace fusehost
