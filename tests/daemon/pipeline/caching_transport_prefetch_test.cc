// CachingTransport with listings fetched ahead (prefetch_listings): a whole
// listing from the backend sends for its subdirectories' listings, which
// land in the cache and fetch nothing further themselves; a directory
// opened from the cache sends for the next level; an opendir may wait for a
// listing on its way.

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "daemon/pipeline/caching_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/caching_transport_fixture.h"

namespace fusehost {
namespace {

v1::Attr DirAttr(uint64_t ino) { return AttrOf(ino, S_IFDIR | 0755, 2); }

v1::OpResult OpendirReply(uint64_t fh) {
  v1::OpResult r;
  r.mutable_opendir()->set_fh(fh);
  return r;
}

class CachingTransportPrefetchTest : public CachingTransportTest {
 protected:
  CachingTransportPrefetchTest() { Prefetching(8); }

  // The transport again, fetching ahead up to `n` subdirectories.
  void Prefetching(size_t n) {
    transport_.reset();
    CachingTransport::Options options;
    options.policy = DefaultPolicy();
    options.cache = cache_.get();
    options.next = &backend_;
    options.prefetch_listings = n;
    transport_ = std::make_unique<CachingTransport>(std::move(options));
    transport_->AttachKernel(&kernel_);
  }

