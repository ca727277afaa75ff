// CachingTransport over a real MetadataCache and a fake backend that records
// ops and lets each test answer them (or not yet): what it answers from the
// cache and what it caches of the backend's answers (attributes, absences,
// listings, extended attributes, symlinks), and what it passes through.
// Changes and coherence are tested in caching_transport_*_test.cc.

#include "daemon/pipeline/caching_transport.h"

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/caching_transport_fixture.h"

namespace fusehost {
namespace {

// --- getattr -----------------------------------------------------------------

TEST_F(CachingTransportTest, GetattrMissGoesToTheBackendAndIsCached) {
  v1::OpResult first = Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5)));
  EXPECT_EQ(first.posix_errno(), 0);
  EXPECT_EQ(first.id(), kOpId);
  EXPECT_EQ(first.getattr().attr().ino(), 5u);
  // The backend sent no lifetime: the policy's is filled in.
  EXPECT_EQ(first.getattr().attr().ttl_ms(), kAttrTtlMs);
  EXPECT_EQ(backend_.op(0).getattr().path(), "/f");

  v1::OpResult second = Local(GetattrOp("/f"));
  EXPECT_EQ(second.posix_errno(), 0);
  EXPECT_EQ(second.getattr().attr().ino(), 5u);
  EXPECT_EQ(second.getattr().attr().size(), 500u);
  EXPECT_GT(second.getattr().attr().ttl_ms(), 0u);
  EXPECT_LE(second.getattr().attr().ttl_ms(), kAttrTtlMs);
}

TEST_F(CachingTransportTest, AWalkThroughAListingFetchesTheOtherNamesAhead) {
  SeedListing("/d", {"a", "b", "c", "d", "e"});
  Seed("/d/d", AttrOf(4));
  // The first miss alone: nothing says the caller walks the directory.
  Roundtrip(GetattrOp("/d/c"), GetattrReply(AttrOf(3)));
  ASSERT_EQ(backend_.sent(), 1u);
  // A second miss in the same directory: the names of the listing that
  // are not cached come along (from the asked one on, round to the
  // start), as the same caller, and the asked one last.
  Slot b = Start(GetattrOp("/d/b"));
  ASSERT_EQ(backend_.sent(), 4u);
  EXPECT_EQ(backend_.op(1).getattr().path(), "/d/e");
  EXPECT_EQ(backend_.op(2).getattr().path(), "/d/a");
  EXPECT_EQ(backend_.op(3).getattr().path(), "/d/b");
  EXPECT_EQ(backend_.op(1).caller().uid(), 1000u);
  backend_.Answer(1, Errno(ENOENT));  // gone meanwhile
  backend_.Answer(2, GetattrReply(AttrOf(1)));
  backend_.Answer(3, GetattrReply(AttrOf(2)));
  ASSERT_TRUE(b->has_value());
  EXPECT_EQ((*b)->getattr().attr().ino(), 2u);
  // The kernel's next lookups are answered from memory.
  EXPECT_EQ(Local(GetattrOp("/d/a")).getattr().attr().ino(), 1u);
  EXPECT_EQ(Local(GetattrOp("/d/e")).posix_errno(), ENOENT);
}

// Names "n000", "n001", ... in listing order.
std::vector<std::string> NumberedNames(int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back(absl::StrFormat("n%03d", i));
  return names;
}

TEST_F(CachingTransportTest, AWalkFetchesAheadFromTheLastNameItWasAnswered) {
  SeedListing("/d", NumberedNames(200));
  Roundtrip(GetattrOp("/d/n000"), GetattrReply(AttrOf(1)));
  Start(GetattrOp("/d/n001"));
  // 63 names ahead, the asked one last.
  ASSERT_EQ(backend_.sent(), 65u);
  EXPECT_EQ(backend_.op(1).getattr().path(), "/d/n002");
  EXPECT_EQ(backend_.op(63).getattr().path(), "/d/n064");
  EXPECT_EQ(backend_.op(64).getattr().path(), "/d/n001");
  for (size_t i = 1; i < 65; ++i) backend_.Answer(i, GetattrReply(AttrOf(i)));
  for (int i = 2; i <= 64; ++i) {
    Local(GetattrOp(absl::StrFormat("/d/n%03d", i)));
  }
  // The caller moves on by one name from the last it was answered: the
  // next 63 come with the next miss.
  Start(GetattrOp("/d/n065"));
  ASSERT_EQ(backend_.sent(), 65u + 64u);
  EXPECT_EQ(backend_.op(65).getattr().path(), "/d/n066");
  EXPECT_EQ(backend_.op(66).getattr().path(), "/d/n067");
  EXPECT_EQ(backend_.op(128).getattr().path(), "/d/n065");
}

