// KeepPayloadsInHeap: a payload-sized block comes from the heap, not from a
// mapping of its own, and a freed one is there for the next.

#include "common/payload_heap.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

constexpr size_t kPayload = 4 << 20;

// Blocks malloc gave their own mapping, now.
size_t MappedBlocks() { return mallinfo2().hblks; }

// Allocates and touches a payload-sized block; whether it got a mapping of
// its own.
bool PayloadMapped() {
  const size_t before = MappedBlocks();
  char* block = static_cast<char*>(std::malloc(kPayload));
  std::memset(block, 1, kPayload);
  const bool mapped = MappedBlocks() > before;
  std::free(block);
  return mapped;
}

TEST(PayloadHeapTest, PayloadsComeFromTheHeap) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "only glibc's allocator has these settings";
#endif
  if (std::getenv("GLIBC_TUNABLES") != nullptr) {
    GTEST_SKIP() << "GLIBC_TUNABLES set: the environment's choice stands";
  }
  // glibc's own defaults map a block this size (the test binary has freed
  // none so large yet, which would raise its threshold).
  ASSERT_TRUE(PayloadMapped());
  KeepPayloadsInHeap();
  EXPECT_FALSE(PayloadMapped());
  EXPECT_FALSE(PayloadMapped());
}

}  // namespace
}  // namespace fusehost
