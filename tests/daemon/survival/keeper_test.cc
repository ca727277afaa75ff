#include "daemon/survival/keeper.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "daemon/survival/child_launcher.h"
#include "daemon/survival/keeper_client.h"
#include "daemon/survival/keeper_protocol.h"
#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"

namespace fusehost {
namespace {

// The keeper's daemon in these tests is this test binary again, running
// only KeeperChildRole.Act (below), which does what KEEPER_TEST_MODE says
// and leaves its findings in KEEPER_TEST_DIR.
constexpr char kModeVariable[] = "KEEPER_TEST_MODE";
constexpr char kDirVariable[] = "KEEPER_TEST_DIR";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Written whole or not at all: the test polls for it.
void WriteFile(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  rename(tmp.c_str(), path.c_str());
}

// The daemon's parts. Its exit status is what the keeper acts on.
//
// "cycle": the first daemon puts a memfd holding "1" and hands over (75);
// the second finds it, writes "2" into it and is killed; the third finds
// "2", removes the entry and stops (0).
[[noreturn]] void CycleRole(KeeperClient& keeper, const std::string& dir) {
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = keeper.TakeAll();
  if (!all.ok()) _exit(3);
  if (all->empty()) {
    UniqueFd state = MemfdWith("1");
    if (!keeper.Put("mount-7", {state.get()}).ok()) _exit(4);
    _exit(Keeper::kHandedOver);
  }
  if (all->size() != 1 || (*all)[0].key != "mount-7") _exit(5);
  const int state = (*all)[0].fds[0].get();
  if (ContentsOf(state) == "1") {
    if (pwrite(state, "2", 1, 0) != 1) _exit(6);
    raise(SIGKILL);
  }
  std::string found = ContentsOf(state);
  if (!keeper.Remove("mount-7").ok()) _exit(7);
  all = keeper.TakeAll();
  if (!all.ok() || !all->empty()) _exit(8);
  WriteFile(dir + "/result", "adopted " + found + "; removed");
  _exit(0);
}

// "wait": says its pid, then hands over on SIGUSR2 and stops on SIGTERM.
[[noreturn]] void WaitRole(const std::string& dir) {
  // Not left behind by a test that fails and kills its keeper.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR2);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  WriteFile(dir + "/pid", std::to_string(getpid()));
  int sig = 0;
  sigwait(&signals, &sig);
  _exit(sig == SIGUSR2 ? Keeper::kHandedOver : 0);
}

TEST(KeeperChildRole, Act) {
  const char* mode = std::getenv(kModeVariable);
  const char* dir = std::getenv(kDirVariable);
  if (mode == nullptr || dir == nullptr ||
      std::getenv(kKeeperFdVariable) == nullptr) {
    GTEST_SKIP() << "runs only as a keeper's daemon";
  }
  std::unique_ptr<KeeperClient> keeper = KeeperClient::FromEnvironment();
  if (keeper == nullptr) _exit(2);
  if (std::string(mode) == "cycle") CycleRole(*keeper, dir);
  WaitRole(dir);
}

// A keeper in a process of its own (it takes signals for the whole
// process), supervising this binary in `mode`.
class KeeperTest : public ::testing::Test {
 protected:
  KeeperTest() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") +
                       "/keeper-test.XXXXXX";
    dir_ = mkdtemp(tmpl.data());
  }
  ~KeeperTest() override {
    if (keeper_pid_ > 0) {
      kill(keeper_pid_, SIGKILL);
      waitpid(keeper_pid_, nullptr, 0);
    }
  }

  void StartKeeper(const std::string& mode) {
    absl::StatusOr<std::string> self = OwnBinaryPath();
    ASSERT_TRUE(self.ok()) << self.status();
    keeper_pid_ = fork();
    ASSERT_GE(keeper_pid_, 0);
    if (keeper_pid_ > 0) return;
    // The daemons are gtest runs of their own: they must not write this
    // run's results or take it for one that ended early.
    for (const char* name :
         {"XML_OUTPUT_FILE", "GTEST_OUTPUT", "TEST_PREMATURE_EXIT_FILE",
          "TEST_SHARD_STATUS_FILE", "GTEST_SHARD_STATUS_FILE",
          "TEST_TOTAL_SHARDS", "TEST_SHARD_INDEX", "GTEST_TOTAL_SHARDS",
          "GTEST_SHARD_INDEX"}) {
      unsetenv(name);
    }
    setenv(kModeVariable, mode.c_str(), 1);
    setenv(kDirVariable, dir_.c_str(), 1);
    Keeper keeper({*self, {*self, "--gtest_filter=KeeperChildRole.Act"}});
    _exit(keeper.Run());
  }

  // The keeper's exit status; -1 if it did not exit by itself in time.
  int WaitForKeeper() {
    for (int i = 0; i < 3000; ++i) {
      int status = 0;
      pid_t done = waitpid(keeper_pid_, &status, WNOHANG);
      if (done == keeper_pid_) {
        keeper_pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  // The pid the waiting daemon wrote once it differs from `not_this`.
  pid_t WaitForDaemon(pid_t not_this) {
    for (int i = 0; i < 3000; ++i) {
      int pid = 0;
      if (absl::SimpleAtoi(ReadFile(dir_ + "/pid"), &pid) && pid != not_this) {
        return pid;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }

  std::string dir_;
  pid_t keeper_pid_ = 0;
};

TEST_F(KeeperTest, EntriesOutliveHandOversAndCrashes) {
  StartKeeper("cycle");
  EXPECT_EQ(WaitForKeeper(), 0);
  EXPECT_EQ(ReadFile(dir_ + "/result"), "adopted 2; removed");
}

TEST_F(KeeperTest, SignalsReachTheDaemon) {
  StartKeeper("wait");
  pid_t first = WaitForDaemon(0);
  ASSERT_GT(first, 0);
  // SIGHUP becomes SIGUSR2: the daemon hands over, the next one starts.
  kill(keeper_pid_, SIGHUP);
  pid_t second = WaitForDaemon(first);
  ASSERT_GT(second, 0);
  kill(keeper_pid_, SIGTERM);
  EXPECT_EQ(WaitForKeeper(), 0);
  EXPECT_NE(kill(second, 0), 0);
}

TEST(WithoutSuperviseFlagTest, DropsEverySpellingBeforeDoubleDash) {
  std::vector<std::string> args = {
      "fuse-hostd", "--config=/etc/x.conf", "--supervise", "-supervise",
      "--supervise=true", "--supervised_by=x", "--", "--supervise"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  EXPECT_EQ(WithoutSuperviseFlag(argv.size(), argv.data()),
            (std::vector<std::string>{"fuse-hostd", "--config=/etc/x.conf",
                                      "--supervised_by=x", "--",
                                      "--supervise"}));
}

TEST(RunKeeperTest, RefusesToRunUnderAKeeper) {
  setenv(kKeeperFdVariable, "3", 1);
  EXPECT_EQ(RunKeeper({"fuse-hostd"}), 2);
  unsetenv(kKeeperFdVariable);
}

}  // namespace
}  // namespace fusehost
