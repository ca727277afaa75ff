// MetadataCache: lifetimes, the epoch rule, listings, extended attributes,
// subtree operations, renames, hard-link queries, eviction and thread safety.

#include "daemon/pipeline/metadata_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

using AttrLookup = MetadataCache::AttrLookup;

// Long enough never to expire during a test.
constexpr absl::Duration kLong = absl::Seconds(60);
// Short lifetimes for expiry tests, and a sleep safely past them.
constexpr absl::Duration kShort = absl::Milliseconds(50);
constexpr absl::Duration kPastShort = absl::Milliseconds(120);

v1::Attr AttrOf(uint64_t ino, uint32_t mode = S_IFREG | 0644,
                uint32_t nlink = 1) {
  v1::Attr attr;
  attr.set_ino(ino);
  attr.set_mode(mode);
  attr.set_nlink(nlink);
  attr.set_size(ino * 10);
  attr.mutable_mtime()->set_sec(1700000000);
  attr.mutable_mtime()->set_nsec(123);
  return attr;
}

Listing ListingOf(const std::vector<std::string>& names) {
  Listing listing;
  uint64_t ino = 100;
  for (const std::string& name : names) listing[name] = {S_IFREG, ino++};
  return listing;
}

std::vector<std::string> NamesOf(const Listing& listing) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : listing) names.push_back(name);
  return names;
}

class MetadataCacheTest : public ::testing::Test {
 protected:
  // Caches attributes of `path` (inode `ino`) at the current epoch.
  void Put(const std::string& path, uint64_t ino, uint32_t nlink = 1) {
    cache_.PutAttr(path, AttrOf(ino, S_IFREG | 0644, nlink), kLong,
                   cache_.epoch());
  }
  void PutList(const std::string& dir, const std::vector<std::string>& names,
               absl::Duration ttl = kLong) {
    cache_.PutListing(dir, ListingOf(names), ttl, cache_.epoch());
  }
  void PutX(const std::string& path, const std::string& name,
            const std::optional<std::string>& value,
            absl::Duration ttl = kLong) {
    cache_.PutXattr(path, name, value ? &*value : nullptr, ttl,
                    cache_.epoch());
  }

  // The cached inode number of `path`, 0 on a miss, -1 when negative.
  int64_t InoOf(const std::string& path) {
    v1::Attr attr;
    switch (cache_.GetAttr(path, &attr)) {
      case AttrLookup::kHit:
        return static_cast<int64_t>(attr.ino());
      case AttrLookup::kNegative:
        return -1;
      case AttrLookup::kMiss:
        return 0;
    }
    return 0;
  }
  // Whether `dir` has a fresh listing.
  bool HasListing(const std::string& dir) {
    return cache_.GetListing(dir).has_value();
  }
  AttrLookup Xattr(const std::string& path, const std::string& name,
                   std::string* value = nullptr) {
    std::string ignored;
    return cache_.GetXattr(path, name, value ? value : &ignored);
  }

  MetadataCache cache_{MetadataCache::Options{}};
};

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

// --- extended attributes -----------------------------------------------------

