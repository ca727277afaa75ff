// A directory listing as the daemon's cache keeps it: names with their
// file type and inode number. Attributes are kept per path elsewhere (they
// expire and change on their own).
//
// Thread use: a Listing is a plain value; a cached one is shared read-only
// (std::shared_ptr<const Listing>) and copied before any change.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_LISTING_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_LISTING_H_

#include <cstdint>
#include <string>

#include "absl/container/btree_map.h"
#include "common/compact_string.h"

namespace fusehost {

struct ListingEntry {
  uint32_t type = 0;  // S_IFMT bits, 0 if unknown
  uint64_t ino = 0;   // backend's st_ino, 0 if unknown
};

// Name -> entry. Ordered and searchable: creations and removals through the
// daemon edit a cached listing in place, and a lookup of a name that is not
// in a fresh listing is answered ENOENT without asking the backend.
using Listing = absl::btree_map<CompactString, ListingEntry, CompactStringLess>;

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_LISTING_H_
