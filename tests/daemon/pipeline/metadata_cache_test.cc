// MetadataCache: lifetimes, the epoch rule, symlinks, listings, dropping
// attributes and listings, and hard-link queries. Extended attributes,
// subtrees, and bounds and threads are tested in metadata_cache_*_test.cc.

#include "daemon/pipeline/metadata_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/metadata_cache_fixture.h"

namespace fusehost {
namespace {

// --- attributes and lifetimes ----------------------------------------------

TEST_F(MetadataCacheTest, AttrRoundTripsWithTimeLeft) {
  v1::Attr in = AttrOf(5, S_IFDIR | 0755, 3);
  in.set_uid(1000);
  in.set_gid(100);
  in.set_rdev(9);
  in.set_blocks(8);
  in.set_blksize(4096);
  in.mutable_atime()->set_sec(11);
  in.mutable_ctime()->set_nsec(22);
  cache_.PutAttr("/d", in, absl::Seconds(10), cache_.epoch());

  v1::Attr out;
  ASSERT_EQ(cache_.GetAttr("/d", &out), AttrLookup::kHit);
  EXPECT_GT(out.ttl_ms(), 9000u);
  EXPECT_LE(out.ttl_ms(), 10000u);
  out.clear_ttl_ms();
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
  EXPECT_EQ(cache_.GetAttr("/other", &out), AttrLookup::kMiss);
}

// A device number is kept apart from the other attributes: it comes back,
// and goes when new attributes have none.
TEST_F(MetadataCacheTest, DeviceNumberComesBackAndGoes) {
  v1::Attr dev = AttrOf(7, S_IFCHR | 0600);
  dev.set_rdev(0x0105);
  cache_.PutAttr("/null", dev, kLong, cache_.epoch());
  cache_.PutSymlink("/null", "kept beside", kLong, cache_.epoch());
  v1::Attr out;
  ASSERT_EQ(cache_.GetAttr("/null", &out), AttrLookup::kHit);
  EXPECT_EQ(out.rdev(), 0x0105u);
  cache_.UpdateAttr("/null", AttrOf(7, S_IFREG | 0600), kLong);
  ASSERT_EQ(cache_.GetAttr("/null", &out), AttrLookup::kHit);
  EXPECT_EQ(out.rdev(), 0u);
  EXPECT_EQ(cache_.GetSymlink("/null"), "kept beside");
}

// A device file's entry keeps its number beside the attributes: dropping
// the attributes drops it too, and leaves no entry behind.
TEST_F(MetadataCacheTest, ADroppedDeviceFileLeavesNoEntry) {
  v1::Attr dev = AttrOf(7, S_IFCHR | 0600);
  dev.set_rdev(0x0105);
  cache_.PutAttr("/null", dev, kLong, cache_.epoch());
  const size_t empty_bytes = 0;
  cache_.DropAttr("/null");
  EXPECT_EQ(cache_.size(), 0u);
  EXPECT_EQ(cache_.bytes(), empty_bytes);
}

// A path known absent has no listing, target or extended attributes.
TEST_F(MetadataCacheTest, APathKnownAbsentKeepsNothingElse) {
  PutList("/d", {"a"});
  cache_.PutSymlink("/d", "t", kLong, cache_.epoch());
  PutX("/d", "user.x", "v");
  cache_.PutNegative("/d", kLong, cache_.epoch());
  EXPECT_FALSE(HasListing("/d"));
  EXPECT_EQ(cache_.GetSymlink("/d"), std::nullopt);
  EXPECT_EQ(Xattr("/d", "user.x"), AttrLookup::kMiss);
  EXPECT_EQ(InoOf("/d"), -1);
}

TEST_F(MetadataCacheTest, EverythingExpiresAfterItsLifetime) {
  uint64_t epoch = cache_.epoch();
  cache_.PutAttr("/f", AttrOf(1), kShort, epoch);
  cache_.PutNegative("/gone", kShort, epoch);
  cache_.PutSymlink("/l", "target", kShort, epoch);
  PutList("/d", {"a"}, kShort);
  PutX("/f", "user.x", "v", kShort);

  v1::Attr attr;
  ASSERT_EQ(cache_.GetAttr("/f", &attr), AttrLookup::kHit);
  EXPECT_GT(attr.ttl_ms(), 0u);
  EXPECT_LE(attr.ttl_ms(), 50u);
  EXPECT_EQ(InoOf("/gone"), -1);
  EXPECT_EQ(cache_.GetSymlink("/l"), "target");
  bool present = false;
  EXPECT_TRUE(cache_.ListingKnows("/d", "a", &present));
  EXPECT_EQ(Xattr("/f", "user.x"), AttrLookup::kHit);

  absl::SleepFor(kPastShort);
  EXPECT_EQ(InoOf("/f"), 0);
  EXPECT_EQ(InoOf("/gone"), 0);
  EXPECT_EQ(cache_.GetSymlink("/l"), std::nullopt);
  EXPECT_FALSE(HasListing("/d"));
  EXPECT_FALSE(cache_.ListingKnows("/d", "a", &present));
  EXPECT_EQ(Xattr("/f", "user.x"), AttrLookup::kMiss);
}

TEST_F(MetadataCacheTest, TheLastAttributesAndListingOutliveTheirLifetime) {
  uint64_t epoch = cache_.epoch();
  cache_.PutAttr("/d/f", AttrOf(7), kShort, epoch);
  cache_.PutNegative("/d/gone", kShort, epoch);
  PutList("/d", {"f"}, kShort);
  absl::SleepFor(kPastShort);
  v1::Attr attr;
  ASSERT_EQ(cache_.GetAttr("/d/f", &attr), AttrLookup::kMiss);
  // As hints only: past their lifetime, with no time left.
  ASSERT_TRUE(cache_.GetLastAttr("/d/f", &attr));
  EXPECT_EQ(attr.ino(), 7u);
  EXPECT_EQ(attr.ttl_ms(), 0u);
  EXPECT_FALSE(cache_.GetLastAttr("/d/gone", &attr)) << "absence is no attr";
  EXPECT_FALSE(cache_.GetLastAttr("/d/never", &attr));
  EXPECT_EQ(cache_.ShareListing("/d"), nullptr);
  std::shared_ptr<const Listing> last = cache_.ShareLastListing("/d");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->count("f"), 1u);
  // Dropped is gone, even as a hint.
  cache_.DropAttr("/d/f");
  cache_.DropListing("/d");
  EXPECT_FALSE(cache_.GetLastAttr("/d/f", &attr));
  EXPECT_EQ(cache_.ShareLastListing("/d"), nullptr);
}

TEST_F(MetadataCacheTest, NonPositiveLifetimesStoreNothing) {
  uint64_t epoch = cache_.epoch();
  cache_.PutAttr("/f", AttrOf(1), absl::ZeroDuration(), epoch);
  cache_.PutNegative("/n", absl::ZeroDuration(), epoch);
  cache_.PutSymlink("/l", "t", -absl::Seconds(1), epoch);
  cache_.PutListing("/d", Listing(), absl::ZeroDuration(), epoch);
  PutX("/f", "user.x", "v", absl::ZeroDuration());
  cache_.PutNewDirectory("/new", absl::ZeroDuration());
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(MetadataCacheTest, NegativeEntries) {
  cache_.PutNegative("/n", kLong, cache_.epoch());
  EXPECT_EQ(InoOf("/n"), -1);
  uint64_t ino = 0;
  uint32_t nlink = 0;
  EXPECT_FALSE(cache_.GetIno("/n", &ino, &nlink));
  // What a creation returns replaces the negative entry.
  cache_.UpdateAttr("/n", AttrOf(4), kLong);
  EXPECT_EQ(InoOf("/n"), 4);
  // UpdateAttr with no lifetime forgets the attributes.
  cache_.UpdateAttr("/n", AttrOf(5), absl::ZeroDuration());
  EXPECT_EQ(InoOf("/n"), 0);
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(MetadataCacheTest, PutWithAnOldEpochIsIgnored) {
  uint64_t old = cache_.epoch();
  cache_.DropAttr("/unrelated");  // any change moves the epoch
  EXPECT_NE(cache_.epoch(), old);

  cache_.PutAttr("/f", AttrOf(1), kLong, old);
  cache_.PutNegative("/n", kLong, old);
  cache_.PutSymlink("/l", "t", kLong, old);
  cache_.PutListing("/d", ListingOf({"a"}), kLong, old);
  std::string value = "v";
  cache_.PutXattr("/f", "user.x", &value, kLong, old);
  EXPECT_EQ(cache_.size(), 0u);

  // The current epoch is accepted.
  cache_.PutAttr("/f", AttrOf(1), kLong, cache_.epoch());
  EXPECT_EQ(InoOf("/f"), 1);
}

TEST_F(MetadataCacheTest, EveryChangeMovesTheEpoch) {
  std::vector<std::function<void()>> changes = {
      [&] { cache_.UpdateAttr("/f", AttrOf(1), kLong); },
      [&] { cache_.DropAttr("/f"); },
      [&] { cache_.DropListing("/d"); },
      [&] { cache_.ListingAdd("/d", "x", {}); },
      [&] { cache_.ListingRemove("/d", "x"); },
      [&] { cache_.PutNewDirectory("/d", kLong); },
      [&] { cache_.DropSubtree("/d"); },
      [&] { cache_.MarkRemoved("/d", kLong); },
      [&] { cache_.Rename("/a", "/b", false); },
      [&] { cache_.DropXattrs("/f"); },
      [&] { cache_.Clear(); },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    uint64_t before = cache_.epoch();
    changes[i]();
    EXPECT_NE(cache_.epoch(), before) << "change #" << i;
  }
}

TEST_F(MetadataCacheTest, Symlinks) {
  EXPECT_EQ(cache_.GetSymlink("/l"), std::nullopt);
  cache_.PutSymlink("/l", "../target", kLong, cache_.epoch());
  EXPECT_EQ(cache_.GetSymlink("/l"), "../target");
  // A symlink target does not make attributes.
  EXPECT_EQ(InoOf("/l"), 0);
}

// --- listings ----------------------------------------------------------------

TEST_F(MetadataCacheTest, ListingIsCopiedInAndOut) {
  Listing listing = ListingOf({"a", "b"});
  cache_.PutListing("/d", listing, kLong, cache_.epoch());
  listing.erase("a");  // the caller's copy is its own

  std::optional<Listing> got = cache_.GetListing("/d");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(NamesOf(*got), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(got->at("a").type, static_cast<uint32_t>(S_IFREG));
  EXPECT_EQ(got->at("a").ino, 100u);
  got->clear();
  EXPECT_EQ(cache_.GetListing("/d")->size(), 2u);
  EXPECT_EQ(cache_.GetListing("/other"), std::nullopt);
}

TEST_F(MetadataCacheTest, ListingKnows) {
  bool present = true;
  EXPECT_FALSE(cache_.ListingKnows("/d", "a", &present));
  Put("/d", 1);  // attributes alone are no listing
  EXPECT_FALSE(cache_.ListingKnows("/d", "a", &present));

  PutList("/d", {"a"});
  present = false;
  EXPECT_TRUE(cache_.ListingKnows("/d", "a", &present));
  EXPECT_TRUE(present);
  EXPECT_TRUE(cache_.ListingKnows("/d", "b", &present));
  EXPECT_FALSE(present);
}

TEST_F(MetadataCacheTest, ListingDistanceCountsPlacesForwardOnly) {
  PutList("/d", {"a", "b", "c", "d", "e"});
  EXPECT_EQ(cache_.ListingDistance("/d", "a", "b", 10), 1u);
  EXPECT_EQ(cache_.ListingDistance("/d", "a", "e", 10), 4u);
  EXPECT_EQ(cache_.ListingDistance("/d", "a", "e", 3), 0u);   // too far
  EXPECT_EQ(cache_.ListingDistance("/d", "c", "a", 10), 0u);  // backwards
  EXPECT_EQ(cache_.ListingDistance("/d", "c", "c", 10), 0u);
  EXPECT_EQ(cache_.ListingDistance("/d", "x", "z", 10), 0u);  // not listed
  EXPECT_EQ(cache_.ListingDistance("/d", "a", "bb", 10), 0u);
  EXPECT_EQ(cache_.ListingDistance("/e", "a", "b", 10), 0u);  // no listing
}

TEST_F(MetadataCacheTest, UncachedPathsInTakesEveryStepthName) {
  PutList("/d", {"a", "b", "c", "d", "e", "f", "g", "h"});
  Put("/d/e", 5);
  using Paths = std::vector<std::string>;
  // Every name after "b", round to the start, the cached one passed over.
  EXPECT_EQ(cache_.UncachedPathsIn("/d", "b", 10),
            (Paths{"/d/c", "/d/d", "/d/f", "/d/g", "/d/h", "/d/a"}));
  // Every second: d, f, h; not round to the start.
  EXPECT_EQ(cache_.UncachedPathsIn("/d", "b", 10, 2),
            (Paths{"/d/d", "/d/f", "/d/h"}));
  // Every third: e (cached) and h.
  EXPECT_EQ(cache_.UncachedPathsIn("/d", "b", 10, 3), (Paths{"/d/h"}));
  EXPECT_EQ(cache_.UncachedPathsIn("/d", "b", 1, 2), (Paths{"/d/d"}));
}

TEST_F(MetadataCacheTest, ListingEditsChangeOnlyExistingFreshListings) {
  PutList("/d", {"a"});
  cache_.ListingAdd("/d", "b", {S_IFDIR, 7});
  cache_.ListingRemove("/d", "a");
  std::optional<Listing> got = cache_.GetListing("/d");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(NamesOf(*got), std::vector<std::string>{"b"});
  EXPECT_EQ(got->at("b").type, static_cast<uint32_t>(S_IFDIR));
  EXPECT_EQ(got->at("b").ino, 7u);

  // No listing: an edit does not make one (it would claim every other name
  // absent).
  Put("/e", 2);
  cache_.ListingAdd("/e", "x", {});
  cache_.ListingAdd("/nothing", "x", {});
  EXPECT_FALSE(HasListing("/e"));
  EXPECT_FALSE(HasListing("/nothing"));
  cache_.ListingRemove("/nothing", "x");
  EXPECT_FALSE(HasListing("/nothing"));

  // An expired listing stays expired.
  PutList("/old", {"a"}, kShort);
  absl::SleepFor(kPastShort);
  cache_.ListingAdd("/old", "b", {});
  cache_.ListingRemove("/old", "a");
  bool present = false;
  EXPECT_FALSE(cache_.ListingKnows("/old", "b", &present));
  EXPECT_FALSE(HasListing("/old"));
}

TEST_F(MetadataCacheTest, NewDirectoryHasAnEmptyFreshListing) {
  cache_.PutNewDirectory("/d", kLong);
  std::optional<Listing> got = cache_.GetListing("/d");
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->empty());
  bool present = true;
  EXPECT_TRUE(cache_.ListingKnows("/d", "x", &present));
  EXPECT_FALSE(present);
}

// --- dropping ----------------------------------------------------------------

TEST_F(MetadataCacheTest, DropAttrAndDropListingAreIndependent) {
  Put("/d", 1);
  PutList("/d", {"a"});
  cache_.DropAttr("/d");
  EXPECT_EQ(InoOf("/d"), 0);
  EXPECT_TRUE(HasListing("/d"));

  Put("/d", 1);
  cache_.DropListing("/d");
  EXPECT_FALSE(HasListing("/d"));
  EXPECT_EQ(InoOf("/d"), 1);

  cache_.DropAttr("/d");
  EXPECT_EQ(cache_.size(), 0u);  // nothing left: the entry is gone
  cache_.PutNegative("/n", kLong, cache_.epoch());
  cache_.DropAttr("/n");
  EXPECT_EQ(InoOf("/n"), 0);
}

// --- hard links --------------------------------------------------------------

TEST_F(MetadataCacheTest, PathsWithInoAndGetIno) {
  Put("/a", 5, 2);
  Put("/dir/b", 5, 2);
  Put("/c", 6);
  cache_.PutNegative("/n", kLong, cache_.epoch());

  EXPECT_EQ(cache_.PathsWithIno(5, "/a"), std::vector<std::string>{"/dir/b"});
  EXPECT_EQ(cache_.PathsWithIno(5, ""),
            (std::vector<std::string>{"/a", "/dir/b"}));
  EXPECT_TRUE(cache_.PathsWithIno(7, "").empty());
  // Not hard links: directories (their link count counts subdirectories)
  // and files whose backend reports no inode number.
  cache_.PutAttr("/d1", AttrOf(9, S_IFDIR | 0755, 3), kLong, cache_.epoch());
  cache_.PutAttr("/d2", AttrOf(9, S_IFDIR | 0755, 3), kLong, cache_.epoch());
  EXPECT_TRUE(cache_.PathsWithIno(9, "/d1").empty());
  Put("/z1", 0, 2);
  Put("/z2", 0, 2);
  EXPECT_TRUE(cache_.PathsWithIno(0, "/z1").empty());

  uint64_t ino = 0;
  uint32_t nlink = 0;
  ASSERT_TRUE(cache_.GetIno("/a", &ino, &nlink));
  EXPECT_EQ(ino, 5u);
  EXPECT_EQ(nlink, 2u);
  EXPECT_FALSE(cache_.GetIno("/n", &ino, &nlink));
  EXPECT_FALSE(cache_.GetIno("/missing", &ino, &nlink));
}

TEST_F(MetadataCacheTest, PathsWithInoFollowsChangesRenamesAndDrops) {
  Put("/a", 5, 2);
  Put("/d/b", 5, 2);
  // The link count falls to one: no longer a hard link of anything.
  Put("/a", 5, 1);
  EXPECT_TRUE(cache_.PathsWithIno(5, "/d/b").empty());
  Put("/a", 5, 2);
  // Another file now has the name.
  Put("/a", 8, 2);
  EXPECT_TRUE(cache_.PathsWithIno(5, "/d/b").empty());
  EXPECT_EQ(cache_.PathsWithIno(8, ""), std::vector<std::string>{"/a"});
  // Names move with their directory.
  cache_.Rename("/d", "/e", false);
  EXPECT_EQ(cache_.PathsWithIno(5, ""), std::vector<std::string>{"/e/b"});
  cache_.Rename("/a", "/e/b", true);  // exchange
  EXPECT_EQ(cache_.PathsWithIno(5, ""), std::vector<std::string>{"/a"});
  EXPECT_EQ(cache_.PathsWithIno(8, ""), std::vector<std::string>{"/e/b"});
  cache_.PutNegative("/a", kLong, cache_.epoch());
  EXPECT_TRUE(cache_.PathsWithIno(5, "").empty());
  cache_.MarkRemoved("/e", kLong);
  EXPECT_TRUE(cache_.PathsWithIno(8, "").empty());
}

// PathsWithIno answers from an index kept beside the entries: after any
// sequence of changes (evictions included) it must say what a scan of the
// entries would.
TEST(MetadataCacheLinks, PathsWithInoAgreesWithTheEntriesAfterRandomChanges) {
  MetadataCache cache({.max_entries = 12, .max_bytes = size_t{64} << 20});
  // Renames swap top-level names of one kind, so every path stays in
  // `universe`.
  std::vector<std::string> dirs = {"/d0", "/d1", "/d2"};
  std::vector<std::string> files = {"/f0", "/f1", "/f2"};
  std::vector<std::string> universe = files;
  for (const std::string& d : dirs) {
    universe.push_back(d);
    for (const std::string& f : files) universe.push_back(d + f);
  }
  uint32_t seed = 12345;
  auto next = [&seed](uint32_t n) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % n;
  };
  for (int step = 0; step < 20000; ++step) {
    const std::string& path = universe[next(universe.size())];
    switch (next(9)) {
      case 0:
      case 1:
      case 2: {
        uint32_t mode = next(4) == 0 ? (S_IFDIR | 0755) : (S_IFREG | 0644);
        cache.PutAttr(path, AttrOf(next(4), mode, 1 + next(3)), kLong,
                      cache.epoch());
        break;
      }
      case 3:
        cache.UpdateAttr(path, AttrOf(next(4), S_IFREG | 0644, 1 + next(3)),
                         next(5) == 0 ? absl::ZeroDuration() : kLong);
        break;
      case 4:
        cache.DropAttr(path);
        break;
      case 5:
        cache.PutNegative(path, kLong, cache.epoch());
        break;
      case 6:
        if (next(4) == 0) {
          cache.DropSubtree(path);
        } else {
          cache.MarkRemoved(path, next(2) == 0 ? kLong : absl::ZeroDuration());
        }
        break;
      default: {
        const std::vector<std::string>& kind = next(2) == 0 ? dirs : files;
        const std::string& from = kind[next(3)];
        const std::string& to = kind[next(3)];
        if (from != to) cache.Rename(from, to, next(2) == 0);
        break;
      }
    }
    if (step % 500 == 0 && next(2) == 0) cache.Clear();
    for (uint64_t ino = 0; ino < 4; ++ino) {
      std::vector<std::string> want;
      for (const std::string& p : universe) {
        v1::Attr attr;
        if (ino != 0 && cache.GetAttr(p, &attr) == AttrLookup::kHit &&
            attr.ino() == ino && attr.nlink() > 1 && !S_ISDIR(attr.mode())) {
          want.push_back(p);
        }
      }
      std::sort(want.begin(), want.end());
      ASSERT_EQ(cache.PathsWithIno(ino, ""), want)
          << "ino " << ino << " after step " << step;
    }
  }
}

}  // namespace
}  // namespace fusehost
