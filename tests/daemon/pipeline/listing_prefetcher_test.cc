// ListingPrefetcher on its own: which subdirectories it opens, reads and
// releases, in which order and as whom; its bounds; waiting for a prefetch;
// Stop; and jobs whose transport answers inside Send.

#include "daemon/pipeline/listing_prefetcher.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/pipeline/listing.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/caching_transport_fixture.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {
namespace {

using Paths = std::vector<std::string>;

v1::Caller Walker() {
  v1::Caller caller;
  caller.set_uid(1234);
  caller.set_gid(567);
  caller.set_pid(89);
  caller.add_groups(10);
  return caller;
}

// A listing with the directories `dirs` and the files `files`.
Listing ListingOf(const Paths& dirs, const Paths& files = {}) {
  Listing listing;
  for (const std::string& name : dirs) listing[name] = {S_IFDIR, 0};
  for (const std::string& name : files) listing[name] = {S_IFREG, 0};
  return listing;
}

// `n` directory names that sort in the order they are made.
Paths ManyDirs(size_t n) {
  Paths names;
  for (size_t i = 0; i < n; ++i) {
    names.push_back(absl::StrCat("d", absl::Dec(i, absl::kZeroPad6)));
  }
  return names;
}

v1::OpResult OpendirReply(uint64_t fh) {
  v1::OpResult r;
  r.mutable_opendir()->set_fh(fh);
  return r;
}

class ListingPrefetcherTest : public ::testing::Test {
 protected:
  ListingPrefetcherTest() { Make(); }

  // A new prefetcher (and cache) with these bounds.
  void Make(size_t per_listing = 64, size_t max_in_flight = 16,
            size_t max_entries = 1000) {
    prefetcher_.reset();
    MetadataCache::Options cache_options;
    cache_options.max_entries = max_entries;
    cache_ = std::make_unique<MetadataCache>(cache_options);
    ListingPrefetcher::Options options;
    options.next = &backend_;
    options.send_readdir = [this](v1::Op op, OpTransport::Done done) {
      readdirs_.Send(std::move(op), std::move(done));
    };
    options.cache = cache_.get();
    options.per_listing = per_listing;
    options.max_in_flight = max_in_flight;
    options.lists_by_path = &lists_by_path_;
    prefetcher_ = std::make_unique<ListingPrefetcher>(std::move(options));
  }

  // Paths of the opendirs the backend got, in order.
  Paths Opened() { return PathsOf(v1::Op::kOpendir); }
  Paths Released() { return PathsOf(v1::Op::kReleasedir); }
  Paths PathsOf(v1::Op::OpCase kind) {
    Paths paths;
    for (size_t i = 0; i < backend_.sent(); ++i) {
      v1::Op op = backend_.op(i);
      if (op.op_case() != kind) continue;
      paths.push_back(kind == v1::Op::kOpendir ? op.opendir().path()
                                               : op.releasedir().path());
    }
    return paths;
  }
  // Index at the backend of the opendir of `path`.
  size_t OpendirOf(const std::string& path) {
    for (size_t i = 0; i < backend_.sent(); ++i) {
      v1::Op op = backend_.op(i);
      if (op.has_opendir() && op.opendir().path() == path) return i;
    }
    ADD_FAILURE() << "no opendir of " << path;
    return backend_.sent();
  }
  // Answers the opendir of `path` with a handle and its readdir with an
  // empty listing.
  void Fetch(const std::string& path, uint64_t fh = 5) {
    size_t reads = readdirs_.sent();
    backend_.Answer(OpendirOf(path), OpendirReply(fh));
    ASSERT_EQ(readdirs_.sent(), reads + 1) << "no readdir of " << path;
    readdirs_.Answer(reads, ReaddirReply({}));
  }
  // Fails the opendir of `path`.
  void Fail(const std::string& path) {
    backend_.Answer(OpendirOf(path), Errno(EACCES));
  }
  // Adds attributes of files until the cache holds `entries` paths.
  void FillCache(size_t entries) {
    for (uint64_t ino = 100; cache_->size() < entries && ino < 200; ++ino) {
      cache_->PutAttr(absl::StrCat("/f", ino), AttrOf(ino), absl::Seconds(60),
                      cache_->epoch());
    }
    ASSERT_EQ(cache_->size(), entries);
  }
  // Waits for `path`; the flag is set when the wait is over.
  std::shared_ptr<bool> Await(const std::string& path) {
    auto over = std::make_shared<bool>(false);
    bool waiting = prefetcher_->AwaitInFlight(path, [over]() {
      EXPECT_FALSE(*over) << "waiter ran twice";
      *over = true;
    });
    EXPECT_TRUE(waiting) << path << " is not being fetched";
    return over;
  }

