#include "daemon/survival/child_launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "daemon/survival/keeper_protocol.h"

namespace fusehost {
namespace {

// systemd's variables that name the process they are meant for.
constexpr const char* kPidVariables[] = {"LISTEN_PID", "WATCHDOG_PID"};
// Room for a pid's digits and the terminating NUL.
constexpr size_t kPidRoom = 24;

// Everything the child needs, built before fork: between fork and execve
// only async-signal-safe calls may run.
struct Prepared {
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  // Where the child writes its own pid (inside env_storage strings).
  std::vector<char*> pid_slots;
  std::string exec_failed;  // the line the child writes if execve fails
};

// Writes `value` in decimal and a NUL at `out`; async-signal-safe.
void WriteDecimal(char* out, long value) {
  char digits[kPidRoom];
  size_t n = 0;
  unsigned long v = value < 0 ? 0 : static_cast<unsigned long>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof(digits) - 1);
  for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
}

Prepared Prepare(const ChildLaunch& launch) {
  Prepared p;
  p.argv_storage = launch.argv;
  const std::string keeper_prefix = absl::StrCat(kKeeperFdVariable, "=");
  const std::string own_pid = absl::StrCat(getpid());
  std::vector<size_t> pid_entries;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry = *e;
    if (absl::StartsWith(entry, keeper_prefix)) continue;
    bool names_keeper = false;
    for (const char* name : kPidVariables) {
      names_keeper |= entry == absl::StrCat(name, "=", own_pid);
    }
    if (names_keeper) {
      pid_entries.push_back(p.env_storage.size());
      p.env_storage.push_back(std::string(entry.substr(0, entry.find('=') + 1)) +
                              std::string(kPidRoom, '\0'));
    } else {
      p.env_storage.emplace_back(entry);
    }
  }
  p.env_storage.push_back(absl::StrCat(keeper_prefix, launch.keeper_fd));
  // Pointers into the strings are taken once no string moves any more.
  for (std::string& a : p.argv_storage) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (std::string& e : p.env_storage) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  for (size_t i : pid_entries) {
    std::string& e = p.env_storage[i];
    p.pid_slots.push_back(e.data() + e.find('=') + 1);
  }
  p.exec_failed =
      absl::StrCat("fuse-hostd: keeper: cannot execute ", launch.binary,
                   " (errno ");
  return p;
}

// Runs in the child, between fork and execve: async-signal-safe calls only.
[[noreturn]] void BecomeChild(const ChildLaunch& launch, const Prepared& p) {
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  // SIGKILL, SIGSTOP and the C library's own signals (32, 33) refuse: the
  // library sets those up itself where it uses them.
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int flags = fcntl(launch.keeper_fd, F_GETFD);
  if (flags >= 0) fcntl(launch.keeper_fd, F_SETFD, flags & ~FD_CLOEXEC);
  for (char* slot : p.pid_slots) WriteDecimal(slot, getpid());
  execve(launch.binary.c_str(), p.argv.data(), p.envp.data());
  char err[kPidRoom + 2];
  WriteDecimal(err, errno);
  size_t n = std::strlen(err);
  err[n++] = ')';
  err[n++] = '\n';
  // If stderr is gone, the exit status says it all the same.
  if (write(STDERR_FILENO, p.exec_failed.data(), p.exec_failed.size()) < 0) {
    _exit(127);
  }
  if (write(STDERR_FILENO, err, n) < 0) _exit(127);
  _exit(127);
}

}  // namespace

absl::StatusOr<std::string> OwnBinaryPath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf));
  if (n < 0) return absl::ErrnoToStatus(errno, "readlink /proc/self/exe");
  if (static_cast<size_t>(n) == sizeof(buf)) {
    return absl::OutOfRangeError("readlink /proc/self/exe: path too long");
  }
  std::string path(buf, n);
  constexpr absl::string_view kDeleted = " (deleted)";
  if (absl::EndsWith(path, kDeleted)) path.resize(path.size() - kDeleted.size());
  return path;
}

absl::StatusOr<pid_t> LaunchChild(const ChildLaunch& launch) {
  if (launch.binary.empty() || launch.argv.empty() || launch.keeper_fd < 0) {
    return absl::InvalidArgumentError("a child needs a binary, argv[0] and a "
                                      "keeper socket");
  }
  const Prepared prepared = Prepare(launch);
  pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) BecomeChild(launch, prepared);
  return pid;
}

}  // namespace fusehost
