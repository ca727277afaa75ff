#include "common/one_malloc_arena.h"

#include <malloc.h>

#include <cstdlib>

namespace fusehost {

void UseOneMallocArena() {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr ||
      std::getenv("GLIBC_TUNABLES") != nullptr) {
    return;
  }
  mallopt(M_ARENA_MAX, 1);
}

}  // namespace fusehost
