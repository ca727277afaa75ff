// UseOneMallocArena: threads started after it allocate from the one arena
// the process started with, not from arenas of their own.

#include "common/one_malloc_arena.h"

#include <malloc.h>
#include <stdio.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

// The number of arenas malloc has, from malloc_info's report.
int Arenas() {
  char* text = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&text, &size);
  if (out == nullptr) return -1;
  malloc_info(0, out);
  fclose(out);
  const std::string report(text, size);
  free(text);
  int arenas = 0;
  for (size_t at = report.find("<heap nr="); at != std::string::npos;
       at = report.find("<heap nr=", at + 1)) {
    ++arenas;
  }
  return arenas;
}

TEST(OneMallocArenaTest, ThreadsShareTheFirstArena) {
  ASSERT_EQ(std::getenv("MALLOC_ARENA_MAX"), nullptr);
  ASSERT_EQ(std::getenv("GLIBC_TUNABLES"), nullptr);
  UseOneMallocArena();
  // Threads that allocate at once: each would get an arena of its own.
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([] {
      std::vector<void*> blocks;
      for (int j = 0; j < 64; ++j) blocks.push_back(std::malloc(4096));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      for (void* b : blocks) std::free(b);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(Arenas(), 1);
}

}  // namespace
}  // namespace fusehost
