// The parts of the FUSE kernel protocol that FUSE over io_uring needs,
// written out here because the system's headers predate them: Debian's
// libfuse 3.14 and its <linux/fuse.h> (protocol 7.38) do not know them;
// kernels from 6.14 (protocol 7.42) have them. The layouts are the kernel's
// (include/uapi/linux/fuse.h), fixed by its ABI; the static_asserts pin
// them.
//
// How the kernel uses them: each queue entry is a header buffer and a
// payload buffer the server registers with FUSE_IO_URING_CMD_REGISTER (an
// IORING_OP_URING_CMD on /dev/fuse, in a 128-byte SQE). When a request
// comes, the kernel completes that command with the request's
// fuse_in_header in `in_out`, its first argument (the per-opcode struct,
// if the opcode has one) in `op_in`, the rest of its arguments in the
// payload, and their size and the request's unique id in `ring_ent_in_out`.
// The server answers with FUSE_IO_URING_CMD_COMMIT_AND_FETCH: the
// fuse_out_header in `in_out`, the reply's body in the payload, its size
// in `ring_ent_in_out`; the same command waits for the next request.

#ifndef FUSE_HOSTD_DAEMON_FUSE_FUSE_URING_ABI_H_
#define FUSE_HOSTD_DAEMON_FUSE_FUSE_URING_ABI_H_

#include <cstddef>
#include <cstdint>

namespace fusehost {
namespace fuse_uring_abi {

// INIT flag (flags2 bit 9): the server will serve requests on rings.
inline constexpr uint64_t kInitOverIoUring = 1ull << 41;

// cmd_op of the IORING_OP_URING_CMD.
inline constexpr uint32_t kCmdRegister = 1;
inline constexpr uint32_t kCmdCommitAndFetch = 2;

struct EntInOut {
  uint64_t flags;
  // The request's unique id; the commit names it.
  uint64_t commit_id;
  // Bytes used in the payload buffer, either way.
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
static_assert(sizeof(EntInOut) == 32);

struct ReqHeader {
  char in_out[128];  // fuse_in_header in, fuse_out_header out
  char op_in[128];   // the opcode's own struct, if any
  EntInOut ring_ent_in_out;
};
static_assert(offsetof(ReqHeader, op_in) == 128);
static_assert(offsetof(ReqHeader, ring_ent_in_out) == 256);
static_assert(sizeof(ReqHeader) == 288);

// In the SQE's command area (sqe->cmd, 80 bytes with IORING_SETUP_SQE128).
struct CmdReq {
  uint64_t flags;
  uint64_t commit_id;  // COMMIT_AND_FETCH: the request answered
  uint16_t qid;        // the queue (CPU) the entry belongs to
  uint8_t padding[6];
};
static_assert(sizeof(CmdReq) == 24);

}  // namespace fuse_uring_abi
}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_FUSE_URING_ABI_H_
