// MountState and ReplayJournal: what the tables went through, taken back
// from the keeper and replayed into fresh tables, makes tables that answer
// as the old ones did; so does the journal after a compaction, which the
// keeper then holds instead of the old one.

#include "daemon/survival/mount_state.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "daemon/fuse/node_table.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/survival/descriptor_store.h"
#include "daemon/survival/keeper_client.h"
#include "daemon/survival/kept_descriptors.h"
#include "daemon/survival/mount_journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "proto/mount_state.pb.h"
#include "tests/daemon/survival/descriptor_probes.h"
#include "tests/daemon/survival/served_keeper.h"

namespace fusehost {
namespace {

using ::testing::ElementsAreArray;

constexpr uint64_t kMountId = 7;
constexpr uint64_t kRoot = NodeTable::kRootId;

state::SavedMount SavedMountOf(uint64_t id) {
  state::SavedMount m;
  m.set_mount_id(id);
  m.set_backend("memory");
  m.set_mountpoint("/mnt/m");
  m.set_owner_uid(1000);
  m.set_generation(3);
  return m;
}

v1::Caller CallerOf(uint32_t uid) {
  v1::Caller c;
  c.set_uid(uid);
  c.set_gid(uid + 1);
  c.add_groups(5);
  c.set_pid(77);
  return c;
}

// Tokens as the pipeline gets them: a successful open, create or opendir
// under `instance` whose reply carried the backend's handle `fh`.
uint64_t Open(HandleMap& map, uint64_t fh, uint64_t instance,
              uint32_t flags = O_RDWR) {
  v1::Op op;
  *op.mutable_caller() = CallerOf(1001);
  op.mutable_open()->set_path("/f");
  op.mutable_open()->set_flags(flags);
  v1::OpResult r;
  r.mutable_open()->set_fh(fh);
  map.IssueTokens(op, instance, &r);
  return r.open().fh();
}

uint64_t Create(HandleMap& map, uint64_t fh, uint64_t instance) {
  v1::Op op;
  *op.mutable_caller() = CallerOf(1002);
  op.mutable_create()->set_path("/new");
  op.mutable_create()->set_flags(O_WRONLY | O_CREAT | O_EXCL);
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(fh);
  map.IssueTokens(op, instance, &r);
  return r.create().open().fh();
}

uint64_t Opendir(HandleMap& map, uint64_t fh, uint64_t instance) {
  v1::Op op;
  *op.mutable_caller() = CallerOf(1003);
  op.mutable_opendir()->set_path("/d");
  op.mutable_opendir()->set_flags(O_RDONLY | O_DIRECTORY);
  v1::OpResult r;
  r.mutable_opendir()->set_fh(fh);
  map.IssueTokens(op, instance, &r);
  return r.opendir().fh();
}

HandleRoute::Kind Release(HandleMap& map, uint64_t token) {
  v1::Op op;
  op.mutable_release()->set_fh(token);
  return map.Resolve(&op).kind;
}

// How a read of `token` would go: "send fh=.. instance=..", "reopen ..",
// or "answer errno".
std::string RouteOf(HandleMap& map, uint64_t token) {
  v1::Op op;
  op.mutable_read()->set_fh(token);
  HandleRoute route = map.Resolve(&op);
  switch (route.kind) {
    case HandleRoute::kSend:
      return absl::StrCat("send fh=", op.read().fh(),
                          " instance=", op.handle_instance());
    case HandleRoute::kReopen:
      return absl::StrCat("reopen ", route.stale);
    case HandleRoute::kAnswer:
      return absl::StrCat("answer ", route.posix_errno);
  }
  return "?";
}

// Everything a table holds, one line per node or token, in id order.
std::vector<std::string> NodesOf(const NodeTable& table) {
  std::vector<std::pair<uint64_t, std::string>> lines;
  table.Snapshot([&](const std::vector<NodeTable::Saved>& nodes, uint64_t) {
    for (const NodeTable::Saved& n : nodes) {
      lines.emplace_back(
          n.id, absl::StrCat(n.id, " in ", n.parent, " as '", n.name, "' x",
                             n.lookups, " fh [",
                             absl::StrJoin(n.open_handles, ","), "]"));
    }
  });
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> out;
  for (auto& [id, line] : lines) out.push_back(std::move(line));
  return out;
}

std::vector<std::string> TokensOf(const HandleMap& map) {
  std::vector<std::pair<uint64_t, std::string>> lines;
  map.Snapshot(
      [&](uint64_t instance, uint64_t,
          const std::vector<HandleMap::Saved>& tokens) {
        lines.emplace_back(0, absl::StrCat("instance ", instance));
        for (const HandleMap::Saved& t : tokens) {
          lines.emplace_back(
              t.token,
              absl::StrCat(t.token, ": fh=", t.fh, " instance=", t.instance,
                           " dir=", t.dir, " flags=", t.flags, " caller={",
                           t.caller.ShortDebugString(),
                           "} unopened=", t.unopened, " lost=", t.lost_errno));
        }
      });
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> out;
  for (auto& [token, line] : lines) out.push_back(std::move(line));
  return out;
}

// True while some write end of the pipe is open (nothing to read, no end of
// file), without waiting.
bool WriteEndOpen(const Pipe& p) {
  struct pollfd pfd = {p.read_end.get(), POLLIN, 0};
  return poll(&pfd, 1, 0) == 0;
}

ino_t InodeOf(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// The records of the journal in `fd`.
std::vector<state::Record> JournalIn(int fd) {
  absl::StatusOr<std::vector<state::Record>> records = MountJournal::Read(fd);
  EXPECT_TRUE(records.ok()) << records.status();
  return records.ok() ? *std::move(records) : std::vector<state::Record>{};
}

// The journal says it is the test's mount, whose kernel sent `kernel_init`.
void ExpectHead(const std::vector<state::Record>& records,
                const std::string& kernel_init) {
  absl::StatusOr<JournalHead> head = HeadOf(records);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->mount.ShortDebugString(),
            SavedMountOf(kMountId).ShortDebugString());
  EXPECT_EQ(head->kernel_init, kernel_init);
}

// A daemon's tables.
struct Tables {
  NodeTable nodes;
  HandleMap handles;
};

// What ChangeEverything made, by what each is for.
struct Made {
  uint64_t before_start = 0;  // a node the snapshot at Start holds
  uint64_t a = 0, b = 0, c = 0, twice = 0, unlinked = 0, x = 0, y = 0, z = 0,
           w = 0, erased = 0;
  uint64_t t_before_start = 0, t_open = 0, t_create = 0, t_dir = 0,
           t_unopened = 0, t_reopened = 0, t_lost = 0, t_current = 0,
           t_released = 0;

