// The fixture of the MetadataCache tests (metadata_cache*_test.cc): a
// cache with helpers that put and look up attributes, listings and extended
// attributes, and lifetimes long and short.

#ifndef FUSE_HOSTD_TESTS_DAEMON_PIPELINE_METADATA_CACHE_FIXTURE_H_
#define FUSE_HOSTD_TESTS_DAEMON_PIPELINE_METADATA_CACHE_FIXTURE_H_

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

using AttrLookup = MetadataCache::AttrLookup;

// Long enough never to expire during a test.
constexpr absl::Duration kLong = absl::Seconds(60);
// Short lifetimes for expiry tests, and a sleep safely past them.
constexpr absl::Duration kShort = absl::Milliseconds(50);
constexpr absl::Duration kPastShort = absl::Milliseconds(120);

inline v1::Attr AttrOf(uint64_t ino, uint32_t mode = S_IFREG | 0644,
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

inline Listing ListingOf(const std::vector<std::string>& names) {
  Listing listing;
  uint64_t ino = 100;
  for (const std::string& name : names) listing[name] = {S_IFREG, ino++};
  return listing;
}

inline std::vector<std::string> NamesOf(const Listing& listing) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : listing) names.push_back(name.str());
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

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_PIPELINE_METADATA_CACHE_FIXTURE_H_
