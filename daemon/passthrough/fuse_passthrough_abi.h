// The parts of the FUSE kernel protocol that passthrough needs, written out
// here because the system's headers predate them: Debian's libfuse 3.14 and
// its <linux/fuse.h> (protocol 7.38) know neither FUSE_PASSTHROUGH nor the
// backing-file ioctls, and call the fields they use "unused" and "padding".
// Kernels from 6.9 (protocol 7.40) have them. The layouts below are the
// kernel's (include/uapi/linux/fuse.h), fixed by its ABI; the static_asserts
// pin every offset this project writes to.
//
// Nothing here includes libfuse: the reply patcher and its tests work on
// plain bytes.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_FUSE_PASSTHROUGH_ABI_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_FUSE_PASSTHROUGH_ABI_H_

#include <linux/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace fusehost {
namespace fuse_abi {

// Opcodes of the requests the patcher follows.
inline constexpr uint32_t kOpOpen = 14;
inline constexpr uint32_t kOpInit = 26;
inline constexpr uint32_t kOpCreate = 35;

// INIT flags. Bits 32..63 travel in flags2, which the kernel reads only
// when FUSE_INIT_EXT is set in flags (both ways).
inline constexpr uint64_t kInitWritebackCache = 1ull << 16;
inline constexpr uint64_t kInitExt = 1ull << 30;
inline constexpr uint64_t kInitPassthrough = 1ull << 37;

// OPEN/CREATE reply flag: reads, writes and mmap of this open file go to
// the backing file named by backing_id.
inline constexpr uint32_t kOpenPassthrough = 1u << 7;
// Bypass the page cache (plain forwarding, whatever the inode's io mode).
inline constexpr uint32_t kOpenDirectIo = 1u << 0;

struct InHeader {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;
  uint16_t padding;
};
static_assert(sizeof(InHeader) == 40);

struct OutHeader {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(OutHeader) == 16);

struct InitIn {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint32_t flags2;  // protocol >= 7.36
  uint32_t unused[11];
};
static_assert(offsetof(InitIn, flags2) == 16);

struct InitOut {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  // libfuse 3.14: unused[0]. How many file systems may stack on the
  // backing files (1: backing files may not be on a passthrough mount).
  uint32_t max_stack_depth;
  uint32_t unused[6];
};
static_assert(sizeof(InitOut) == 64);
static_assert(offsetof(InitOut, flags) == 12);
static_assert(offsetof(InitOut, flags2) == 32);
static_assert(offsetof(InitOut, max_stack_depth) == 36);

struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;  // libfuse 3.14: padding
};
static_assert(sizeof(OpenOut) == 16);
static_assert(offsetof(OpenOut, backing_id) == 12);

// What CREATE answers before its OpenOut.
inline constexpr size_t kEntryOutSize = 128;

// FUSE_DEV_IOC_BACKING_OPEN's argument.
struct BackingMap {
  int32_t fd;
  uint32_t flags;  // must be 0
  uint64_t padding;
};
static_assert(sizeof(BackingMap) == 16);

inline constexpr unsigned long kDevIocBackingOpen =
    _IOW(229, 1, struct BackingMap);
inline constexpr unsigned long kDevIocBackingClose = _IOW(229, 2, uint32_t);

}  // namespace fuse_abi
}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_FUSE_PASSTHROUGH_ABI_H_