  std::vector<uint64_t> nodes() const {
    return {before_start, a, b, c, twice, unlinked, x, y, z, w, erased};
  }
  std::vector<uint64_t> tokens() const {
    return {t_before_start, t_open, t_create,  t_dir,     t_unopened,
            t_reopened,     t_lost, t_current, t_released};
  }
};

// A store in memory that remembers only which keys it holds, and whose
// Put can be held back once it is armed (Gate), to see what happens while
// a compaction is publishing.
class GatedStore : public DescriptorStore {
 public:
  absl::Status Put(const std::string& key,
                   const std::vector<int>& fds) override {
    absl::MutexLock lock(&mu_);
    if (gated_) {
      waiting_ = true;
      mu_.Await(absl::Condition(&open_));
      waiting_ = false;
    }
    if (fds.size() != 2) return absl::InvalidArgumentError("not a mount");
    held_.insert(key);
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& key) override {
    absl::MutexLock lock(&mu_);
    ++removes_;
    held_.erase(key);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<Entry>> TakeAll() override {
    return std::vector<Entry>{};
  }

  // Later Puts wait for Open().
  void Gate() {
    absl::MutexLock lock(&mu_);
    gated_ = true;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // True once a Put waits at the gate (within `timeout`).
  bool PutWaiting(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&waiting_), timeout);
  }
  bool Holds(const std::string& key) {
    absl::MutexLock lock(&mu_);
    return held_.contains(key);
  }
  int removes() {
    absl::MutexLock lock(&mu_);
    return removes_;
  }

