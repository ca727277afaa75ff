// Has every thread of the process allocate from one malloc arena.
//
// glibc gives threads arenas of their own (up to 8 per core). The daemon's
// long-lived memory, a node and a cache entry per file, is allocated by
// whichever thread handled the request or the reply, amid short-lived
// buffers of that thread; what those leave free in one arena serves no
// other. Over a listed tree of 201,002 entries (1,000 directories x 200
// files, find and ls -lR through the C++ loopback), the daemon grew by
// 331-340 bytes per entry with per-thread arenas and by 284-285 with one,
// with find and ls -lR as fast (3.0-3.3 s and 6.7-8.5 s either way, on a
// 2-core machine). Small blocks still come from each thread's own cache
// (tcache) without the arena's lock.
//
// Call once, before other threads start. MALLOC_ARENA_MAX or GLIBC_TUNABLES
// in the environment take precedence.

#ifndef FUSE_HOSTD_COMMON_ONE_MALLOC_ARENA_H_
#define FUSE_HOSTD_COMMON_ONE_MALLOC_ARENA_H_

namespace fusehost {

void UseOneMallocArena();

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_ONE_MALLOC_ARENA_H_
