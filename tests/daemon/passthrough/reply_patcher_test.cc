#include "daemon/passthrough/reply_patcher.h"

#include <cstring>
#include <string>

#include "daemon/passthrough/fuse_passthrough_abi.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

using fuse_abi::InHeader;
using fuse_abi::InitIn;
using fuse_abi::InitOut;
using fuse_abi::OpenOut;
using fuse_abi::OutHeader;

template <typename T>
void Append(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

std::string Request(uint32_t opcode, uint64_t unique, size_t body) {
  InHeader in = {};
  in.len = sizeof(in) + body;
  in.opcode = opcode;
  in.unique = unique;
  std::string s;
  Append(&s, in);
  s.append(body, '\0');
  return s;
}

std::string InitRequest(uint64_t unique, bool offer) {
  InitIn init = {};
  init.major = 7;
  init.minor = 41;
  init.flags = static_cast<uint32_t>(fuse_abi::kInitExt);
  if (offer) init.flags2 = static_cast<uint32_t>(fuse_abi::kInitPassthrough >> 32);
  InHeader in = {};
  in.len = sizeof(in) + sizeof(init);
  in.opcode = fuse_abi::kOpInit;
  in.unique = unique;
  std::string s;
  Append(&s, in);
  Append(&s, init);
  return s;
}

std::string InitReply(uint64_t unique, uint32_t flags) {
  OutHeader out = {};
  out.len = sizeof(out) + sizeof(InitOut);
  out.unique = unique;
  InitOut init = {};
  init.major = 7;
  init.minor = 38;
  init.flags = flags;
  std::string s;
  Append(&s, out);
  Append(&s, init);
  return s;
}

std::string OpenReply(uint64_t unique, size_t entry_bytes = 0) {
  OutHeader out = {};
  out.len = sizeof(out) + entry_bytes + sizeof(OpenOut);
  out.unique = unique;
  OpenOut open = {};
  open.fh = 99;
  std::string s;
  Append(&s, out);
  s.append(entry_bytes, '\0');
  Append(&s, open);
  return s;
}

InitOut InitOf(const std::string& reply) {
  InitOut init;
  std::memcpy(&init, reply.data() + sizeof(OutHeader), sizeof(init));
  return init;
}

OpenOut OpenOf(const std::string& reply) {
  OpenOut open;
  std::memcpy(&open, reply.data() + reply.size() - sizeof(open), sizeof(open));
  return open;
}

ReplyPatcher::Outcome Patch(ReplyPatcher& p, std::string* reply,
                            int32_t backing_id) {
  return p.PatchReply(reply->data(), reply->size(), backing_id);
}

// A patcher that went through an INIT the kernel offered passthrough in.
void Enable(ReplyPatcher& p) {
  std::string req = InitRequest(1, /*offer=*/true);
  p.SawRequest(req.data(), req.size());
  std::string reply = InitReply(1, 0);
  ASSERT_EQ(Patch(p, &reply, 0), ReplyPatcher::Outcome::kPatched);
  ASSERT_TRUE(p.enabled());
}

TEST(ReplyPatcherTest, InitReplyGetsPassthroughWhenOffered) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(7, /*offer=*/true);
  p.SawRequest(req.data(), req.size());
  EXPECT_TRUE(p.kernel_offered());
  std::string reply = InitReply(7, 1u << 3);
  EXPECT_EQ(Patch(p, &reply, 0), ReplyPatcher::Outcome::kPatched);
  InitOut init = InitOf(reply);
  EXPECT_EQ(init.flags2 & (1u << 5), 1u << 5);
  EXPECT_TRUE(init.flags & fuse_abi::kInitExt);
  EXPECT_TRUE(init.flags & (1u << 3));  // what libfuse set stays
  EXPECT_EQ(init.max_stack_depth, 1u);
  EXPECT_TRUE(p.enabled());
}

TEST(ReplyPatcherTest, InitLeftAloneWhenTheKernelDoesNotOffer) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(7, /*offer=*/false);
  p.SawRequest(req.data(), req.size());
  std::string reply = InitReply(7, 0);
  std::string before = reply;
  EXPECT_EQ(Patch(p, &reply, 0), ReplyPatcher::Outcome::kUntouched);
  EXPECT_EQ(reply, before);
  EXPECT_FALSE(p.enabled());
}

TEST(ReplyPatcherTest, NeverWithTheWritebackCache) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(7, /*offer=*/true);
  p.SawRequest(req.data(), req.size());
  std::string reply =
      InitReply(7, static_cast<uint32_t>(fuse_abi::kInitWritebackCache));
  std::string before = reply;
  EXPECT_EQ(Patch(p, &reply, 0), ReplyPatcher::Outcome::kUntouched);
  EXPECT_EQ(reply, before);
  EXPECT_FALSE(p.enabled());
}

TEST(ReplyPatcherTest, OnlyTheReplyToInitIsPatched) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(7, /*offer=*/true);
  p.SawRequest(req.data(), req.size());
  std::string other = InitReply(8, 0);  // right size, wrong unique
  std::string before = other;
  EXPECT_EQ(Patch(p, &other, 0), ReplyPatcher::Outcome::kUntouched);
  EXPECT_EQ(other, before);
  std::string failed = InitReply(7, 0);
  failed.resize(sizeof(OutHeader) + 24);  // an old, short INIT reply
  EXPECT_EQ(Patch(p, &failed, 0), ReplyPatcher::Outcome::kUntouched);
  EXPECT_FALSE(p.enabled());
}