TEST_F(CachingTransportTest, ACallerWithAStrideHasOnlyItsStrideFetchedAhead) {
  // cat of every 5th file: the names between are not asked for.
  SeedListing("/d", NumberedNames(100));
  Roundtrip(GetattrOp("/d/n000"), GetattrReply(AttrOf(1)));
  Start(GetattrOp("/d/n005"));
  ASSERT_EQ(backend_.sent(), 1u + 18u + 1u);
  for (size_t i = 1; i <= 18; ++i) {
    EXPECT_EQ(backend_.op(i).getattr().path(),
              absl::StrFormat("/d/n%03d", 5 + 5 * i));
  }
  EXPECT_EQ(backend_.op(19).getattr().path(), "/d/n005");
  for (size_t i = 1; i < 20; ++i) backend_.Answer(i, GetattrReply(AttrOf(i)));
  for (int i = 10; i < 100; i += 5) {
    Local(GetattrOp(absl::StrFormat("/d/n%03d", i)));
  }
}

TEST_F(CachingTransportTest, AStrideThatChangesGetsEveryNameAhead) {
  SeedListing("/d", NumberedNames(100));
  Roundtrip(GetattrOp("/d/n000"), GetattrReply(AttrOf(1)));
  Start(GetattrOp("/d/n005"));  // a stride of 5: n010, n015, ...
  ASSERT_EQ(backend_.sent(), 20u);
  for (size_t i = 1; i < 20; ++i) backend_.Answer(i, GetattrReply(AttrOf(i)));
  // Then by 2, which the stride did not fetch: not a caller with a stride
  // after all, so every name not cached after the asked one (n008, n009,
  // n011, ...; not round to the start, which is cached).
  Start(GetattrOp("/d/n007"));
  ASSERT_GT(backend_.sent(), 21u);
  EXPECT_EQ(backend_.op(20).getattr().path(), "/d/n008");
  EXPECT_EQ(backend_.op(21).getattr().path(), "/d/n009");
  EXPECT_EQ(backend_.op(22).getattr().path(), "/d/n011");
  size_t sent = backend_.sent();
  EXPECT_EQ(backend_.op(sent - 1).getattr().path(), "/d/n007");
  for (size_t i = 20; i < sent; ++i) {
    backend_.Answer(i, GetattrReply(AttrOf(i)));
  }
  // And so on in that directory, even at a stride again.
  Start(GetattrOp("/d/n093"));
  ASSERT_GT(backend_.sent(), sent + 1);
  EXPECT_EQ(backend_.op(sent).getattr().path(), "/d/n094");
}

TEST_F(CachingTransportTest, MissesInDifferentDirectoriesFetchNothingAhead) {
  SeedListing("/d", {"a", "b", "c"});
  SeedListing("/e", {"a", "b", "c"});
  Roundtrip(GetattrOp("/d/a"), GetattrReply(AttrOf(1)));
  Roundtrip(GetattrOp("/e/a"), GetattrReply(AttrOf(2)));
  Roundtrip(GetattrOp("/d/b"), GetattrReply(AttrOf(3)));
  EXPECT_EQ(backend_.sent(), 3u);
}

TEST_F(CachingTransportTest, GetattrHitCarriesTheOpId) {
  Seed("/f", AttrOf(5));
  EXPECT_EQ(Local(GetattrOp("/f")).id(), kOpId);
}

TEST_F(CachingTransportTest, BackendLifetimeIsKept) {
  v1::OpResult r =
      Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5, S_IFREG, 1, 3000)));
  EXPECT_EQ(r.getattr().attr().ttl_ms(), 3000u);
  EXPECT_LE(Local(GetattrOp("/f")).getattr().attr().ttl_ms(), 3000u);
}

TEST_F(CachingTransportTest, GetattrThroughAHandleAsksTheBackend) {
  Seed("/f", AttrOf(5));
  v1::Op op = GetattrOp("/f");
  op.mutable_getattr()->set_fh(3);
  EXPECT_EQ(Roundtrip(op, GetattrReply(AttrOf(6))).getattr().attr().ino(), 6u);
  // ... and its answer is the newest truth for the path.
  EXPECT_EQ(Local(GetattrOp("/f")).getattr().attr().ino(), 6u);
}

