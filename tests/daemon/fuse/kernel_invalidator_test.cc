// KernelInvalidator: notifications queued once each, the queue bounded.

#include "daemon/fuse/kernel_invalidator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

class Recorder : public KernelNotify {
 public:
  void InvalidateNode(uint64_t node, bool data) override {
    absl::MutexLock lock(&mu);
    nodes.emplace_back(node, data);
  }
  void InvalidateEntry(uint64_t parent, const std::string& name) override {
    absl::MutexLock lock(&mu);
    entries.emplace_back(parent, name);
  }
  // Waits until `n` notifications arrived in all.
  bool AwaitTotal(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return nodes.size() + entries.size() >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  absl::Mutex mu;
  std::vector<std::pair<uint64_t, bool>> nodes ABSL_GUARDED_BY(mu);
  std::vector<std::pair<uint64_t, std::string>> entries ABSL_GUARDED_BY(mu);
};

TEST(KernelInvalidator, QueuesEachNotificationOnce) {
  NodeTable nodes;
  Recorder notify;
  KernelInvalidator inval(&nodes, &notify);
  inval.NodeChanged(5, /*data=*/false);
  inval.NodeChanged(5, /*data=*/false);
  inval.NodeChanged(5, /*data=*/true);  // widens the queued one
  inval.EntryChanged(1, "a");
  inval.EntryChanged(1, "a");
  EXPECT_EQ(inval.queued(), 2u);
  inval.Start();
  ASSERT_TRUE(notify.AwaitTotal(2));
  inval.Stop();
  absl::MutexLock lock(&notify.mu);
  ASSERT_EQ(notify.nodes.size(), 1u);
  EXPECT_EQ(notify.nodes[0], std::make_pair(uint64_t{5}, true));
  ASSERT_EQ(notify.entries.size(), 1u);
}

TEST(KernelInvalidator, AFloodBecomesOneSweep) {
  NodeTable nodes;
  uint64_t a = nodes.AddLookup(NodeTable::kRootId, "a");
  uint64_t b = nodes.AddLookup(a, "b");
  Recorder notify;
  KernelInvalidator inval(&nodes, &notify);
  for (size_t i = 0; i <= KernelInvalidator::kMaxQueued; ++i) {
    inval.EntryChanged(NodeTable::kRootId, absl::StrCat("n", i));
  }
  EXPECT_EQ(inval.queued(), 1u);  // the sweep, nothing else
  inval.EntryChanged(NodeTable::kRootId, "more");  // covered by the sweep
  EXPECT_EQ(inval.queued(), 1u);
  inval.Start();
  // The root, every node below it, and each one's name.
  ASSERT_TRUE(notify.AwaitTotal(5));
  inval.Stop();
  absl::MutexLock lock(&notify.mu);
  EXPECT_EQ(notify.nodes.size(), 3u);
  EXPECT_EQ(notify.entries.size(), 2u);
  (void)b;
}

// Each name of a hard-linked file is a node of its own in the kernel, with
// its own copy of the file's attributes: a backend's notice about one name
// reaches them all.
TEST(KernelInvalidator, HardLinksChangedReachesTheFilesOtherNames) {
  NodeTable nodes;
  uint64_t a = nodes.AddLookup(NodeTable::kRootId, "a");
  uint64_t d = nodes.AddLookup(NodeTable::kRootId, "d");
  uint64_t c = nodes.AddLookup(d, "c");
  uint64_t single = nodes.AddLookup(NodeTable::kRootId, "single");
  nodes.NoteInode(a, 7, /*multi_link=*/true);
  nodes.NoteInode(c, 7, /*multi_link=*/true);
  nodes.NoteInode(single, 8, /*multi_link=*/false);
  Recorder notify;
  KernelInvalidator inval(&nodes, &notify);
  EXPECT_EQ(inval.HardLinkedFileAt("/d/c"), 7u);
  EXPECT_EQ(inval.HardLinkedFileAt("/single"), 0u);
  EXPECT_EQ(inval.HardLinkedFileAt("/unknown"), 0u);
  inval.HardLinksChanged("/a");
  inval.HardLinksChanged("/single");
  inval.HardLinksChanged("/unknown");
  EXPECT_EQ(inval.queued(), 1u);  // c
  inval.PathChanged("/a");  // a and its name only: not a's other names
  EXPECT_EQ(inval.queued(), 3u);
  inval.Start();
  ASSERT_TRUE(notify.AwaitTotal(3));
  inval.Stop();
  absl::MutexLock lock(&notify.mu);
  using Nodes = std::vector<std::pair<uint64_t, bool>>;
  EXPECT_EQ(notify.nodes, (Nodes{{c, true}, {a, true}}));
}

}  // namespace
}  // namespace fusehost
