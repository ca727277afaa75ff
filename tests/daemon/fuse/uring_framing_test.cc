// A request taken from an io_uring queue entry, laid out as /dev/fuse
// frames it; and the sizes a hostile or buggy kernel could give, refused
// before anything is copied.

#include "daemon/fuse/uring_framing.h"

#include <cstring>
#include <string>
#include <vector>

#include "daemon/passthrough/fuse_passthrough_abi.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

using fuse_abi::InHeader;

constexpr size_t kCapacity = 64;

struct Entry {
  fuse_uring_abi::ReqHeader header = {};
  std::vector<char> buffer = std::vector<char>(kRingFrameRoom + kCapacity, 0);
  char* payload() { return buffer.data() + kRingFrameRoom; }

  // A request with `first` bytes of first argument and `body` in the
  // payload; `len` overrides the header's length.
  void Set(uint32_t opcode, const std::string& first, const std::string& body,
           int64_t len = -1) {
    InHeader in = {};
    in.len =
        len >= 0
            ? static_cast<uint32_t>(len)
            : static_cast<uint32_t>(sizeof(in) + first.size() + body.size());
    in.opcode = opcode;
    in.unique = 77;
    in.nodeid = 5;
    std::memcpy(header.in_out, &in, sizeof(in));
    std::memcpy(header.op_in, first.data(), first.size());
    std::memcpy(payload(), body.data(), body.size());
    header.ring_ent_in_out.payload_sz = static_cast<uint32_t>(body.size());
    header.ring_ent_in_out.commit_id = 77;
  }
};

TEST(FrameRingRequestTest, HeaderFirstArgumentAndPayloadReadAsOneRequest) {
  Entry e;
  const std::string first(16, 'a');  // a fuse_getxattr_in, say
  e.Set(22, first, std::string("user.name\0", 10));
  RingFrame f;
  ASSERT_TRUE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
  EXPECT_EQ(f.unique, 77u);
  EXPECT_EQ(f.opcode, 22u);
  ASSERT_EQ(f.size, sizeof(InHeader) + 16 + 10);
  // Ends where the payload ends: the payload itself is not moved.
  EXPECT_EQ(f.start + f.size, e.payload() + 10);
  InHeader in;
  std::memcpy(&in, f.start, sizeof(in));
  EXPECT_EQ(in.nodeid, 5u);
  EXPECT_EQ(std::string(f.start + sizeof(in), 16), first);
  EXPECT_EQ(std::string(f.start + sizeof(in) + 16, 10),
            std::string("user.name\0", 10));
}

TEST(FrameRingRequestTest, AnOpcodeWithoutFirstArgument) {
  // LOOKUP: its name is all payload, the first argument has size 0.
  Entry e;
  e.Set(1, "", std::string("name\0", 5));
  RingFrame f;
  ASSERT_TRUE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
  EXPECT_EQ(f.size, sizeof(InHeader) + 5);
  EXPECT_EQ(std::string(f.start + sizeof(InHeader), 5),
            std::string("name\0", 5));
}

TEST(FrameRingRequestTest, SizesThatDoNotAddUpAreRefused) {
  RingFrame f;
  {
    // The payload claims more than the buffer holds.
    Entry e;
    e.Set(16, "", "x");
    e.header.ring_ent_in_out.payload_sz = kCapacity + 1;
    EXPECT_FALSE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
    EXPECT_EQ(f.unique, 77u);  // for the error reply
  }
  {
    // The length is shorter than header and payload.
    Entry e;
    e.Set(16, "", "payload", sizeof(InHeader) + 3);
    EXPECT_FALSE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
  }
  {
    // The length leaves a first argument larger than its area.
    Entry e;
    e.Set(16, "", "p", sizeof(InHeader) + 129 + 1);
    EXPECT_FALSE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
  }
  {
    // The largest first argument the area holds is fine.
    Entry e;
    e.Set(16, std::string(128, 'z'), "p");
    EXPECT_TRUE(FrameRingRequest(e.header, e.payload(), kCapacity, &f));
    EXPECT_EQ(f.start, e.buffer.data() + kRingFrameRoom - 40 - 128);
  }
}

}  // namespace
}  // namespace fusehost
