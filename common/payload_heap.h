// Keeps the buffers of read and write payloads in the malloc heap.
//
// Every op that carries file data allocates and frees blocks of up to 1 MiB,
// several times (the data, the message holding it, its wire form). glibc
// serves blocks that large with a fresh mmap each time, and hands freed
// memory at the top of a heap back to the kernel, so every such block cost
// a page fault per 4 KiB touched: a 1 MiB read from a backend, measured
// one message at a time on this project's 2-core machines, took 3.5 ms
// instead of 1.0 ms with both ends keeping them, and 17 ms instead of 3 ms
// from the Python SDK.
//
// Call once, early, before threads allocate much: it sets malloc's mmap
// threshold above any payload and keeps what was freed for reuse (up to a
// bound), unless GLIBC_TUNABLES is set, in which case the environment's
// choice stands. Freed payload blocks then stay in the process, as much as
// was once in use at the same time.

#ifndef FUSE_HOSTD_COMMON_PAYLOAD_HEAP_H_
#define FUSE_HOSTD_COMMON_PAYLOAD_HEAP_H_

namespace fusehost {

void KeepPayloadsInHeap();

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_PAYLOAD_HEAP_H_
