#include "daemon/survival/keeper_protocol.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"
#include "tests/daemon/testing/raw_datagram.h"

namespace fusehost {
namespace {

constexpr absl::Duration kWait = absl::Seconds(2);

TEST(KeeperProtocolTest, DescriptorsArriveAsCopiesOfTheSameFiles) {
  SocketPair s = MakeSocketPair();
  UniqueFd first = MemfdWith("a");
  UniqueFd second = MemfdWith("b");
  ASSERT_TRUE(
      SendMessage(s.a.get(), "PUT m-1", {first.get(), second.get()}).ok());
  absl::StatusOr<KeeperMessage> got = ReceiveMessage(s.b.get(), kWait);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->header, "PUT m-1");
  ASSERT_EQ(got->fds.size(), 2u);
  EXPECT_EQ(ContentsOf(got->fds[0].get()), "a");
  EXPECT_EQ(ContentsOf(got->fds[1].get()), "b");
  EXPECT_NE(got->fds[0].get(), first.get());
  EXPECT_TRUE(IsCloseOnExec(got->fds[0].get()));
  EXPECT_TRUE(IsCloseOnExec(got->fds[1].get()));
  // One file: what the receiver writes, the sender reads.
  ASSERT_EQ(pwrite(got->fds[0].get(), "z", 1, 0), 1);
  EXPECT_EQ(ContentsOf(first.get()), "z");
}

TEST(KeeperProtocolTest, HeaderAlone) {
  SocketPair s = MakeSocketPair();
  ASSERT_TRUE(SendMessage(s.a.get(), "GET", {}).ok());
  absl::StatusOr<KeeperMessage> got = ReceiveMessage(s.b.get(), kWait);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->header, "GET");
  EXPECT_TRUE(got->fds.empty());
}

TEST(KeeperProtocolTest, EightDescriptorsAtMost) {
  SocketPair s = MakeSocketPair();
  UniqueFd m = MemfdWith("x");
  std::vector<int> eight(kMaxKeeperFds, m.get());
  ASSERT_TRUE(SendMessage(s.a.get(), "PUT k", eight).ok());
  absl::StatusOr<KeeperMessage> got = ReceiveMessage(s.b.get(), kWait);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->fds.size(), kMaxKeeperFds);

  std::vector<int> nine(kMaxKeeperFds + 1, m.get());
  EXPECT_TRUE(absl::IsInvalidArgument(SendMessage(s.a.get(), "PUT k", nine)));
  EXPECT_TRUE(absl::IsInvalidArgument(SendMessage(s.a.get(), "PUT k", {-1})));
}

TEST(KeeperProtocolTest, HeaderLength) {
  SocketPair s = MakeSocketPair();
  EXPECT_TRUE(absl::IsInvalidArgument(SendMessage(s.a.get(), "", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(
      SendMessage(s.a.get(), std::string(kMaxKeeperHeader + 1, 'A'), {})));
  const std::string longest(kMaxKeeperHeader, 'A');
  ASSERT_TRUE(SendMessage(s.a.get(), longest, {}).ok());
  absl::StatusOr<KeeperMessage> got = ReceiveMessage(s.b.get(), kWait);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->header, longest);
}

// Sends `header` with `copies` copies of a pipe's write end, beyond what
// SendMessage allows; the receiver must refuse the message and close every
// copy that came with it.
void ExpectRefusedAndClosed(const std::string& header, size_t copies) {
  SocketPair s = MakeSocketPair();
  Pipe p = MakePipe();
  ASSERT_TRUE(SendRaw(s.a.get(), header,
                      std::vector<int>(copies, p.write_end.get())));
  p.write_end.reset();
  absl::StatusOr<KeeperMessage> got = ReceiveMessage(s.b.get(), kWait);
  EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
  EXPECT_TRUE(WriteEndsClosed(p));
}

TEST(KeeperProtocolTest, LongHeaderIsRefusedAndItsDescriptorsClosed) {
  ExpectRefusedAndClosed(std::string(kMaxKeeperHeader + 1, 'A'), 1);
}

TEST(KeeperProtocolTest, TooManyDescriptorsAreRefusedAndAllClosed) {
  ExpectRefusedAndClosed("PUT k", kMaxKeeperFds + 1);
}

TEST(KeeperProtocolTest, NothingToReceiveTimesOut) {
  SocketPair s = MakeSocketPair();
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      ReceiveMessage(s.b.get(), absl::Milliseconds(20)).status()));
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      ReceiveMessage(s.b.get(), absl::ZeroDuration()).status()));
}