 private:
  absl::Mutex mu_;
  bool gated_ ABSL_GUARDED_BY(mu_) = false;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  int removes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

MountState::Options OptionsFor(DescriptorStore* store, const Pipe& fuse,
                               Tables* tables) {
  MountState::Options o;
  o.store = store;
  o.fuse_fd = fuse.write_end.get();
  o.nodes = &tables->nodes;
  o.handles = &tables->handles;
  o.mount = SavedMountOf(kMountId);
  return o;
}

// A keeper's request handling on a thread, a MountState recording `live_`
// into it, and the journal the keeper holds, read back.
class MountStateTest : public ::testing::Test {
 protected:
  ~MountStateTest() override { state_.reset(); }

  void Start(const std::string& kernel_init = "") {
    MountState::Options o = OptionsFor(keeper_.client(), fuse_, &live_);
    o.kernel_init = kernel_init;
    absl::StatusOr<std::unique_ptr<MountState>> s = MountState::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    state_ = *std::move(s);
  }

  // What the keeper holds for the mount ([fuse, journal]), as the next
  // daemon takes it.
  std::vector<UniqueFd> Kept() {
    absl::StatusOr<std::vector<KeeperClient::Entry>> all = keeper_.client()->TakeAll();
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return {};
    for (KeeperClient::Entry& e : *all) {
      if (e.key == KeptMountKey(kMountId)) return std::move(e.fds);
    }
    return {};
  }

  std::vector<state::Record> KeptJournal() {
    std::vector<UniqueFd> fds = Kept();
    EXPECT_EQ(fds.size(), 2u);
    return fds.size() == 2 ? JournalIn(fds[1].get())
                           : std::vector<state::Record>{};
  }

  // Fresh tables with the journal the keeper holds replayed into them.
  std::unique_ptr<Tables> Replayed() {
    auto fresh = std::make_unique<Tables>();
    ReplayJournal(KeptJournal(), &fresh->nodes, &fresh->handles);
    return fresh;
  }

