// Drives TreeWatcher with changes made directly on a directory under
// TEST_TMPDIR and checks what it reports, and how soon.

#include "examples/loopback/tree_watcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/examples/loopback/temp_dir.h"

namespace fusehost {
namespace examples {
namespace {

using Kind = TreeChange::Kind;

// The design goal: a change made on the host shows within 100 ms.
constexpr absl::Duration kPromptly = absl::Milliseconds(100);

TreeChange Changed(const std::string& path) { return {Kind::kChanged, path}; }
TreeChange Removed(const std::string& path) { return {Kind::kRemoved, path}; }
TreeChange Subtree(const std::string& path) { return {Kind::kSubtree, path}; }

std::string Describe(const TreeChange& change) {
  const char* kind = change.kind == Kind::kChanged   ? "CHANGED"
                     : change.kind == Kind::kRemoved ? "REMOVED"
                                                     : "SUBTREE";
  return std::string(kind) + ":" + change.path;
}

std::string Describe(const std::vector<TreeChange>& changes) {
  std::string out;
  for (const TreeChange& change : changes) out += Describe(change) + " ";
  return out;
}

// Keeps every change the watcher reports, with when it arrived.
class Recorder {
 public:
  TreeWatcher::Sink Sink() {
    return [this](const std::vector<TreeChange>& batch) {
      absl::MutexLock lock(&mu_);
      ++batches_;
      for (const TreeChange& change : batch) {
        changes_.push_back(change);
        times_.push_back(absl::Now());
      }
    };
  }

  // Forgets what was reported so far.
  void Clear() {
    absl::MutexLock lock(&mu_);
    changes_.clear();
    times_.clear();
    batches_ = 0;
  }

  // Waits (up to a few seconds) until every change of `wanted` was
  // reported and returns how long after `since` the last of them came, or
  // absl::InfiniteDuration() if one never came.
  absl::Duration WaitFor(const std::vector<TreeChange>& wanted,
                         absl::Time since) {
    absl::MutexLock lock(&mu_);
    absl::Time last = since;
    auto all_there = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      last = since;
      for (const TreeChange& change : wanted) {
        size_t i = 0;
        while (i < changes_.size() && !(changes_[i] == change)) ++i;
        if (i == changes_.size()) return false;
        last = std::max(last, times_[i]);
      }
      return true;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&all_there),
                              absl::Seconds(5))) {
      return absl::InfiniteDuration();
    }
    return last - since;
  }

  // Waits `duration`, then returns everything reported.
  std::vector<TreeChange> After(absl::Duration duration) {
    absl::SleepFor(duration);
    absl::MutexLock lock(&mu_);
    return changes_;
  }

  std::vector<TreeChange> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }

  int batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  absl::Mutex mu_;
  std::vector<TreeChange> changes_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> times_ ABSL_GUARDED_BY(mu_);
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
};

void WriteFile(const std::string& path, const std::string& contents) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(write(fd, contents.data(), contents.size()),
            static_cast<ssize_t>(contents.size()));
  ASSERT_EQ(close(fd), 0);
}

class TreeWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << std::strerror(errno);
    root_ = dir_.path();
  }

  void Start(size_t max_watches = 0) {
    TreeWatcher::Options options;
    options.root = root_;
    options.sink = recorder_.Sink();
    options.max_watches = max_watches;
    auto watcher = TreeWatcher::Start(options);
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }

  std::string Host(const std::string& path) const { return root_ + path; }

  // Expects `wanted` to be reported within kPromptly of `since`.
  void ExpectPromptly(const std::vector<TreeChange>& wanted,
                      absl::Time since) {
    const absl::Duration latency = recorder_.WaitFor(wanted, since);
    EXPECT_LE(latency, kPromptly)
        << "wanted " << Describe(wanted) << "\ngot " << Describe(recorder_.changes());
  }

  TempDir dir_{"watched"};
  std::string root_;
  Recorder recorder_;
  std::unique_ptr<TreeWatcher> watcher_;
};

