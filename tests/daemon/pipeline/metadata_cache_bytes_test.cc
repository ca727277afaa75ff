// MetadataCache's byte bound: what entries are counted for, that the count
// returns to zero when they go, and that a backend's big answers cannot
// grow the cache past max_bytes.

#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

constexpr absl::Duration kLong = absl::Seconds(60);

v1::Attr AttrWith(uint64_t ino, uint32_t mode, uint32_t nlink) {
  v1::Attr attr;
  attr.set_ino(ino);
  attr.set_mode(mode);
  attr.set_nlink(nlink);
  return attr;
}
v1::Attr DirAttr(uint64_t ino) { return AttrWith(ino, S_IFDIR | 0755, 2); }
v1::Attr FileAttr(uint64_t ino) { return AttrWith(ino, S_IFREG | 0644, 1); }

// `count` names of `name_bytes` bytes each.
Listing ListingOf(int count, size_t name_bytes) {
  Listing listing;
  for (int i = 0; i < count; ++i) {
    std::string name = absl::StrCat(i, "-");
    name.resize(name_bytes, 'n');
    listing[name] = ListingEntry{S_IFREG, static_cast<uint64_t>(i + 10)};
  }
  return listing;
}

MetadataCache::Options Bounded(size_t max_bytes) {
  MetadataCache::Options options;
  options.max_bytes = max_bytes;
  return options;
}

TEST(MetadataCacheBytes, EveryKindOfEntryCountsAndTheCountReturnsToZero) {
  MetadataCache cache{MetadataCache::Options()};
  EXPECT_EQ(cache.bytes(), 0u);
  cache.PutAttr("/a", DirAttr(2), kLong, cache.epoch());
  size_t one_attr = cache.bytes();
  EXPECT_GT(one_attr, 0u);
  Listing listing = ListingOf(100, 40);
  size_t listing_bytes = MetadataCache::ListingBytes(listing);
  EXPECT_GE(listing_bytes, 100u * 40);
  cache.PutListing("/a", listing, kLong, cache.epoch());
  EXPECT_GE(cache.bytes(), one_attr + listing_bytes);
  std::string target(3000, 't');
  cache.PutSymlink("/a/link", target, kLong, cache.epoch());
  std::string value(2000, 'v');
  cache.PutXattr("/a", "user.big", &value, kLong, cache.epoch());
  EXPECT_GE(cache.bytes(), one_attr + listing_bytes + 5000);

  // Edits of a listing are counted as they happen.
  size_t before = cache.bytes();
  cache.ListingAdd("/a", std::string(200, 'x'), ListingEntry{S_IFREG, 7});
  EXPECT_GE(cache.bytes(), before + 200);
  cache.ListingRemove("/a", std::string(200, 'x'));
  EXPECT_EQ(cache.bytes(), before);

  // A rename moves what is counted; removing everything uncounts it all.
  cache.Rename("/a", "/b", /*exchange=*/false);
  EXPECT_GT(cache.bytes(), listing_bytes);
  cache.DropXattrs("/b");
  cache.DropListing("/b");
  cache.DropAttr("/b");
  cache.DropSubtree("/b");
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(MetadataCacheBytes, AListingTooBigForTheBoundIsNotKept) {
  MetadataCache cache(Bounded(1 << 20));
  // About 2 MiB of names: more than an eighth of the bound.
  cache.PutListing("/big", ListingOf(20000, 100), kLong, cache.epoch());
  EXPECT_FALSE(cache.GetListing("/big").has_value());
  EXPECT_LE(cache.bytes(), size_t{1} << 20);
  // A small one is.
  cache.PutListing("/small", ListingOf(10, 10), kLong, cache.epoch());
  EXPECT_TRUE(cache.GetListing("/small").has_value());
}

TEST(MetadataCacheBytes, ManyBigAnswersStayWithinTheBound) {
  const size_t bound = 1 << 20;
  MetadataCache cache(Bounded(bound));
  // Listings just under an eighth of the bound each, many more than fit.
  for (int i = 0; i < 100; ++i) {
    cache.PutListing(absl::StrCat("/d", i), ListingOf(900, 100), kLong,
                     cache.epoch());
    ASSERT_LE(cache.bytes(), bound) << "after listing " << i;
  }
  // Symlink targets and extended attribute values as well.
  std::string target(4000, 't'), value(4000, 'v');
  for (int i = 0; i < 1000; ++i) {
    std::string path = absl::StrCat("/f", i);
    cache.PutSymlink(path, target, kLong, cache.epoch());
    cache.PutAttr(path, FileAttr(i + 2), kLong,
                  cache.epoch());
    cache.PutXattr(path, "user.v", &value, kLong, cache.epoch());
    ASSERT_LE(cache.bytes(), bound) << "after file " << i;
  }
  // The newest are there: eviction makes room rather than refusing.
  EXPECT_TRUE(cache.GetSymlink("/f999").has_value());
}

TEST(MetadataCacheBytes, OnePathKeepsAFewExtendedAttributeAnswers) {
  MetadataCache cache{MetadataCache::Options()};
  std::string value = "v";
  cache.PutAttr("/f", FileAttr(2), kLong, cache.epoch());
  for (size_t i = 0; i < 10 * MetadataCache::kMaxXattrAnswers; ++i) {
    cache.PutXattr("/f", absl::StrCat("user.n", i), &value, kLong,
                   cache.epoch());
  }
  std::string got;
  EXPECT_EQ(cache.GetXattr("/f", "user.n0", &got),
            MetadataCache::AttrLookup::kHit);
  EXPECT_EQ(cache.GetXattr("/f", absl::StrCat("user.n",
                                              MetadataCache::kMaxXattrAnswers),
                           &got),
            MetadataCache::AttrLookup::kMiss);
  EXPECT_LT(cache.bytes(), 64u * MetadataCache::kMaxXattrAnswers + 8192);
}

}  // namespace
}  // namespace fusehost