  // Lookups of a long name fill the journal past its threshold; forgetting
  // them leaves nothing of them in the tables. Waits (10 s at most) for the
  // compaction; returns the node the lookups made.
  uint64_t FillUntilCompacted() {
    const std::string big(size_t{1} << 20, 'x');
    uint64_t big_id = 0;
    int looked_up = 0;
    while (looked_up * big.size() < MountJournal::kCompactAt + big.size()) {
      big_id = live_.nodes.AddLookup(kRoot, big);
      ++looked_up;
    }
    live_.nodes.Forget(big_id, looked_up);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (state_->compactions() == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    return big_id;
  }

  // One of every change the tables report, some before Start.
  Made ChangeEverything() {
    Made m;
    NodeTable& n = live_.nodes;
    HandleMap& h = live_.handles;
    m.before_start = n.AddLookup(kRoot, "before");
    h.SawInstance(6);
    m.t_before_start = Open(h, 2, 6, O_RDONLY);
    Start();

    m.a = n.AddLookup(kRoot, "a");
    m.b = n.AddLookup(m.a, "b");
    for (int i = 0; i < 3; ++i) m.c = n.AddLookup(m.b, "c");
    n.Forget(m.c, 1);  // two left
    n.AddLookup(kRoot, "a");
    m.twice = n.AddLookup(m.b, "twice");
    n.AddLookup(m.b, "twice");
    m.unlinked = n.AddLookup(kRoot, "unlinked");
    n.AddOpenHandle(m.unlinked, 13);
    n.Remove(kRoot, "unlinked");
    n.Rename(m.a, "b", kRoot, "b2", /*exchange=*/false);
    m.x = n.AddLookup(kRoot, "x");
    m.y = n.AddLookup(kRoot, "y");
    n.Rename(kRoot, "x", kRoot, "y", /*exchange=*/true);
    m.z = n.AddLookup(kRoot, "z");
    m.w = n.AddLookup(kRoot, "w");
    n.Rename(kRoot, "z", kRoot, "w", /*exchange=*/false);  // w loses its name
    n.AddOpenHandle(m.c, 11);
    n.AddOpenHandle(m.c, 12);
    n.RemoveOpenHandle(m.c, 11);

    h.SawInstance(7);
    m.t_open = Open(h, 3, 7);
    m.t_create = Create(h, 4, 7);
    m.t_dir = Opendir(h, 5, 7);
    m.t_unopened = h.IssueUnopened(O_RDONLY | O_DIRECTORY, CallerOf(1004));
    m.t_reopened = Open(h, 6, 7);
    m.t_lost = Open(h, 8, 7, O_WRONLY);
    h.SawInstance(8);  // the backend restarted
    h.Reopened(m.t_reopened, 9, 8);
    h.Lose(m.t_lost, ESTALE);
    m.t_current = Open(h, 10, 8);
    // The highest of each is gone before the journal is read.
    m.t_released = Open(h, 11, 8);
    EXPECT_EQ(Release(h, m.t_released), HandleRoute::kSend);
    m.erased = n.AddLookup(kRoot, "erased");
    n.Forget(m.erased, 1);
    return m;
  }

  // The fresh tables answer every question as the live ones do.
  void ExpectSameAnswers(const Made& m, Tables& fresh) {
    EXPECT_THAT(NodesOf(fresh.nodes), ElementsAreArray(NodesOf(live_.nodes)));
    EXPECT_THAT(TokensOf(fresh.handles),
                ElementsAreArray(TokensOf(live_.handles)));
    for (uint64_t id : m.nodes()) {
      EXPECT_EQ(fresh.nodes.PathOf(id), live_.nodes.PathOf(id)) << id;
      EXPECT_EQ(fresh.nodes.AnyOpenHandle(id), live_.nodes.AnyOpenHandle(id))
          << id;
    }
    for (const char* path : {"/", "/a", "/b2", "/b2/c", "/b2/twice", "/x", "/y",
                             "/w", "/z", "/unlinked", "/erased", "/before"}) {
      EXPECT_EQ(fresh.nodes.Find(path), live_.nodes.Find(path)) << path;
    }
    for (uint64_t token : m.tokens()) {
      EXPECT_EQ(RouteOf(fresh.handles, token), RouteOf(live_.handles, token))
          << token;
    }
  }

  Pipe fuse_ = MakePipe();  // stands for /dev/fuse
  Tables live_;
  ServedKeeper keeper_;
  std::unique_ptr<MountState> state_;
};

TEST_F(MountStateTest, TheKeeperHoldsTheConnectionAndTheJournal) {
  Start();
  std::vector<UniqueFd> fds = Kept();
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(InodeOf(fds[0].get()), InodeOf(fuse_.write_end.get()));
  ExpectHead(JournalIn(fds[1].get()), "");
}

TEST_F(MountStateTest, TheReplayedTablesAnswerAsTheLiveOnes) {
  const Made m = ChangeEverything();
  std::unique_ptr<Tables> fresh = Replayed();
  ExpectSameAnswers(m, *fresh);

  // The answers themselves, not only their agreement.
  NodeTable& n = fresh->nodes;
  EXPECT_EQ(n.PathOf(m.before_start), "/before");
  EXPECT_EQ(n.PathOf(m.a), "/a");
  EXPECT_EQ(n.PathOf(m.b), "/b2");
  EXPECT_EQ(n.PathOf(m.c), "/b2/c");
  EXPECT_EQ(n.Find("/b2/twice"), m.twice);
  EXPECT_EQ(n.PathOf(m.x), "/y");
  EXPECT_EQ(n.PathOf(m.y), "/x");
  EXPECT_EQ(n.PathOf(m.z), "/w");
  EXPECT_EQ(n.PathOf(m.w), "");
  EXPECT_EQ(n.PathOf(m.unlinked), "");
  EXPECT_EQ(n.PathOf(m.erased), std::nullopt);
  EXPECT_EQ(n.AnyOpenHandle(m.c), 12u);
  EXPECT_EQ(n.AnyOpenHandle(m.unlinked), 13u);
  EXPECT_EQ(n.AnyOpenHandle(m.a), std::nullopt);

  HandleMap& h = fresh->handles;
  EXPECT_EQ(RouteOf(h, m.t_current), "send fh=10 instance=8");
  EXPECT_EQ(RouteOf(h, m.t_reopened), "send fh=9 instance=8");
  EXPECT_EQ(RouteOf(h, m.t_open), absl::StrCat("reopen ", m.t_open));
  EXPECT_EQ(RouteOf(h, m.t_dir), absl::StrCat("reopen ", m.t_dir));
  EXPECT_EQ(RouteOf(h, m.t_unopened), absl::StrCat("reopen ", m.t_unopened));
  EXPECT_EQ(RouteOf(h, m.t_before_start),
            absl::StrCat("reopen ", m.t_before_start));
  EXPECT_EQ(RouteOf(h, m.t_lost), absl::StrCat("answer ", ESTALE));
  EXPECT_EQ(RouteOf(h, m.t_released), absl::StrCat("answer ", EBADF));
  v1::Op reopen;
  ASSERT_TRUE(h.ReopenOp(m.t_create, "/new", 0, &reopen));
  EXPECT_EQ(reopen.caller().uid(), 1002u);
  EXPECT_EQ(reopen.open().flags(), static_cast<uint32_t>(O_WRONLY));
}

TEST_F(MountStateTest, ReplayedLookupCountsEraseANodeExactlyWhenTheyShould) {
  const Made m = ChangeEverything();
  std::unique_ptr<Tables> fresh = Replayed();
  NodeTable& n = fresh->nodes;
  // Looked up twice.
  n.Forget(m.twice, 1);
  EXPECT_EQ(n.PathOf(m.twice), "/b2/twice");
  n.Forget(m.twice, 1);
  EXPECT_EQ(n.PathOf(m.twice), std::nullopt);
  EXPECT_EQ(n.Find("/b2/twice"), 0u);
  // Looked up three times, forgotten once.
  n.Forget(m.c, 1);
  EXPECT_EQ(n.PathOf(m.c), "/b2/c");
  n.Forget(m.c, 1);
  EXPECT_EQ(n.PathOf(m.c), std::nullopt);
  // A name gone, its node alive until forgotten.
  n.Forget(m.unlinked, 1);
  EXPECT_EQ(n.PathOf(m.unlinked), std::nullopt);
}

TEST_F(MountStateTest, IdsAndTokensAfterAReplayAreNew) {
  const Made m = ChangeEverything();
  std::unique_ptr<Tables> fresh = Replayed();
  const std::vector<uint64_t> ids = m.nodes();
  const std::vector<uint64_t> tokens = m.tokens();
  EXPECT_GT(fresh->nodes.AddLookup(kRoot, "new"),
            *std::max_element(ids.begin(), ids.end()));
  EXPECT_GT(Open(fresh->handles, 20, 8),
            *std::max_element(tokens.begin(), tokens.end()));
}

TEST_F(MountStateTest, HeadOfTellsTheMountAndTheKernelsInit) {
  Start();
  state_->KernelInitRead("first INIT");
  live_.nodes.AddLookup(kRoot, "a");
  std::vector<state::Record> records = KeptJournal();
  absl::StatusOr<JournalHead> head = HeadOf(records);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->mount.mount_id(), kMountId);
  EXPECT_EQ(head->mount.generation(), 3u);
  EXPECT_EQ(head->kernel_init, "first INIT");