TEST_F(TreeWatcherTest, CreatedFileChangesItAndItsDirectory) {
  Start();
  WriteFile(Host("/new"), "data");
  ExpectPromptly({Changed("/new"), Changed("/")}, absl::Now());
}

TEST_F(TreeWatcherTest, WriteChmodAndUnlinkOfExistingFile) {
  WriteFile(Host("/file"), "old");
  Start();

  WriteFile(Host("/file"), "new contents");
  ExpectPromptly({Changed("/file")}, absl::Now());

  recorder_.Clear();
  ASSERT_EQ(chmod(Host("/file").c_str(), 0600), 0);
  ExpectPromptly({Changed("/file")}, absl::Now());

  recorder_.Clear();
  ASSERT_EQ(unlink(Host("/file").c_str()), 0);
  ExpectPromptly({Removed("/file"), Changed("/")}, absl::Now());
}

TEST_F(TreeWatcherTest, RenamedFile) {
  ASSERT_EQ(mkdir(Host("/sub").c_str(), 0755), 0);
  WriteFile(Host("/a"), "x");
  Start();
  ASSERT_EQ(rename(Host("/a").c_str(), Host("/sub/b").c_str()), 0);
  ExpectPromptly(
      {Removed("/a"), Changed("/"), Changed("/sub/b"), Changed("/sub")},
      absl::Now());
}

