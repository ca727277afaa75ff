// MetadataCache's bound on its size (eviction prefers unreferenced entries)
// and its use from many threads at once.

#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/metadata_cache_fixture.h"

namespace fusehost {
namespace {

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