TEST(KeeperProtocolTest, QueuedMessageIsReadWithoutWaiting) {
  SocketPair s = MakeSocketPair();
  ASSERT_TRUE(SendMessage(s.a.get(), "OK", {}).ok());
  absl::StatusOr<KeeperMessage> got =
      ReceiveMessage(s.b.get(), absl::ZeroDuration());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->header, "OK");
}

TEST(KeeperProtocolTest, ClosedPeerIsUnavailable) {
  SocketPair s = MakeSocketPair();
  ASSERT_TRUE(SendMessage(s.a.get(), "OK", {}).ok());
  s.a.reset();
  // What was sent before the close is still read.
  EXPECT_TRUE(ReceiveMessage(s.b.get(), kWait).ok());
  EXPECT_TRUE(absl::IsUnavailable(ReceiveMessage(s.b.get(), kWait).status()));
  EXPECT_TRUE(absl::IsUnavailable(SendMessage(s.b.get(), "GET", {})));
}

TEST(KeeperProtocolTest, FullSocketTimesOutTheSender) {
  SocketPair s = MakeSocketPair();
  absl::Status sent;
  for (int i = 0; i < 100000 && sent.ok(); ++i) {
    sent = SendMessage(s.a.get(), "GET", {}, absl::ZeroDuration());
  }
  EXPECT_TRUE(absl::IsDeadlineExceeded(sent)) << sent;
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      SendMessage(s.a.get(), "GET", {}, absl::Milliseconds(20))));
  // Room again once the peer reads.
  ASSERT_TRUE(ReceiveMessage(s.b.get(), kWait).ok());
  EXPECT_TRUE(SendMessage(s.a.get(), "GET", {}, kWait).ok());
}

TEST(KeeperProtocolTest, Keys) {
  EXPECT_TRUE(IsKeeperKey("mount-17"));
  EXPECT_TRUE(IsKeeperKey("A.b_c-D9"));
  EXPECT_TRUE(IsKeeperKey(std::string(kMaxKeeperKey, 'k')));
  EXPECT_FALSE(IsKeeperKey(""));
  EXPECT_FALSE(IsKeeperKey(std::string(kMaxKeeperKey + 1, 'k')));
  EXPECT_FALSE(IsKeeperKey("a b"));
  EXPECT_FALSE(IsKeeperKey("a/b"));
  EXPECT_FALSE(IsKeeperKey("a\nb"));
  EXPECT_FALSE(IsKeeperKey("caf\xc3\xa9"));
  EXPECT_FALSE(IsKeeperKey(std::string("a\0b", 3)));
}

TEST(KeeperProtocolTest, Headers) {
  absl::StatusOr<KeeperHeader> put = ParseKeeperHeader("PUT m-1");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->verb, "PUT");
  EXPECT_EQ(put->argument, "m-1");
  absl::StatusOr<KeeperHeader> get = ParseKeeperHeader("GET");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->verb, "GET");
  EXPECT_EQ(get->argument, "");
  absl::StatusOr<KeeperHeader> err = ParseKeeperHeader("ERR no such thing");
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->argument, "no such thing");

  for (const std::string& bad :
       {std::string(""), std::string(" PUT"), std::string("put m"),
        std::string("PUT\tm"), std::string("PUT m\n"), std::string("P1 m"),
        std::string("PUT m\0", 6)}) {
    EXPECT_FALSE(ParseKeeperHeader(bad).ok()) << bad;
  }
}

TEST(KeeperProtocolTest, ErrorHeaders) {
  EXPECT_EQ(KeeperErrorHeader("no\nway"), "ERR no?way");
  std::string long_error = KeeperErrorHeader(std::string(1000, 'x'));
  EXPECT_EQ(long_error.size(), kMaxKeeperHeader);
  EXPECT_TRUE(ParseKeeperHeader(long_error).ok());
}

}  // namespace
}  // namespace fusehost
