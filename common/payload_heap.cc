#include "common/payload_heap.h"

#include <malloc.h>

#include <cstdlib>

namespace fusehost {
namespace {

// Above the largest payload with its framing (the daemon asks at most 1 MiB
// per read or write); glibc allows up to 32 MiB here.
constexpr int kMmapThreshold = 32 << 20;
// Free memory at the top of a heap beyond this goes back to the kernel:
// room for the copies of a few payloads in flight, little for a daemon
// whose memory is mostly its caches.
constexpr int kTrimThreshold = 8 << 20;

}  // namespace

void KeepPayloadsInHeap() {
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

}  // namespace fusehost