  // Lists "/d": a file and the directories "s1" and "s2".
  void ListD() {
    Roundtrip(ReaddirOp("/d"), ReaddirReply({{"f", AttrOf(2)},
                                             {"s1", DirAttr(3)},
                                             {"s2", DirAttr(4)}}));
  }
  // Path of an opendir, readdir or releasedir.
  static std::string PathOf(const v1::Op& op) {
    if (op.has_opendir()) return op.opendir().path();
    if (op.has_readdir()) return op.readdir().path();
    if (op.has_releasedir()) return op.releasedir().path();
    return "";
  }
  // Paths of the backend's ops from `first` on that are `kind`.
  Names PathsFrom(size_t first, v1::Op::OpCase kind) {
    Names paths;
    for (size_t i = first; i < backend_.sent(); ++i) {
      v1::Op op = backend_.op(i);
      if (op.op_case() == kind) paths.push_back(PathOf(op));
    }
    return paths;
  }
  Names Opened(size_t first = 0) { return PathsFrom(first, v1::Op::kOpendir); }
  // Index of the backend's op `kind` of `path`.
  size_t Find(v1::Op::OpCase kind, const std::string& path) {
    for (size_t i = 0; i < backend_.sent(); ++i) {
      v1::Op op = backend_.op(i);
      if (op.op_case() == kind && PathOf(op) == path) return i;
    }
    ADD_FAILURE() << "no op " << kind << " for " << path;
    return backend_.sent();
  }
  // Answers the prefetch of `path`: its opendir with `fh`, its readdir with
  // `reply`.
  void Prefetch(const std::string& path, const v1::OpResult& reply,
                uint64_t fh = 11) {
    backend_.Answer(Find(v1::Op::kOpendir, path), OpendirReply(fh));
    backend_.Answer(Find(v1::Op::kReaddir, path), reply);
  }
};

TEST_F(CachingTransportPrefetchTest, AWholeListingSendsForItsSubdirectories) {
  ListD();
  EXPECT_EQ(Opened(), (Names{"/d/s1", "/d/s2"}));
  for (size_t i = 1; i < backend_.sent(); ++i) {
    v1::Op op = backend_.op(i);
    EXPECT_EQ(op.caller().uid(), 1000u);
    EXPECT_EQ(op.opendir().flags(), O_RDONLY | O_DIRECTORY);
  }
  EXPECT_EQ(transport_->CachedListing("/d/s1"), nullptr);
}

TEST_F(CachingTransportPrefetchTest, FetchesInTheOrderTheBackendListed) {
  // The kernel gets a first listing in the backend's order (tmpfs lists the
  // newest first), and a walker visits the subdirectories in that order:
  // fetched by name instead, its first directory would come last.
  Roundtrip(ReaddirOp("/d"), ReaddirReply({{"s9", DirAttr(3)},
                                           {"f", AttrOf(2)},
                                           {"s10", DirAttr(4)},
                                           {"s1", DirAttr(5)}}));
  EXPECT_EQ(Opened(), (Names{"/d/s9", "/d/s10", "/d/s1"}));
}

TEST_F(CachingTransportPrefetchTest, APrefetchedListingIsCached) {
  ListD();
  size_t before = backend_.sent();
  backend_.Answer(Find(v1::Op::kOpendir, "/d/s1"), OpendirReply(21));
  ASSERT_EQ(backend_.sent(), before + 1);
  v1::Op read = backend_.op(before);
  ASSERT_TRUE(read.has_readdir()) << "the listing is read through the cache";
  EXPECT_EQ(read.readdir().fh(), 21u);
  EXPECT_EQ(read.readdir().offset(), 0u);

  backend_.Answer(before, ReaddirReply({{"x", AttrOf(5)}}));
  ASSERT_NE(transport_->CachedListing("/d/s1"), nullptr);
  EXPECT_EQ(ListingNames("/d/s1"), (Names{"x"}));
  EXPECT_EQ(Local(GetattrOp("/d/s1/x")).getattr().attr().ino(), 5u);
  EXPECT_EQ(PathsFrom(before, v1::Op::kReleasedir), (Names{"/d/s1"}));
  EXPECT_EQ(backend_.op(backend_.sent() - 1).releasedir().fh(), 21u);
  EXPECT_EQ(transport_->listings_prefetched(), 1u);
  EXPECT_EQ(transport_->CachedListing("/d/s2"), nullptr);
}

TEST_F(CachingTransportPrefetchTest, APrefetchedListingFetchesNothingAhead) {
  ListD();
  size_t before = backend_.sent();
  Prefetch("/d/s1", ReaddirReply({{"deeper", DirAttr(6)}, {"x", AttrOf(5)}}));
  EXPECT_EQ(Opened(before), Names{}) << "more than one level ahead";
  ASSERT_NE(transport_->CachedListing("/d/s1"), nullptr);
}

TEST_F(CachingTransportPrefetchTest, OpeningACachedListingFetchesTheNextLevel) {
  ListD();
  Prefetch("/d/s1", ReaddirReply({{"deeper", DirAttr(6)}, {"x", AttrOf(5)}}));
  size_t before = backend_.sent();

  v1::Caller walker;
  walker.set_uid(4321);
  walker.set_pid(77);
  transport_->DirectoryOpened("/d/s1", walker);
  ASSERT_EQ(Opened(before), (Names{"/d/s1/deeper"}));
  EXPECT_EQ(backend_.op(before).caller().uid(), 4321u);
  EXPECT_EQ(backend_.op(before).caller().pid(), 77u);
  // Once is enough.
  transport_->DirectoryOpened("/d/s1", walker);
  EXPECT_EQ(Opened(before), (Names{"/d/s1/deeper"}));
}

TEST_F(CachingTransportPrefetchTest, OpeningAnUncachedListingFetchesNothing) {
  transport_->DirectoryOpened("/d", v1::Caller());
  transport_->DirectoryOpened("", v1::Caller());
  EXPECT_EQ(backend_.sent(), 0u);
}

TEST_F(CachingTransportPrefetchTest, CachedSubdirectoriesAreNotFetched) {
  SeedListing("/d/s1", {"x"});
  ListD();
  EXPECT_EQ(Opened(), (Names{"/d/s2"}));
}

TEST_F(CachingTransportPrefetchTest, AtMostPrefetchListingsSubdirectories) {
  Prefetching(1);
  ListD();
  EXPECT_EQ(Opened(), (Names{"/d/s1"}));
}

TEST_F(CachingTransportPrefetchTest, PartialListingsFetchNothingAhead) {
  // Resumable cookies.
  Roundtrip(ReaddirOp("/a"), ReaddirReply({{"s", DirAttr(3), 1}}));
  // Not from the start.
  Roundtrip(ReaddirOp("/b", 5), ReaddirReply({{"s", DirAttr(3)}}));
  // More follows.
  Roundtrip(ReaddirOp("/c"), ReaddirReply({{"s", DirAttr(3)}}, /*eof=*/false));
  // A failure.
  Roundtrip(ReaddirOp("/e"), Errno(EIO));
  EXPECT_EQ(backend_.sent(), 4u);
}

TEST_F(CachingTransportPrefetchTest, WithoutPrefetchNothingIsFetchedAhead) {
  Prefetching(0);
  ListD();
  EXPECT_EQ(backend_.sent(), 1u);
  ASSERT_NE(transport_->CachedListing("/d"), nullptr);
  transport_->DirectoryOpened("/d", v1::Caller());
  EXPECT_EQ(backend_.sent(), 1u);
  EXPECT_FALSE(transport_->AwaitListing("/d/s1", [] {}));
  EXPECT_EQ(transport_->listings_prefetched(), 0u);
}

TEST_F(CachingTransportPrefetchTest, AwaitListingWaitsForTheListingInFlight) {
  EXPECT_FALSE(transport_->AwaitListing("/d/s1", [] {}));
  ListD();
  bool over = false;
  bool cached_then = false;
  EXPECT_TRUE(transport_->AwaitListing("/d/s1", [&] {
    over = true;
    cached_then = transport_->CachedListing("/d/s1") != nullptr;
  }));
  EXPECT_FALSE(transport_->AwaitListing("/d/f", [] {}));
  EXPECT_FALSE(transport_->AwaitListing("/d/other", [] {}));

  backend_.Answer(Find(v1::Op::kOpendir, "/d/s1"), OpendirReply(3));
  EXPECT_FALSE(over);
  backend_.Answer(Find(v1::Op::kReaddir, "/d/s1"), ReaddirReply({{"x"}}));
  EXPECT_TRUE(over);
  EXPECT_TRUE(cached_then) << "the waiter ran before the listing was cached";
  EXPECT_FALSE(transport_->AwaitListing("/d/s1", [] {}));
}

TEST_F(CachingTransportPrefetchTest, AFailedPrefetchEndsTheWaitWithNothing) {
  ListD();
  bool over = false;
  ASSERT_TRUE(transport_->AwaitListing("/d/s2", [&] { over = true; }));
  backend_.Answer(Find(v1::Op::kOpendir, "/d/s2"), Errno(EACCES));
  EXPECT_TRUE(over);
  EXPECT_EQ(transport_->CachedListing("/d/s2"), nullptr);
  EXPECT_EQ(PathsFrom(0, v1::Op::kReaddir), (Names{"/d"}));
  EXPECT_EQ(transport_->listings_prefetched(), 0u);
}

TEST_F(CachingTransportPrefetchTest, CancelAllStopsPrefetching) {
  ListD();
  bool over = false;
  ASSERT_TRUE(transport_->AwaitListing("/d/s1", [&] { over = true; }));
  transport_->CancelAll();
  EXPECT_EQ(backend_.cancels(), 1);
  // In flight: finishes.
  Prefetch("/d/s1", ReaddirReply({{"x"}}));
  EXPECT_TRUE(over);
  size_t before = backend_.sent();
  Roundtrip(ReaddirOp("/e"), ReaddirReply({{"s", DirAttr(9)}}));
  EXPECT_EQ(Opened(before), Names{});
}

}  // namespace
}  // namespace fusehost
