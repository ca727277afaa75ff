// The clock the parts of MetadataCache (metadata_cache*.cc) share. Not for
// use outside them.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_CLOCK_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_CLOCK_H_

#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fusehost {
namespace metadata_cache_clock {

inline int64_t NowNanos() { return absl::ToUnixNanos(absl::Now()); }

// Expiry time for a lifetime; positive lifetimes only.
inline int64_t ExpiryAfter(absl::Duration ttl) {
  return absl::ToUnixNanos(absl::Now() + ttl);
}

}  // namespace metadata_cache_clock
}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_CLOCK_H_