TEST_F(TreeWatcherTest, RenamedDirectoryIsASubtreeChangeAndStaysWatched) {
  ASSERT_EQ(mkdir(Host("/d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Host("/d/inner").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Host("/other").c_str(), 0755), 0);
  WriteFile(Host("/d/inner/f"), "x");
  Start();

  ASSERT_EQ(rename(Host("/d").c_str(), Host("/other/e").c_str()), 0);
  ExpectPromptly({Subtree("/d"), Removed("/d"), Changed("/"),
                  Subtree("/other/e"), Changed("/other/e"), Changed("/other")},
                 absl::Now());

  // Events below the moved directory name its new place.
  recorder_.Clear();
  WriteFile(Host("/other/e/inner/f"), "y");
  ExpectPromptly({Changed("/other/e/inner/f")}, absl::Now());
  for (const TreeChange& change : recorder_.After(absl::Milliseconds(20))) {
    EXPECT_NE(change.path.rfind("/d/", 0), 0u) << Describe(change);
  }
}

TEST_F(TreeWatcherTest, NewDirectoryIsWatchedAtOnce) {
  Start();
  // The names may be made before the watcher has added the directories'
  // watches: then they are reported by name when the watches are added,
  // as their events would have reported them, never as a whole subtree.
  ASSERT_EQ(mkdir(Host("/n").c_str(), 0755), 0);
  WriteFile(Host("/n/f"), "x");
  ASSERT_EQ(mkdir(Host("/n/s").c_str(), 0755), 0);
  WriteFile(Host("/n/s/g"), "x");
  const absl::Time made = absl::Now();
  ExpectPromptly({Changed("/n"), Changed("/"), Changed("/n/f"), Changed("/n/s"),
                  Changed("/n/s/g")},
                 made);
  const std::vector<TreeChange> seen = recorder_.After(kPromptly);
  for (const TreeChange& change : seen) {
    EXPECT_NE(change.kind, Kind::kSubtree) << Describe(seen);
  }

  recorder_.Clear();
  WriteFile(Host("/n/g"), "x");
  ExpectPromptly({Changed("/n/g"), Changed("/n")}, absl::Now());
}

TEST_F(TreeWatcherTest, NestedNewDirectoriesAreAllWatched) {
  Start();
  ASSERT_EQ(mkdir(Host("/a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Host("/a/b").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Host("/a/b/c").c_str(), 0755), 0);
  recorder_.WaitFor({Changed("/a")}, absl::Now());
  recorder_.After(absl::Milliseconds(20));
  recorder_.Clear();
  WriteFile(Host("/a/b/c/f"), "x");
  ExpectPromptly({Changed("/a/b/c/f"), Changed("/a/b/c")}, absl::Now());
}

TEST_F(TreeWatcherTest, DirectoryMovedOutIsNoLongerReported) {
  TempDir outside_dir("outside");
  const std::string outside = outside_dir.path();
  ASSERT_EQ(mkdir(Host("/d").c_str(), 0755), 0);
  Start();
  ASSERT_EQ(rename(Host("/d").c_str(), (outside + "/d").c_str()), 0);
  ExpectPromptly({Removed("/d"), Subtree("/d"), Changed("/")}, absl::Now());
  recorder_.After(absl::Milliseconds(20));

  recorder_.Clear();
  WriteFile(outside + "/d/f", "x");
  WriteFile(Host("/g"), "x");  // something to wait for
  recorder_.WaitFor({Changed("/g")}, absl::Now());
  for (const TreeChange& change : recorder_.After(absl::Milliseconds(20))) {
    EXPECT_NE(change.path.rfind("/d", 0), 0u) << Describe(change);
  }
}

TEST_F(TreeWatcherTest, DirectoryMovedInIsWatched) {
  TempDir outside_dir("outside");
  const std::string outside = outside_dir.path();
  ASSERT_EQ(mkdir((outside + "/in").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((outside + "/in/deep").c_str(), 0755), 0);
  Start();
  ASSERT_EQ(rename((outside + "/in").c_str(), Host("/in").c_str()), 0);
  ExpectPromptly({Subtree("/in"), Changed("/in"), Changed("/")}, absl::Now());
  recorder_.Clear();
  WriteFile(Host("/in/deep/f"), "x");
  ExpectPromptly({Changed("/in/deep/f")}, absl::Now());
}

TEST_F(TreeWatcherTest, BurstsAreCoalesced) {
  WriteFile(Host("/busy"), "");
  Start();
  int fd = open(Host("/busy").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const absl::Time start = absl::Now();
  constexpr int kWrites = 2000;
  for (int i = 0; i < kWrites; ++i) ASSERT_EQ(write(fd, "x", 1), 1);
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(close(fd), 0);
  recorder_.WaitFor({Changed("/busy")}, absl::Now());
  const std::vector<TreeChange> seen = recorder_.After(absl::Milliseconds(50));
  // At most one notice per 5 ms window (and then some slack), not one per
  // write.
  EXPECT_LE(static_cast<int>(seen.size()),
            absl::ToInt64Milliseconds(took) / 5 + 4)
      << "writing took " << took;
  EXPECT_LT(static_cast<int>(seen.size()), kWrites / 10);
}

TEST_F(TreeWatcherTest, LargeTreeIsWatched) {
  // On tmpfs where there is one: creating 20,000 files on a busy disk takes
  // seconds, and that is not what this test measures.
  std::unique_ptr<TempDir> shm;
  if (access("/dev/shm", W_OK) == 0) {
    shm = std::make_unique<TempDir>("watched-large", "/dev/shm");
    if (!shm->path().empty()) root_ = shm->path();
  }
  // Stops watching before the tree goes.
  auto stop = absl::MakeCleanup([this] { watcher_.reset(); });
  // 100 directories of 200 files: 20,000 files, 101 watches.
  for (int d = 0; d < 100; ++d) {
    const std::string dir = Host("/d" + std::to_string(d));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < 200; ++f) {
      int fd = open((dir + "/f" + std::to_string(f)).c_str(),
                    O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      close(fd);
    }
  }
  const absl::Time before = absl::Now();
  Start();
  const absl::Duration start_took = absl::Now() - before;
  std::printf("watching 100 directories / 20000 files took %s to start\n",
              absl::FormatDuration(start_took).c_str());
  EXPECT_LT(start_took, absl::Seconds(2));
  WriteFile(Host("/d99/f199"), "x");
  ASSERT_EQ(unlink(Host("/d0/f0").c_str()), 0);
  ExpectPromptly({Changed("/d99/f199"), Removed("/d0/f0"), Changed("/d0")},
                 absl::Now());
}

TEST_F(TreeWatcherTest, UnwatchedDirectoriesAreReportedAsSubtrees) {
  ASSERT_EQ(mkdir(Host("/a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Host("/b").c_str(), 0755), 0);
  Start(/*max_watches=*/2);  // the root and one of them
  recorder_.After(absl::Milliseconds(10));
  WriteFile(Host("/a/f"), "x");
  WriteFile(Host("/b/f"), "x");
  const absl::Time made = absl::Now();
  // The watched one reports the file; the other one is reported whole,
  // periodically (100 ms by default).
  const std::vector<TreeChange> first = recorder_.After(
      absl::Milliseconds(100) + kPromptly);
  bool a_covered = false;
  bool b_covered = false;
  for (const TreeChange& change : first) {
    a_covered |= change == Changed("/a/f") || change == Subtree("/a");
    b_covered |= change == Changed("/b/f") || change == Subtree("/b");
  }
  EXPECT_TRUE(a_covered && b_covered)
      << "after " << absl::Now() - made << ": " << Describe(first);
}

TEST_F(TreeWatcherTest, QueueOverflowReportsEverythingAndRewatches) {
  ASSERT_EQ(mkdir(Host("/sub").c_str(), 0755), 0);
  WriteFile(Host("/sub/x"), "");
  WriteFile(Host("/sub/y"), "");
  // A sink that blocks on its first batch, so that events pile up in the
  // kernel until its queue (fs.inotify.max_queued_events) overflows.
  absl::Notification entered;
  absl::Notification release;
  TreeWatcher::Options options;
  options.root = root_;
  TreeWatcher::Sink record = recorder_.Sink();
  options.sink = [&](const std::vector<TreeChange>& batch) {
    if (!entered.HasBeenNotified()) {
      entered.Notify();
      release.WaitForNotification();
    }
    record(batch);
  };
  auto watcher = TreeWatcher::Start(options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  // Whatever fails below, the watcher thread must not stay blocked, or
  // destroying the watcher (after this cleanup) would wait for it forever.
  auto unblock = absl::MakeCleanup([&release] {
    if (!release.HasBeenNotified()) release.Notify();
  });
  WriteFile(Host("/first"), "");
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(5)));
  // Alternating files: the kernel merges only identical consecutive events.
  for (int i = 0; i < 40000; ++i) {
    ASSERT_EQ(chmod(Host(i % 2 == 0 ? "/sub/x" : "/sub/y").c_str(),
                    i % 4 < 2 ? 0644 : 0600),
              0);
  }
  // A directory made while events are lost must be watched after all.
  ASSERT_EQ(mkdir(Host("/late").c_str(), 0755), 0);
  release.Notify();
  ASSERT_LE(recorder_.WaitFor({Subtree("/")}, absl::Now()), absl::Seconds(5));
  recorder_.After(absl::Milliseconds(50));
  recorder_.Clear();
  WriteFile(Host("/late/f"), "x");
  WriteFile(Host("/sub/x"), "x");
  ExpectPromptly({Changed("/late/f"), Changed("/sub/x")}, absl::Now());
}

TEST(TreeWatcherStartTest, FailsOnMissingRoot) {
  TreeWatcher::Options options;
  options.root = "/nonexistent/watched/root";
  options.sink = [](const std::vector<TreeChange>&) {};
  auto watcher = TreeWatcher::Start(options);
  ASSERT_FALSE(watcher.ok());
  EXPECT_NE(watcher.status().message().find("/nonexistent/watched/root"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
