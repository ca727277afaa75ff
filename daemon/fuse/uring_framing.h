// How a request the kernel put in an io_uring queue entry becomes the bytes
// /dev/fuse would have delivered: fuse_in_header, the opcode's first
// argument, then the rest (the payload). The first argument's size is not
// given; it is what the header's length leaves after the payload. Every
// size comes from the kernel and is checked before anything is copied.

#ifndef FUSE_HOSTD_DAEMON_FUSE_URING_FRAMING_H_
#define FUSE_HOSTD_DAEMON_FUSE_URING_FRAMING_H_

#include <cstddef>
#include <cstdint>

#include "daemon/fuse/fuse_uring_abi.h"

namespace fusehost {

// Room a payload buffer needs in front of it for the header and the first
// argument.
inline constexpr size_t kRingFrameRoom =
    40 + sizeof(fuse_uring_abi::ReqHeader::op_in);

struct RingFrame {
  char* start = nullptr;  // the request, `size` bytes, ending the payload
  size_t size = 0;
  uint64_t unique = 0;
  uint32_t opcode = 0;
};

// Lays out the request of `header` in front of `payload` (which holds
// `capacity` bytes, with kRingFrameRoom writable bytes before it). False,
// with `frame->unique` and `opcode` set if the header could be read, if the
// sizes do not add up.
bool FrameRingRequest(const fuse_uring_abi::ReqHeader& header, char* payload,
                      size_t capacity, RingFrame* frame);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_URING_FRAMING_H_