  std::atomic<bool> lists_by_path_{false};
  FakeBackend backend_;   // opendir and releasedir
  FakeBackend readdirs_;  // readdir
  std::unique_ptr<MetadataCache> cache_;
  std::unique_ptr<ListingPrefetcher> prefetcher_;
};

// --- what is fetched, and how ------------------------------------------------

TEST_F(ListingPrefetcherTest, ABackendThatListsByPathIsOnlyAskedForTheListing) {
  lists_by_path_ = true;
  prefetcher_->Listed("/d", ListingOf({"a", "b"}, {"f"}), Walker());
  EXPECT_EQ(backend_.sent(), 0u) << "opened at the backend";
  ASSERT_EQ(readdirs_.sent(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const v1::Op op = readdirs_.op(i);
    EXPECT_EQ(op.readdir().path(), i == 0 ? "/d/a" : "/d/b");
    EXPECT_EQ(op.readdir().fh(), 0u);
    EXPECT_EQ(op.caller().DebugString(), Walker().DebugString());
  }
  std::shared_ptr<bool> over = Await("/d/a");
  readdirs_.Answer(0, ReaddirReply({}));
  EXPECT_TRUE(*over);
  readdirs_.Answer(1, Errno(EACCES));
  EXPECT_EQ(prefetcher_->fetched(), 1u);
  EXPECT_EQ(backend_.sent(), 0u) << "released at the backend";
}

TEST_F(ListingPrefetcherTest, OpensOnlyTheSubdirectoriesAsTheCaller) {
  Listing listing = ListingOf({"a", "b"}, {"f", "g"});
  listing["l"] = {S_IFLNK, 0};
  listing["unknown"] = {0, 0};
  prefetcher_->Listed("/d", listing, Walker());

  ASSERT_EQ(Opened(), (Paths{"/d/a", "/d/b"}));
  for (size_t i = 0; i < backend_.sent(); ++i) {
    v1::Op op = backend_.op(i);
    EXPECT_EQ(op.opendir().flags(), O_RDONLY | O_DIRECTORY);
    EXPECT_EQ(op.caller().DebugString(), Walker().DebugString());
  }
  EXPECT_EQ(readdirs_.sent(), 0u);
}

// Past `per_listing`, a listing's subdirectories wait: each one the walker
// opens lets the next one go, in the walker's order, passing over those
// cached meanwhile.
TEST_F(ListingPrefetcherTest, TheWindowMovesOnAsTheWalkerOpensSubdirectories) {
  Make(/*per_listing=*/2);
  prefetcher_->Listed("/d", Paths{"e", "d", "c", "b", "a"}, Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/e", "/d/d"}));
  prefetcher_->Visited("/d/e");
  EXPECT_EQ(Opened(), (Paths{"/d/e", "/d/d", "/d/c"}));
  cache_->PutListing("/d/b", Listing(), absl::Seconds(60), cache_->epoch());
  prefetcher_->Visited("/d/d");
  EXPECT_EQ(Opened(), (Paths{"/d/e", "/d/d", "/d/c", "/d/a"}));
  prefetcher_->Visited("/d/c");  // nothing left
  prefetcher_->Visited("/other/x");
  prefetcher_->Visited("/");
  EXPECT_EQ(Opened().size(), 4u);
  for (size_t i = 0; i < backend_.sent(); ++i) {
    EXPECT_EQ(backend_.op(i).caller().DebugString(), Walker().DebugString());
  }
}

// A listing handed out again replaces what was left of the first.
TEST_F(ListingPrefetcherTest, AListingListedAgainStartsItsWindowAfresh) {
  Make(/*per_listing=*/1);
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));
  prefetcher_->Listed("/d", Paths{"x", "y"}, Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/x"}));
  prefetcher_->Visited("/d/a");
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/x", "/d/y"}));
}

TEST_F(ListingPrefetcherTest, FetchesSubdirectoriesInTheOrderGiven) {
  prefetcher_->Listed("/d", Paths{"c", "a", "b"}, Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/c", "/d/a", "/d/b"}));
}

TEST_F(ListingPrefetcherTest, ChildrenOfTheRootHaveOneSlash) {
  prefetcher_->Listed("/", ListingOf({"top"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/top"}));
}

TEST_F(ListingPrefetcherTest, ReadsWithTheOpenedHandleThenReleasesIt) {
  prefetcher_->Listed("/d", ListingOf({"a"}), Walker());
  ASSERT_EQ(backend_.sent(), 1u);
  backend_.Answer(0, OpendirReply(77));

  ASSERT_EQ(readdirs_.sent(), 1u);
  v1::Op read = readdirs_.op(0);
  ASSERT_TRUE(read.has_readdir());
  EXPECT_EQ(read.readdir().path(), "/d/a");
  EXPECT_EQ(read.readdir().fh(), 77u);
  EXPECT_EQ(read.readdir().offset(), 0u);
  EXPECT_EQ(read.caller().DebugString(), Walker().DebugString());
  EXPECT_EQ(backend_.sent(), 1u) << "released before the listing came";
  EXPECT_EQ(prefetcher_->fetched(), 0u);

  readdirs_.Answer(0, ReaddirReply({{"x"}}));
  ASSERT_EQ(backend_.sent(), 2u);
  v1::Op release = backend_.op(1);
  ASSERT_TRUE(release.has_releasedir());
  EXPECT_EQ(release.releasedir().path(), "/d/a");
  EXPECT_EQ(release.releasedir().fh(), 77u);
  EXPECT_EQ(prefetcher_->fetched(), 1u);
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/a", [] {}));
}

TEST_F(ListingPrefetcherTest, AFailedReaddirIsReleasedButNotCounted) {
  prefetcher_->Listed("/d", ListingOf({"a"}), Walker());
  std::shared_ptr<bool> over = Await("/d/a");
  backend_.Answer(0, OpendirReply(8));
  readdirs_.Answer(0, Errno(EIO));
  EXPECT_EQ(Released(), (Paths{"/d/a"}));
  EXPECT_TRUE(*over);
  EXPECT_EQ(prefetcher_->fetched(), 0u);
}

TEST_F(ListingPrefetcherTest, AFailedOpendirEndsTheJob) {
  prefetcher_->Listed("/d", ListingOf({"a"}), Walker());
  std::shared_ptr<bool> over = Await("/d/a");
  Fail("/d/a");
  EXPECT_TRUE(*over);
  EXPECT_EQ(readdirs_.sent(), 0u);
  EXPECT_EQ(Released(), Paths{});
  EXPECT_EQ(prefetcher_->fetched(), 0u);
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/a", [] {}));
}

TEST_F(ListingPrefetcherTest, FetchedCountsEveryListingRead) {
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c"}), Walker());
  Fetch("/d/a", 1);
  Fail("/d/b");
  Fetch("/d/c", 3);
  EXPECT_EQ(prefetcher_->fetched(), 2u);
  EXPECT_EQ(Released(), (Paths{"/d/a", "/d/c"}));
}

// --- what is not fetched -----------------------------------------------------

TEST_F(ListingPrefetcherTest, DirectoriesWhoseListingIsCachedAreSkipped) {
  cache_->PutListing("/d/a", ListingOf({}, {"x"}), absl::Seconds(60),
                     cache_->epoch());
  prefetcher_->Listed("/d", ListingOf({"a", "b"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/b"}));
}

TEST_F(ListingPrefetcherTest, ADirectoryListedTwiceIsFetchedOnce) {
  Make(/*per_listing=*/64, /*max_in_flight=*/1);
  prefetcher_->Listed("/d", ListingOf({"a", "b"}), Walker());
  // "a" runs, "b" waits; both are asked for again.
  prefetcher_->Listed("/d", ListingOf({"a", "b"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));
  Fetch("/d/a");
  Fetch("/d/b");
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b"}));
  EXPECT_EQ(prefetcher_->fetched(), 2u);
}

TEST_F(ListingPrefetcherTest, AtMostMaxInFlightRunAtOnce) {
  Make(/*per_listing=*/64, /*max_in_flight=*/2);
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c", "d", "e"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b"}));
  // A job holds its place until its listing is read.
  backend_.Answer(OpendirOf("/d/a"), OpendirReply(1));
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b"}));
  readdirs_.Answer(0, ReaddirReply({}));
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b", "/d/c"}));
  Fail("/d/b");
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b", "/d/c", "/d/d"}));
  Fetch("/d/c");
  Fetch("/d/d");
  Fetch("/d/e");
  EXPECT_EQ(Opened().size(), 5u);
  EXPECT_EQ(prefetcher_->fetched(), 4u);
}

TEST_F(ListingPrefetcherTest, AtMostPerListingFromOneListing) {
  Make(/*per_listing=*/2);
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c"}, {"f"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b"}));
  // Another listing has its own allowance.
  prefetcher_->Listed("/e", ListingOf({"a", "b", "c"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a", "/d/b", "/e/a", "/e/b"}));
}

TEST_F(ListingPrefetcherTest, CachedDirectoriesDoNotCountAgainstPerListing) {
  Make(/*per_listing=*/2);
  cache_->PutListing("/d/a", ListingOf({}), absl::Seconds(60),
                     cache_->epoch());
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c", "d"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/b", "/d/c"}));
}

TEST_F(ListingPrefetcherTest, NothingWhileTheCacheIsThreeQuartersFull) {
  Make(/*per_listing=*/64, /*max_in_flight=*/16, /*max_entries=*/8);
  FillCache(5);
  prefetcher_->Listed("/d", ListingOf({"a"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));

  FillCache(6);
  prefetcher_->Listed("/e", ListingOf({"a"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));
}

// Jobs queued while the cache had room do not start once it is three
// quarters full (their listings would push out what it holds); their
// waiters are let go.
TEST_F(ListingPrefetcherTest, QueuedJobsDoNotStartOnceTheCacheIsFull) {
  Make(/*per_listing=*/64, /*max_in_flight=*/1, /*max_entries=*/8);
  prefetcher_->Listed("/d", ListingOf({"a", "b"}), Walker());
  std::shared_ptr<bool> queued = Await("/d/b");
  FillCache(6);
  Fetch("/d/a");
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));
  EXPECT_TRUE(*queued) << "a job that does not start lets its waiters go";
  prefetcher_->Stop();
}

TEST_F(ListingPrefetcherTest, AtMostMaxQueuedWait) {
  const size_t n = ListingPrefetcher::kMaxQueued + 10;
  Make(/*per_listing=*/n, /*max_in_flight=*/1);
  Paths names = ManyDirs(n);
  prefetcher_->Listed("/d", ListingOf(names), Walker());
  ASSERT_EQ(backend_.sent(), 1u);
  // One running, kMaxQueued - 1 behind it.
  EXPECT_TRUE(prefetcher_->AwaitInFlight(
      "/d/" + names[ListingPrefetcher::kMaxQueued - 1], [] {}));
  EXPECT_FALSE(prefetcher_->AwaitInFlight(
      "/d/" + names[ListingPrefetcher::kMaxQueued], [] {}));
  prefetcher_->Stop();
}

// --- waiting and stopping ----------------------------------------------------

TEST_F(ListingPrefetcherTest, AwaitInFlightKnowsOnlyQueuedAndRunningJobs) {
  Make(/*per_listing=*/64, /*max_in_flight=*/1);
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/a", [] {}));
  prefetcher_->Listed("/d", ListingOf({"a", "b"}, {"f"}), Walker());
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/f", [] {}));
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d", [] {}));

  std::shared_ptr<bool> running = Await("/d/a");
  std::shared_ptr<bool> queued = Await("/d/b");
  std::shared_ptr<bool> also_queued = Await("/d/b");
  Fetch("/d/a");
  EXPECT_TRUE(*running);
  EXPECT_FALSE(*queued);
  Fail("/d/b");
  EXPECT_TRUE(*queued);
  EXPECT_TRUE(*also_queued);
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/a", [] {}));
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/b", [] {}));
}

TEST_F(ListingPrefetcherTest, AWaiterRunsOnceTheJobIsOverAndNotBefore) {
  prefetcher_->Listed("/d", ListingOf({"a"}), Walker());
  std::shared_ptr<bool> over = Await("/d/a");
  backend_.Answer(0, OpendirReply(4));
  EXPECT_FALSE(*over);
  readdirs_.Answer(0, ReaddirReply({}));
  EXPECT_TRUE(*over);
}

TEST_F(ListingPrefetcherTest, StopDropsQueuedJobsAndRunsTheirWaiters) {
  Make(/*per_listing=*/64, /*max_in_flight=*/1);
  prefetcher_->Listed("/d", ListingOf({"a", "b", "c"}), Walker());
  std::shared_ptr<bool> running = Await("/d/a");
  std::shared_ptr<bool> queued_b = Await("/d/b");
  std::shared_ptr<bool> queued_c = Await("/d/c");

  prefetcher_->Stop();
  EXPECT_TRUE(*queued_b);
  EXPECT_TRUE(*queued_c);
  EXPECT_FALSE(*running) << "what is in flight finishes";
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/d/b", [] {}));
  EXPECT_TRUE(prefetcher_->AwaitInFlight("/d/a", [] {}));

  Fetch("/d/a");
  EXPECT_TRUE(*running);
  EXPECT_EQ(prefetcher_->fetched(), 1u);
  EXPECT_EQ(Released(), (Paths{"/d/a"}));
  EXPECT_EQ(Opened(), (Paths{"/d/a"})) << "a job started after Stop";

  prefetcher_->Listed("/e", ListingOf({"x"}), Walker());
  EXPECT_EQ(Opened(), (Paths{"/d/a"}));
  EXPECT_FALSE(prefetcher_->AwaitInFlight("/e/x", [] {}));
}

// --- transports that answer inside Send --------------------------------------

// Answers every op inside Send, after holding back the first `hold` ops
// for the test to answer; records how deep answers nest.
class InlineTransport : public CountingTransport {
 public:
  // Opendir: EACCES, or a handle if `opendir_ok`; readdir: EIO;
  // releasedir: nothing.
  explicit InlineTransport(bool opendir_ok) : opendir_ok_(opendir_ok) {}

  void Send(v1::Op op, Done done) override {
    if (held.size() < hold) {
      held.push_back(PendingOp{std::move(op), std::move(done)});
      return;
    }
    ++depth_;
    if (depth_ > max_depth) max_depth = depth_;
    ++answered;
    if (op.has_opendir() && opendir_ok_) {
      done(OpendirReply(9));
    } else if (op.has_releasedir()) {
      done(Ok());
    } else {
      done(Errno(op.has_readdir() ? EIO : EACCES));
    }
    --depth_;
  }

  size_t hold = 0;
  std::vector<PendingOp> held;
  size_t answered = 0;
  int max_depth = 0;

 private:
  const bool opendir_ok_;
  int depth_ = 0;
};

class InlineAnswersTest : public ::testing::TestWithParam<bool> {};

// 4000 jobs each over at once must run one after the other, not each
// inside the one before.
TEST_P(InlineAnswersTest, DoNotNestJobs) {
  const size_t n = 4000;
  InlineTransport transport(/*opendir_ok=*/GetParam());
  transport.hold = 1;
  MetadataCache cache(MetadataCache::Options{});
  ListingPrefetcher::Options options;
  options.next = &transport;
  options.send_readdir = [&transport](v1::Op op, OpTransport::Done done) {
    transport.Send(std::move(op), std::move(done));
  };
  options.cache = &cache;
  options.per_listing = n;
  options.max_in_flight = 1;
  ListingPrefetcher prefetcher(std::move(options));

  Paths names = ManyDirs(n);
  prefetcher.Listed("/d", ListingOf(names), Walker());
  ASSERT_EQ(transport.held.size(), 1u);
  size_t waited = 0;
  for (const std::string& name : names) {
    ASSERT_TRUE(prefetcher.AwaitInFlight("/d/" + name, [&waited] { ++waited; }))
        << name;
  }

  // The first one fails; the others run, and are answered, from here.
  OpTransport::Done first = std::move(transport.held[0].done);
  first(Errno(EACCES));
  EXPECT_EQ(waited, n);
  // Opendir, readdir, releasedir nest; jobs do not.
  EXPECT_LE(transport.max_depth, 3);
  EXPECT_EQ(transport.answered, GetParam() ? 3 * (n - 1) : n - 1);
  EXPECT_EQ(prefetcher.fetched(), 0u);
  EXPECT_FALSE(prefetcher.AwaitInFlight("/d/" + names.back(), [] {}));
}

INSTANTIATE_TEST_SUITE_P(OpendirFailsOrReaddirFails, InlineAnswersTest,
                         ::testing::Bool());

TEST(ListingPrefetcherInlineTest, AnInlineFailureFromListedStartsTheRest) {
  InlineTransport transport(/*opendir_ok=*/false);
  MetadataCache cache(MetadataCache::Options{});
  ListingPrefetcher::Options options;
  options.next = &transport;
  options.send_readdir = [](v1::Op, OpTransport::Done) {
    ADD_FAILURE() << "readdir after a failed opendir";
  };
  options.cache = &cache;
  options.per_listing = 4000;
  options.max_in_flight = 1;
  ListingPrefetcher prefetcher(std::move(options));
  prefetcher.Listed("/d", ListingOf(ManyDirs(4000)), Walker());
  EXPECT_EQ(transport.answered, 4000u);
  EXPECT_EQ(transport.max_depth, 1);
  // Nothing is left behind: the same listing is fetched again in full.
  prefetcher.Listed("/d", ListingOf(ManyDirs(4000)), Walker());
  EXPECT_EQ(transport.answered, 8000u);
}

}  // namespace
}  // namespace fusehost
