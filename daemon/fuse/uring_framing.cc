#include "daemon/fuse/uring_framing.h"

#include <cstring>

#include "daemon/passthrough/fuse_passthrough_abi.h"

namespace fusehost {

using fuse_abi::InHeader;
static_assert(sizeof(InHeader) == 40);

bool FrameRingRequest(const fuse_uring_abi::ReqHeader& header, char* payload,
                      size_t capacity, RingFrame* frame) {
  InHeader in;
  std::memcpy(&in, header.in_out, sizeof(in));
  frame->unique = in.unique;
  frame->opcode = in.opcode;
  const size_t body = header.ring_ent_in_out.payload_sz;
  if (body > capacity || in.len < sizeof(in) + body) return false;
  const size_t first = in.len - sizeof(in) - body;
  if (first > sizeof(header.op_in)) return false;
  char* start = payload - sizeof(in) - first;
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), header.op_in, first);
  frame->start = start;
  frame->size = in.len;
  return true;
}

}  // namespace fusehost