TEST_F(CachingTransportTest, EnoentIsCachedWhenNegativeCachingIsOn) {
  EXPECT_EQ(Roundtrip(GetattrOp("/n"), Errno(ENOENT)).posix_errno(), ENOENT);
  v1::OpResult again = Local(GetattrOp("/n"));
  EXPECT_EQ(again.posix_errno(), ENOENT);
  EXPECT_EQ(again.id(), kOpId);
}

TEST_F(CachingTransportTest, EnoentIsNotCachedWithoutNegativeLifetime) {
  CachePolicy policy = DefaultPolicy();
  policy.negative_ttl = absl::ZeroDuration();
  Init(policy);
  Roundtrip(GetattrOp("/n"), Errno(ENOENT));
  EXPECT_EQ(Roundtrip(GetattrOp("/n"), Errno(ENOENT)).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, OtherErrorsAreNotCached) {
  EXPECT_EQ(Roundtrip(GetattrOp("/f"), Errno(EACCES)).posix_errno(), EACCES);
  Roundtrip(GetattrOp("/f"), Errno(EACCES));
  EXPECT_EQ(Cached("/f"), AttrLookup::kMiss);
}

TEST_F(CachingTransportTest, NameAbsentFromACachedListingIsEnoentLocally) {
  CachePolicy policy = DefaultPolicy();
  policy.negative_ttl = absl::ZeroDuration();  // the listing alone answers
  Init(policy);
  SeedListing("/d", {"a"});
  EXPECT_EQ(Local(GetattrOp("/d/b")).posix_errno(), ENOENT);
  // A listed name without cached attributes still needs the backend.
  EXPECT_EQ(Roundtrip(GetattrOp("/d/a"), GetattrReply(AttrOf(3)))
                .getattr()
                .attr()
                .ino(),
            3u);
  // Without a listing of the parent the backend is asked.
  Roundtrip(GetattrOp("/e/b"), Errno(ENOENT));
}

// --- readdir -----------------------------------------------------------------

TEST_F(CachingTransportTest, WholeReaddirCachesTheListingAndChildAttrs) {
  v1::OpResult r = Roundtrip(
      ReaddirOp("/d"),
      ReaddirReply({{"a", AttrOf(2)}, {"b", AttrOf(3, S_IFDIR | 0755, 2)}}));
  ASSERT_EQ(r.readdir().entries_size(), 2);
  // Passed on as it came (not copied to fill in lifetimes): no lifetime of
  // its own means the mount's, in the kernel layer as in the cache.
  EXPECT_EQ(r.readdir().entries(0).attr().ttl_ms(), 0u);
  EXPECT_LE(Local(GetattrOp("/d/a")).getattr().attr().ttl_ms(), kAttrTtlMs);
  EXPECT_GT(Local(GetattrOp("/d/a")).getattr().attr().ttl_ms(), 0u);

  EXPECT_EQ(ListingNames("/d"), (Names{"a", "b"}));
  EXPECT_EQ(cache_->GetListing("/d")->at("b").type,
            static_cast<uint32_t>(S_IFDIR));
  EXPECT_EQ(cache_->GetListing("/d")->at("b").ino, 3u);
  EXPECT_EQ(Local(GetattrOp("/d/a")).getattr().attr().ino(), 2u);
  EXPECT_EQ(Local(GetattrOp("/d/b")).getattr().attr().ino(), 3u);
  EXPECT_EQ(Local(GetattrOp("/d/c")).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, PartialReaddirsCacheNoListing) {
  // Resumable cookies.
  Roundtrip(ReaddirOp("/d"),
            ReaddirReply({{"a", AttrOf(2), 1}, {"b", AttrOf(3), 2}}));
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  // Not the start of the directory.
  Roundtrip(ReaddirOp("/e", 5), ReaddirReply({{"a", AttrOf(2)}}));
  EXPECT_EQ(ListingNames("/e"), std::nullopt);
  // More follows.
  Roundtrip(ReaddirOp("/g"), ReaddirReply({{"a", AttrOf(2)}}, /*eof=*/false));
  EXPECT_EQ(ListingNames("/g"), std::nullopt);
  // A failure.
  Roundtrip(ReaddirOp("/h"), Errno(EACCES));
  EXPECT_EQ(ListingNames("/h"), std::nullopt);
}

TEST_F(CachingTransportTest, ReaddirAnsweredAfterAChangeIsNotCached) {
  Slot slot = Start(ReaddirOp("/d"));
  // "/d/new" is made while the listing is on its way.
  Roundtrip(CreateOp("/d/new"), CreateReply(AttrOf(9)));
  backend_.Answer(0, ReaddirReply({{"old", AttrOf(2)}}));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->readdir().entries_size(), 1);
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  EXPECT_EQ(Local(GetattrOp("/d/new")).getattr().attr().ino(), 9u);
}

// --- stale reads -------------------------------------------------------------

TEST_F(CachingTransportTest, GetattrAnsweredAfterAnUnlinkIsNotCached) {
  Slot slot = Start(GetattrOp("/f"));
  Roundtrip(UnlinkOp("/f"), Ok());
  backend_.Answer(0, GetattrReply(AttrOf(5)));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->getattr().attr().ino(), 5u);  // the caller still gets it
  EXPECT_EQ(Local(GetattrOp("/f")).posix_errno(), ENOENT);
}

