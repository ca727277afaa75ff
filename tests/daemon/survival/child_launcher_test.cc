#include "daemon/survival/child_launcher.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/survival/keeper_protocol.h"
#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"

namespace fusehost {
namespace {

// The child's exit status, or -1 if it did not exit normally.
int ExitStatusOf(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(OwnBinaryPathTest, NamesThisBinary) {
  absl::StatusOr<std::string> path = OwnBinaryPath();
  ASSERT_TRUE(path.ok()) << path.status();
  ASSERT_FALSE(path->empty());
  EXPECT_EQ((*path)[0], '/');
  struct stat by_path, running;
  ASSERT_EQ(stat(path->c_str(), &by_path), 0);
  ASSERT_EQ(stat("/proc/self/exe", &running), 0);
  EXPECT_EQ(by_path.st_ino, running.st_ino);
}

// The shell checks what the child was given; each failed check is its own
// exit status. Signals 32 and 33 belong to the C library, which sets them
// up itself where it uses them: they may stay as the test runner left them.
// The masks are read first, by the shell's own builtins: dash blocks every
// signal while it forks, so a command it started could see them blocked.
constexpr char kChecks[] = R"sh(
while read -r key value; do
  case "$key" in
    SigBlk:) blocked=$value ;;
    SigIgn:) ignored=$value ;;
  esac
done < "/proc/$$/status"
case "$blocked" in *[!0]*) exit 15 ;; esac
case "$ignored" in 0000000000000000|0000000180000000) ;; *) exit 16 ;; esac
[ "$FUSE_HOSTD_KEEPER_FD" = "$1" ] || exit 10
[ -e "/proc/$$/fd/$1" ] || exit 11
[ ! -e "/proc/$$/fd/$2" ] || exit 12
[ "$LISTEN_PID" = "$$" ] || exit 13
[ "$WATCHDOG_PID" = 1 ] || exit 14
[ "$(env | grep -c '^FUSE_HOSTD_KEEPER_FD=')" = 1 ] || exit 17
exit 0
)sh";

TEST(LaunchChildTest, ChildGetsItsSocketTheDefaultsAndSystemdsVariables) {
  SocketPair s = MakeSocketPair();  // close-on-exec, as the keeper makes it
  Pipe other = MakePipe();          // any other keeper descriptor
  setenv(kKeeperFdVariable, "999", 1);
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("WATCHDOG_PID", "1", 1);
  sigset_t usr1, previous_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &previous_mask);
  struct sigaction ignore = {}, previous_hup;
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGHUP, &ignore, &previous_hup);

  absl::StatusOr<pid_t> pid = LaunchChild(
      {"/bin/sh",
       {"sh", "-c", kChecks, "sh", std::to_string(s.b.get()),
        std::to_string(other.write_end.get())},
       s.b.get()});

  sigaction(SIGHUP, &previous_hup, nullptr);
  sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
  unsetenv(kKeeperFdVariable);
  unsetenv("LISTEN_PID");
  unsetenv("WATCHDOG_PID");
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(ExitStatusOf(*pid), 0);
  // The launcher leaves the keeper's own copy as it was.
  EXPECT_TRUE(IsCloseOnExec(s.b.get()));
}

TEST(LaunchChildTest, BinaryThatCannotRunExits127) {
  SocketPair s = MakeSocketPair();
  absl::StatusOr<pid_t> pid =
      LaunchChild({"/nonexistent/fuse-hostd", {"fuse-hostd"}, s.b.get()});
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(ExitStatusOf(*pid), 127);
}

TEST(LaunchChildTest, RefusesAnIncompleteLaunch) {
  EXPECT_FALSE(LaunchChild({"/bin/true", {}, 3}).ok());
  EXPECT_FALSE(LaunchChild({"", {"true"}, 3}).ok());
  EXPECT_FALSE(LaunchChild({"/bin/true", {"true"}, -1}).ok());
}

}  // namespace
}  // namespace fusehost