TEST_F(MetadataCacheTest, Xattrs) {
  EXPECT_EQ(Xattr("/f", "user.a"), AttrLookup::kMiss);
  PutX("/f", "user.a", "value");
  PutX("/f", "security.capability", std::nullopt);
  PutX("/f", "", std::string("user.a\0", 7));  // the listxattr answer

  std::string value;
  EXPECT_EQ(Xattr("/f", "user.a", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "value");
  EXPECT_EQ(Xattr("/f", "security.capability"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/f", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, std::string("user.a\0", 7));
  // The list answers for names never asked, except trusted.* ones, which
  // lists given to unprivileged callers leave out.
  EXPECT_EQ(Xattr("/f", "user.unasked"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/f", "trusted.unasked"), AttrLookup::kMiss);
  EXPECT_EQ(Xattr("/g", "user.a"), AttrLookup::kMiss);

  // An empty value is a value.
  PutX("/f", "user.empty", "");
  EXPECT_EQ(Xattr("/f", "user.empty", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "");
}

TEST_F(MetadataCacheTest, NameListInAttrAnswersAbsentNames) {
  v1::Attr none = AttrOf(7, S_IFREG | 0644, 1);
  none.set_xattr_names_known(true);
  cache_.PutAttr("/none", none, kLong, cache_.epoch());
  v1::Attr some = AttrOf(8, S_IFREG | 0644, 1);
  some.set_xattr_names_known(true);
  some.add_xattr_names("user.a");
  some.add_xattr_names("security.selinux");
  cache_.PutAttr("/some", some, kLong, cache_.epoch());
  Put("/unlisted", 9);  // names not known

  std::string value = "x";
  int err = 0;
  EXPECT_EQ(cache_.GetXattr("/none", "system.posix_acl_access", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, ENODATA);
  EXPECT_EQ(Xattr("/none", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "");
  EXPECT_EQ(Xattr("/none", "trusted.t"), AttrLookup::kMiss);

  EXPECT_EQ(Xattr("/some", "system.posix_acl_access"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/some", "user.a"), AttrLookup::kMiss);  // value unknown
  EXPECT_EQ(Xattr("/some", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, std::string("user.a\0security.selinux\0", 24));

  EXPECT_EQ(Xattr("/unlisted", "user.a"), AttrLookup::kMiss);

  // A value fetched later joins the list's answers.
  PutX("/none", "trusted.t", std::nullopt);
  EXPECT_EQ(Xattr("/none", "trusted.t"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/none", "user.b"), AttrLookup::kNegative);

  // setxattr through the daemon (or a CHANGED notice) forgets it all.
  cache_.DropXattrs("/none");
  EXPECT_EQ(Xattr("/none", "user.b"), AttrLookup::kMiss);
  EXPECT_EQ(InoOf("/none"), 7);

  // Attributes without a list leave earlier answers alone; a malformed list
  // is ignored.
  v1::Attr bad = AttrOf(8, S_IFREG | 0644, 1);
  bad.set_xattr_names_known(true);
  bad.add_xattr_names(std::string("a\0b", 3));
  cache_.PutAttr("/some", bad, kLong, cache_.epoch());
  EXPECT_EQ(Xattr("/some", "user.zzz"), AttrLookup::kMiss);
}

TEST_F(MetadataCacheTest, XattrAbsenceKeepsItsErrno) {
  cache_.PutXattr("/f", "security.selinux", nullptr, absl::Seconds(10),
                  cache_.epoch(), EOPNOTSUPP);
  cache_.PutXattr("/f", "user.none", nullptr, absl::Seconds(10), cache_.epoch());
  std::string value;
  int err = 0;
  EXPECT_EQ(cache_.GetXattr("/f", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(cache_.GetXattr("/f", "user.none", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, ENODATA);
}

TEST_F(MetadataCacheTest, UnsupportedXattrNameIsAnsweredForEveryPath) {
  v1::Attr none = AttrOf(7, S_IFREG | 0644, 1);
  none.set_xattr_names_known(true);
  cache_.PutAttr("/f", none, kLong, cache_.epoch());
  cache_.PutUnsupportedXattr("security.selinux", absl::Milliseconds(50));
  std::string value;
  int err = 0;
  // Not ENODATA from the name list: the filesystem lacks the namespace.
  EXPECT_EQ(cache_.GetXattr("/f", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(cache_.GetXattr("/never/seen", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(Xattr("/never/seen", "security.other"), AttrLookup::kMiss);

  cache_.XattrSupported("security.selinux");  // a setxattr of it worked
  EXPECT_EQ(Xattr("/never/seen", "security.selinux"), AttrLookup::kMiss);

  cache_.PutUnsupportedXattr("security.selinux", absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(40));
  EXPECT_EQ(Xattr("/never/seen", "security.selinux"), AttrLookup::kMiss);
}

TEST_F(MetadataCacheTest, DropXattrsKeepsAttributes) {
  Put("/f", 3);
  PutX("/f", "user.a", "v");
  PutX("/f", "user.b", std::nullopt);
  cache_.DropXattrs("/f");
  EXPECT_EQ(Xattr("/f", "user.a"), AttrLookup::kMiss);
  EXPECT_EQ(Xattr("/f", "user.b"), AttrLookup::kMiss);
  EXPECT_EQ(InoOf("/f"), 3);
  // An entry that held only extended attributes goes away.
  PutX("/x", "user.a", "v");
  cache_.DropXattrs("/x");
  EXPECT_EQ(cache_.size(), 1u);
}

TEST_F(MetadataCacheTest, LargeXattrValuesAreNotKept) {
  PutX("/f", "user.max", std::string(MetadataCache::kMaxCachedXattr, 'x'));
  PutX("/f", "user.big",
       std::string(MetadataCache::kMaxCachedXattr + 1, 'x'));
  std::string value;
  EXPECT_EQ(Xattr("/f", "user.max", &value), AttrLookup::kHit);
  EXPECT_EQ(value.size(), MetadataCache::kMaxCachedXattr);
  EXPECT_EQ(Xattr("/f", "user.big"), AttrLookup::kMiss);
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

// /a, its descendants, and neighbours that share its prefix.
class MetadataCacheTreeTest : public MetadataCacheTest {
 protected:
  void SetUp() override {
    Put("/", 1);
    Put("/a", 2);
    PutList("/a", {"x"});
    Put("/a/x", 3);
    Put("/a/x/y", 4);
    cache_.PutSymlink("/a/x/link", "t", kLong, cache_.epoch());
    Put("/a-b", 5);
    Put("/ab", 6);
    Put("/a0", 7);
    Put("/z", 8);
    Put("/z/old", 9);
  }

  void ExpectNeighboursKept() {
    EXPECT_EQ(InoOf("/"), 1);
    EXPECT_EQ(InoOf("/a-b"), 5);
    EXPECT_EQ(InoOf("/ab"), 6);
    EXPECT_EQ(InoOf("/a0"), 7);
  }
};

TEST_F(MetadataCacheTreeTest, DropSubtreeTouchesOnlyThePathAndBelow) {
  cache_.DropSubtree("/a");
  EXPECT_EQ(InoOf("/a"), 0);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  EXPECT_EQ(cache_.GetSymlink("/a/x/link"), std::nullopt);
  ExpectNeighboursKept();
  EXPECT_EQ(InoOf("/z/old"), 9);
  EXPECT_EQ(cache_.size(), 6u);
}

TEST_F(MetadataCacheTreeTest, DropSubtreeOfRootClearsAll) {
  cache_.DropSubtree("/");
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(MetadataCacheTreeTest, ClearForgetsAll) {
  cache_.Clear();
  EXPECT_EQ(cache_.size(), 0u);
  EXPECT_EQ(InoOf("/a"), 0);
}

TEST_F(MetadataCacheTreeTest, MarkRemovedLeavesANegativeEntry) {
  cache_.MarkRemoved("/a", kLong);
  EXPECT_EQ(InoOf("/a"), -1);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  ExpectNeighboursKept();

  cache_.MarkRemoved("/z", absl::ZeroDuration());  // no negative caching
  EXPECT_EQ(InoOf("/z"), 0);
  EXPECT_EQ(InoOf("/z/old"), 0);
}

TEST_F(MetadataCacheTreeTest, RenameMovesTheSubtreeAndReplacesTheTarget) {
  cache_.Rename("/a", "/z", /*exchange=*/false);
  EXPECT_EQ(InoOf("/z"), 2);
  EXPECT_TRUE(HasListing("/z"));
  EXPECT_EQ(InoOf("/z/x"), 3);
  EXPECT_EQ(InoOf("/z/x/y"), 4);
  EXPECT_EQ(cache_.GetSymlink("/z/x/link"), "t");
  EXPECT_EQ(InoOf("/z/old"), 0);  // replaced
  EXPECT_EQ(InoOf("/a"), 0);
  EXPECT_FALSE(HasListing("/a"));
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a/x/y"), 0);
  ExpectNeighboursKept();
}

TEST_F(MetadataCacheTreeTest, RenameIntoANewName) {
  cache_.Rename("/a/x", "/n", /*exchange=*/false);
  EXPECT_EQ(InoOf("/n"), 3);
  EXPECT_EQ(InoOf("/n/y"), 4);
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_EQ(InoOf("/a"), 2);  // the parent itself is the caller's business
}

TEST_F(MetadataCacheTreeTest, RenameExchangeSwaps) {
  cache_.Rename("/a", "/z", /*exchange=*/true);
  EXPECT_EQ(InoOf("/z"), 2);
  EXPECT_EQ(InoOf("/z/x/y"), 4);
  EXPECT_TRUE(HasListing("/z"));
  EXPECT_EQ(InoOf("/z/old"), 0);
  EXPECT_EQ(InoOf("/a"), 8);
  EXPECT_EQ(InoOf("/a/old"), 9);
  EXPECT_EQ(InoOf("/a/x"), 0);
  EXPECT_FALSE(HasListing("/a"));
  ExpectNeighboursKept();
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

  uint64_t ino = 0;
  uint32_t nlink = 0;
  ASSERT_TRUE(cache_.GetIno("/a", &ino, &nlink));
  EXPECT_EQ(ino, 5u);
  EXPECT_EQ(nlink, 2u);
  EXPECT_FALSE(cache_.GetIno("/n", &ino, &nlink));
  EXPECT_FALSE(cache_.GetIno("/missing", &ino, &nlink));
}

// --- bounds and threads ------------------------------------------------------

std::string FileName(const char* prefix, int i) {
  return absl::StrFormat("/%s%03d", prefix, i);
}

TEST(MetadataCacheEvictionTest, KeepsTheBoundAndPrefersReferencedEntries) {
  constexpr int kMax = 100;
  MetadataCache cache(MetadataCache::Options{kMax});
  for (int i = 0; i < kMax; ++i) {
    cache.PutAttr(FileName("f", i), AttrOf(i + 1), kLong, cache.epoch());
  }
  EXPECT_EQ(cache.size(), static_cast<size_t>(kMax));
  v1::Attr attr;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(cache.GetAttr(FileName("f", i), &attr), AttrLookup::kHit);
  }
  for (int i = 0; i < 20; ++i) {
    cache.PutAttr(FileName("g", i), AttrOf(1000 + i), kLong, cache.epoch());
    EXPECT_LE(cache.size(), static_cast<size_t>(kMax));
  }
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(cache.GetAttr(FileName("f", i), &attr), AttrLookup::kHit)
        << FileName("f", i);
  }
  int untouched_kept = 0;
  for (int i = 50; i < kMax; ++i) {
    untouched_kept += cache.GetAttr(FileName("f", i), &attr) == AttrLookup::kHit;
  }
  EXPECT_LT(untouched_kept, 50);
  // The newest entry is always there.
  EXPECT_EQ(cache.GetAttr(FileName("g", 19), &attr), AttrLookup::kHit);
}

// Below ten entries a tenth is zero entries: the bound must hold anyway.
TEST(MetadataCacheEvictionTest, KeepsASmallBound) {
  for (size_t max : {1, 5, 9}) {
    MetadataCache cache(MetadataCache::Options{max});
    size_t largest = 0;
    for (int i = 0; i < 20; ++i) {
      cache.PutAttr(FileName("f", i), AttrOf(i + 1), kLong, cache.epoch());
      largest = std::max(largest, cache.size());
    }
    EXPECT_LE(largest, max) << "max_entries " << max;
  }
}

TEST(MetadataCacheEvictionTest, RenameKeepsTheBound) {
  constexpr int kMax = 20;
  MetadataCache cache(MetadataCache::Options{kMax});
  for (int i = 0; i < kMax; ++i) {
    cache.PutAttr(absl::StrCat("/a/", i), AttrOf(i + 1), kLong, cache.epoch());
  }
  cache.Rename("/a", "/b", false);
  EXPECT_LE(cache.size(), static_cast<size_t>(kMax));
  cache.Rename("/b", "/a", true);
  EXPECT_LE(cache.size(), static_cast<size_t>(kMax));
}

TEST(MetadataCacheThreadsTest, ConcurrentUseStaysBounded) {
  constexpr size_t kMax = 64;
  MetadataCache cache(MetadataCache::Options{kMax});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&cache, t, kMax] {
      v1::Attr attr;
      for (int i = 0; i < 3000; ++i) {
        std::string dir = absl::StrCat("/d", (t + i) % 4);
        std::string path = absl::StrCat(dir, "/", i % 97);
        switch (i % 8) {
          case 0:
          case 1:
            cache.PutAttr(path, AttrOf(i), kLong, cache.epoch());
            break;
          case 2:
            cache.GetAttr(path, &attr);
            break;
          case 3:
            cache.PutListing(dir, ListingOf({"1", "2"}), kLong, cache.epoch());
            cache.ListingAdd(dir, "3", {});
            break;
          case 4:
            cache.GetListing(dir);
            cache.DropAttr(path);
            break;
          case 5:
            cache.MarkRemoved(path, kLong);
            break;
          case 6:
            cache.Rename(path, absl::StrCat(dir, "/r", i % 5), i % 16 == 6);
            break;
          case 7:
            if (i % 64 == 7) cache.DropSubtree(dir);
            cache.PathsWithIno(i, path);
            break;
        }
        if (i % 100 == 0) {
          EXPECT_LE(cache.size(), kMax);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(cache.size(), kMax);
}

}  // namespace
}  // namespace fusehost