// --- extended attributes and symlinks ----------------------------------------

TEST_F(CachingTransportTest, GetxattrValuesAndAbsenceAreCached) {
  // The kernel looks a name up before it asks for its extended attributes.
  Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5)));
  EXPECT_EQ(
      Roundtrip(GetxattrOp("/f", "user.a"), XattrReply("v")).xattr().data(),
      "v");
  v1::OpResult hit = Local(GetxattrOp("/f", "user.a"));
  EXPECT_EQ(hit.posix_errno(), 0);
  EXPECT_EQ(hit.id(), kOpId);
  EXPECT_EQ(hit.xattr().data(), "v");

  EXPECT_EQ(Roundtrip(GetxattrOp("/f", "user.b"), Errno(ENODATA)).posix_errno(),
            ENODATA);
  EXPECT_EQ(Local(GetxattrOp("/f", "user.b")).posix_errno(), ENODATA);

  // Other errors are not remembered.
  Roundtrip(GetxattrOp("/f", "user.c"), Errno(EACCES));
  Roundtrip(GetxattrOp("/f", "user.c"), Errno(EACCES));
}

TEST_F(CachingTransportTest, ListxattrIsCached) {
  Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5)));
  const std::string names("user.a\0user.b\0", 14);
  Roundtrip(ListxattrOp("/f"), XattrReply(names));
  EXPECT_EQ(Local(ListxattrOp("/f")).xattr().data(), names);
  // The list is not the value of some attribute.
  Roundtrip(GetxattrOp("/f", "user.a"), XattrReply("v"));
}

TEST_F(CachingTransportTest, XattrsOfANamelessFileAreNotCached) {
  Roundtrip(GetxattrOp("", "user.a"), XattrReply("v"));
  Roundtrip(GetxattrOp("", "user.a"), XattrReply("v"));
  EXPECT_EQ(cache_->size(), 0u);
}

TEST_F(CachingTransportTest, ReadlinkIsCached) {
  EXPECT_EQ(Roundtrip(ReadlinkOp("/l"), ReadlinkReply("../t")).readlink().target(),
            "../t");
  v1::OpResult hit = Local(ReadlinkOp("/l"));
  EXPECT_EQ(hit.posix_errno(), 0);
  EXPECT_EQ(hit.id(), kOpId);
  EXPECT_EQ(hit.readlink().target(), "../t");

  Roundtrip(ReadlinkOp("/bad"), Errno(EINVAL));
  Roundtrip(ReadlinkOp("/bad"), Errno(EINVAL));
}

// --- passing through ---------------------------------------------------------

TEST_F(CachingTransportTest, OtherOpsAndControlCallsPassThrough) {
  v1::Op read = MakeOp([](v1::Op& op) {
    op.mutable_read()->set_path("/f");
    op.mutable_read()->set_size(10);
  });
  v1::OpResult reply;
  reply.mutable_read()->set_data("0123");
  EXPECT_EQ(Roundtrip(read, reply).read().data(), "0123");
  EXPECT_EQ(backend_.op(0).SerializeAsString(), read.SerializeAsString());
  transport_->CancelAll();
  transport_->WaitIdle();
  EXPECT_EQ(backend_.cancels(), 1);
  EXPECT_EQ(backend_.waits(), 1);
}

}  // namespace
}  // namespace fusehost