  EXPECT_TRUE(absl::IsDataLoss(HeadOf({}).status()));
  EXPECT_TRUE(absl::IsDataLoss(
      HeadOf(std::vector<state::Record>(records.begin() + 1, records.end()))
          .status()));
}

TEST_F(MountStateTest, AResumedMountsJournalStartsWithItsInit) {
  Start("saved INIT");
  ExpectHead(KeptJournal(), "saved INIT");
}

TEST_F(MountStateTest, ACompactedJournalReplaysToTheSameTables) {
  const Made m = ChangeEverything();
  state_->KernelInitRead("INIT");
  std::vector<UniqueFd> before = Kept();
  ASSERT_EQ(before.size(), 2u);
  const ino_t first_journal = InodeOf(before[1].get());

  const uint64_t big_id = FillUntilCompacted();
  ASSERT_GE(state_->compactions(), 1u);
  EXPECT_LT(state_->journal_bytes(), MountJournal::kCompactAt / 4);
  // Changes after the compaction go to the new journal.
  const uint64_t after = live_.nodes.AddLookup(kRoot, "after");

  std::vector<UniqueFd> now = Kept();
  ASSERT_EQ(now.size(), 2u);
  EXPECT_NE(InodeOf(now[1].get()), first_journal);
  EXPECT_EQ(InodeOf(now[0].get()), InodeOf(fuse_.write_end.get()));
  const std::vector<state::Record> records = JournalIn(now[1].get());
  ExpectHead(records, "INIT");

  Tables fresh;
  ReplayJournal(records, &fresh.nodes, &fresh.handles);
  ExpectSameAnswers(m, fresh);
  EXPECT_EQ(fresh.nodes.PathOf(after), "/after");
  EXPECT_EQ(fresh.nodes.PathOf(big_id), std::nullopt);
  EXPECT_GT(fresh.nodes.AddLookup(kRoot, "new"), after);
  EXPECT_GT(Open(fresh.handles, 20, 8), m.t_current);
}

TEST_F(MountStateTest, BackingIdsSurviveReplaysAndCompactions) {
  // Ids a previous daemon left registered come in with the options; the
  // kernel holds them for the opens it has, so the next daemon must know
  // them too, compaction or not.
  MountState::Options o = OptionsFor(keeper_.client(), fuse_, &live_);
  o.backing = {{4, 40}, {5, 50}};
  absl::StatusOr<std::unique_ptr<MountState>> s = MountState::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  state_ = *std::move(s);
  state_->BackingChanged(4, 0);
  state_->BackingChanged(6, 60);
  BackingIds replayed;
  Tables fresh;
  ReplayJournal(KeptJournal(), &fresh.nodes, &fresh.handles, &replayed);
  EXPECT_EQ(replayed, (BackingIds{{5, 50}, {6, 60}}));

  FillUntilCompacted();
  ASSERT_GE(state_->compactions(), 1u);
  state_->BackingChanged(5, 0);
  replayed.clear();
  Tables after;
  ReplayJournal(KeptJournal(), &after.nodes, &after.handles, &replayed);
  EXPECT_EQ(replayed, (BackingIds{{6, 60}}));
}

TEST_F(MountStateTest, AfterTheStateIsGoneTheKeeperStillHoldsTheJournal) {
  Start();
  const uint64_t a = live_.nodes.AddLookup(kRoot, "a");
  state_.reset();  // the daemon stops recording, as if it died
  live_.nodes.AddLookup(kRoot, "unrecorded");
  std::unique_ptr<Tables> fresh = Replayed();
  EXPECT_EQ(fresh->nodes.PathOf(a), "/a");
  EXPECT_EQ(fresh->nodes.Find("/unrecorded"), 0u);
}

TEST_F(MountStateTest, ReleaseMakesTheKeeperCloseWhatItHeld) {
  Start();
  ASSERT_EQ(Kept().size(), 2u);
  fuse_.write_end.reset();  // the keeper's copy is the last one
  EXPECT_TRUE(WriteEndOpen(fuse_));
  state_->Release();
  EXPECT_TRUE(WriteEndsClosed(fuse_));
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = keeper_.client()->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST(MountStateStartTest, WithoutAKeeperTheMountDoesNotStartRecording) {
  SocketPair s = MakeSocketPair();
  KeeperClient gone(std::move(s.a));
  s.b.reset();
  Pipe fuse = MakePipe();
  Tables tables;
  EXPECT_TRUE(absl::IsUnavailable(
      MountState::Start(OptionsFor(&gone, fuse, &tables)).status()));
  // Nothing is left listening to the tables.
  EXPECT_NE(tables.nodes.AddLookup(kRoot, "a"), 0u);
  tables.handles.SawInstance(4);
  EXPECT_NE(Open(tables.handles, 1, 4), 0u);
}

TEST_F(MountStateTest, AJournalThatStopsRecordingIsReleased) {
  Start();
  ASSERT_EQ(Kept().size(), 2u);
  // A record larger than any the journal takes: what the keeper would hold
  // from now on misses a node the kernel knows.
  live_.nodes.AddLookup(kRoot, std::string((size_t{16} << 20) + 1, 'x'));
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = keeper_.client()->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

// A state recording into a GatedStore.
class MountStateReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<MountState>> s =
        MountState::Start(OptionsFor(&store_, fuse_, &tables_));
    ASSERT_TRUE(s.ok()) << s.status();
    state_ = *std::move(s);
    ASSERT_TRUE(store_.Holds(KeptMountKey(kMountId)));
  }

  GatedStore store_;
  Pipe fuse_ = MakePipe();
  Tables tables_;
  std::unique_ptr<MountState> state_;
};

TEST_F(MountStateReleaseTest, ReleasesOnce) {
  state_->Release();
  state_->Release();
  EXPECT_EQ(store_.removes(), 1);
  EXPECT_FALSE(store_.Holds(KeptMountKey(kMountId)));
}

// A compaction that is publishing when the mount is released (Mount::Shutdown
// calls Release(), then destroys the state, whose destructor waits for the
// compaction) must not put the mount back into the store: Release waits for
// the Put under way and then removes what it put, and no Put follows.
TEST_F(MountStateReleaseTest, CompactionDuringReleaseKeepsItOut) {
  store_.Gate();
  // Two records take the journal past its threshold; nothing touches the
  // tables after them, which the compaction holds while it publishes.
  tables_.nodes.AddLookup(kRoot, std::string(size_t{15} << 20, 'a'));
  tables_.nodes.AddLookup(kRoot, std::string(size_t{2} << 20, 'b'));
  const bool publishing = store_.PutWaiting(absl::Seconds(10));
  EXPECT_TRUE(publishing);
  // The mount ends while the compaction publishes.
  std::thread releasing([this] { state_->Release(); });
  store_.Open();
  releasing.join();
  EXPECT_FALSE(store_.Holds(KeptMountKey(kMountId)));
  state_.reset();
  EXPECT_FALSE(store_.Holds(KeptMountKey(kMountId)))
      << "the store keeps a released mount";
}

// A journal's record of one lookup of `name` in the root, as node `id`.
state::Record NodeInRoot(uint64_t id, const std::string& name) {
  state::Record r;
  r.mutable_node()->set_id(id);
  r.mutable_node()->set_parent(kRoot);
  r.mutable_node()->set_name(name);
  r.mutable_node()->set_lookups(1);
  return r;
}

TEST(ReplayJournalTest, AForgetOfMoreThanIsHeldErasesTheNode) {
  state::Record forget;
  forget.mutable_forget()->set_id(5);
  forget.mutable_forget()->set_count(3);
  state::Record unknown = forget;
  unknown.mutable_forget()->set_id(99);
  Tables fresh;
  ReplayJournal({NodeInRoot(5, "a"), forget, unknown}, &fresh.nodes,
                &fresh.handles);
  EXPECT_EQ(fresh.nodes.PathOf(5), std::nullopt);
  EXPECT_EQ(fresh.nodes.Find("/a"), 0u);
  EXPECT_GT(fresh.nodes.AddLookup(kRoot, "b"), 5u);
}

TEST(ReplayJournalTest, ANameRecordedTwiceKeepsTheLaterNode) {
  Tables fresh;
  ReplayJournal({NodeInRoot(5, "a"), NodeInRoot(6, "a")}, &fresh.nodes,
                &fresh.handles);
  EXPECT_EQ(fresh.nodes.Find("/a"), 6u);
  EXPECT_EQ(fresh.nodes.PathOf(5), "");
}

TEST(KeptMountKeyTest, NamesTheMountItWasMadeFor) {
  EXPECT_EQ(MountIdOfKey(KeptMountKey(42)), 42u);
  EXPECT_EQ(MountIdOfKey(KeptMountKey(uint64_t{1} << 63)), uint64_t{1} << 63);
  EXPECT_NE(KeptMountKey(1), KeptMountKey(2));
  for (const char* other : {"", "m-42", "mount-", "mount-x", "42"}) {
    EXPECT_EQ(MountIdOfKey(other), 0u) << other;
  }
}

}  // namespace
}  // namespace fusehost