TEST(ReplyPatcherTest, OpenReplyGetsTheBackingId) {
  ReplyPatcher p(/*offer=*/true);
  Enable(p);
  std::string req = Request(fuse_abi::kOpOpen, 20, 8);
  p.SawRequest(req.data(), req.size());
  std::string reply = OpenReply(20);
  EXPECT_EQ(Patch(p, &reply, 5), ReplyPatcher::Outcome::kPatched);
  OpenOut open = OpenOf(reply);
  EXPECT_EQ(open.backing_id, 5);
  EXPECT_EQ(open.open_flags & fuse_abi::kOpenPassthrough,
            fuse_abi::kOpenPassthrough);
  EXPECT_EQ(open.fh, 99u);
}

TEST(ReplyPatcherTest, CreateReplyGetsTheBackingId) {
  ReplyPatcher p(/*offer=*/true);
  Enable(p);
  std::string req = Request(fuse_abi::kOpCreate, 21, 16);
  p.SawRequest(req.data(), req.size());
  std::string reply = OpenReply(21, fuse_abi::kEntryOutSize);
  EXPECT_EQ(Patch(p, &reply, 6), ReplyPatcher::Outcome::kPatched);
  EXPECT_EQ(OpenOf(reply).backing_id, 6);
}

TEST(ReplyPatcherTest, AReplyToAnotherRequestBecomesDirectIo) {
  ReplyPatcher p(/*offer=*/true);
  Enable(p);
  // An open-sized reply whose unique no OPEN request had.
  std::string reply = OpenReply(30);
  EXPECT_EQ(Patch(p, &reply, 5), ReplyPatcher::Outcome::kRefused);
  OpenOut open = OpenOf(reply);
  EXPECT_EQ(open.backing_id, 0);
  EXPECT_EQ(open.open_flags & fuse_abi::kOpenPassthrough, 0u);
  EXPECT_EQ(open.open_flags & fuse_abi::kOpenDirectIo, fuse_abi::kOpenDirectIo);
  // A CREATE's unique answered with an OPEN-sized reply: refused too.
  std::string req = Request(fuse_abi::kOpCreate, 31, 16);
  p.SawRequest(req.data(), req.size());
  std::string wrong = OpenReply(31);
  EXPECT_EQ(Patch(p, &wrong, 5), ReplyPatcher::Outcome::kRefused);
  EXPECT_EQ(OpenOf(wrong).backing_id, 0);
}

TEST(ReplyPatcherTest, EachOpenRequestIsPatchedOnce) {
  ReplyPatcher p(/*offer=*/true);
  Enable(p);
  std::string req = Request(fuse_abi::kOpOpen, 40, 8);
  p.SawRequest(req.data(), req.size());
  std::string first = OpenReply(40);
  EXPECT_EQ(Patch(p, &first, 5), ReplyPatcher::Outcome::kPatched);
  std::string again = OpenReply(40);
  EXPECT_EQ(Patch(p, &again, 5), ReplyPatcher::Outcome::kRefused);
}

TEST(ReplyPatcherTest, NoPassthroughBeforeInitWasPatched) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(1, /*offer=*/false);
  p.SawRequest(req.data(), req.size());
  std::string init = InitReply(1, 0);
  Patch(p, &init, 0);
  std::string open_req = Request(fuse_abi::kOpOpen, 50, 8);
  p.SawRequest(open_req.data(), open_req.size());
  std::string reply = OpenReply(50);
  EXPECT_EQ(Patch(p, &reply, 5), ReplyPatcher::Outcome::kRefused);
  EXPECT_EQ(OpenOf(reply).backing_id, 0);
}

TEST(ReplyPatcherTest, ErrorsAndOtherRepliesPassUnchanged) {
  ReplyPatcher p(/*offer=*/true);
  Enable(p);
  std::string req = Request(fuse_abi::kOpOpen, 60, 8);
  p.SawRequest(req.data(), req.size());
  OutHeader err = {};
  err.len = sizeof(err);
  err.error = -2;
  err.unique = 60;
  std::string reply;
  Append(&reply, err);
  std::string before = reply;
  EXPECT_EQ(Patch(p, &reply, 0), ReplyPatcher::Outcome::kUntouched);
  EXPECT_EQ(reply, before);
  // Asked to patch an error reply: nothing to patch, refused.
  std::string req2 = Request(fuse_abi::kOpOpen, 61, 8);
  p.SawRequest(req2.data(), req2.size());
  err.unique = 61;
  std::string reply2;
  Append(&reply2, err);
  EXPECT_EQ(Patch(p, &reply2, 3), ReplyPatcher::Outcome::kRefused);
  EXPECT_EQ(reply2.size(), sizeof(OutHeader));
}

TEST(ReplyPatcherTest, MalformedRequestsAreIgnored) {
  ReplyPatcher p(/*offer=*/true);
  std::string req = InitRequest(1, /*offer=*/true);
  req.resize(20);  // shorter than a header
  p.SawRequest(req.data(), req.size());
  EXPECT_FALSE(p.saw_init());
  std::string lying = InitRequest(1, /*offer=*/true);
  lying[0] = 1;  // len says something else than what was read
  p.SawRequest(lying.data(), lying.size());
  EXPECT_FALSE(p.saw_init());
}

}  // namespace
}  // namespace fusehost
