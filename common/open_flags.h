// Open flags as the kernel sends them in FUSE requests.

#ifndef FUSE_HOSTD_COMMON_OPEN_FLAGS_H_
#define FUSE_HOSTD_COMMON_OPEN_FLAGS_H_

namespace fusehost {

// O_LARGEFILE as the kernel sends it: the C library defines O_LARGEFILE as
// 0 for 64-bit programs, but the kernel sets its own bit in every open.
inline constexpr int kKernelLargeFile = 0100000;

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_OPEN_FLAGS_H_
