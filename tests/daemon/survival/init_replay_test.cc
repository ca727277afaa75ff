// InitReplay: a saved FUSE_INIT is the first read of a resumed session, and
// only the first, and no other read gets to the device before it is
// answered; the session's reply to it is recognized by its unique.

#include "daemon/survival/init_replay.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"

namespace fusehost {
namespace {

// A request as the kernel writes it: header, then `body_size` bytes.
std::string Request(uint32_t opcode, uint64_t unique, size_t body_size,
                    uint32_t len) {
  struct fuse_in_header h = {};
  h.len = len;
  h.opcode = opcode;
  h.unique = unique;
  std::string out(reinterpret_cast<const char*>(&h), sizeof(h));
  out.append(body_size, '\x5a');
  return out;
}

// A whole FUSE_INIT request.
std::string Init(uint64_t unique) {
  const size_t size = sizeof(fuse_in_header) + sizeof(fuse_init_in);
  return Request(FUSE_INIT, unique, sizeof(fuse_init_in), size);
}

bool IsRequest(const std::string& bytes) {
  return IsInitRequest(bytes.data(), bytes.size());
}

struct fuse_out_header ReplyHeader(uint64_t unique) {
  struct fuse_out_header h = {};
  h.len = sizeof(h) + sizeof(fuse_init_out);
  h.unique = unique;
  return h;
}

TEST(IsInitRequestTest, AWholeInitIsOne) {
  EXPECT_TRUE(IsRequest(Init(2)));
  // Whatever the size of its body: the kernel's INIT grew over the years.
  EXPECT_TRUE(IsRequest(Request(FUSE_INIT, 2, 8, sizeof(fuse_in_header) + 8)));
}

TEST(IsInitRequestTest, OtherRequestsAndWrongLengthsAreNot) {
  const size_t size = sizeof(fuse_in_header) + sizeof(fuse_init_in);
  EXPECT_FALSE(IsRequest(Request(FUSE_LOOKUP, 2, sizeof(fuse_init_in), size)));
  EXPECT_FALSE(IsRequest(Request(FUSE_OPEN, 2, sizeof(fuse_init_in), size)));
  // The header's length is not the size read.
  EXPECT_FALSE(
      IsRequest(Request(FUSE_INIT, 2, sizeof(fuse_init_in), size + 1)));
  EXPECT_FALSE(
      IsRequest(Request(FUSE_INIT, 2, sizeof(fuse_init_in), size - 1)));
  EXPECT_FALSE(IsRequest(Init(2).substr(0, size - 4)));
  // Shorter than a header.
  EXPECT_FALSE(IsRequest(Init(2).substr(0, sizeof(fuse_in_header) - 1)));
  EXPECT_FALSE(IsInitRequest(nullptr, 0));
}

TEST(InitReplayTest, TakeGivesTheSavedRequestOnce) {
  const std::string saved = Init(42);
  InitReplay replay(saved);
  std::vector<char> buf(4096, '\0');
  ssize_t n = 0;
  ASSERT_TRUE(replay.Take(buf.data(), buf.size(), &n));
  ASSERT_EQ(n, static_cast<ssize_t>(saved.size()));
  EXPECT_EQ(std::string(buf.data(), n), saved);
  replay.Answered();
  n = 0;
  EXPECT_FALSE(replay.Take(buf.data(), buf.size(), &n));
  EXPECT_EQ(n, 0);
  EXPECT_FALSE(replay.Take(buf.data(), buf.size(), &n));
}

TEST(InitReplayTest, OfManyReadersOnlyOneTakesIt) {
  InitReplay replay(Init(42));
  std::atomic<int> taken{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 8; ++i) {
    readers.emplace_back([&] {
      char buf[512];
      ssize_t n = 0;
      if (replay.Take(buf, sizeof(buf), &n)) {
        taken.fetch_add(1);
        replay.Answered();
      }
    });
  }
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(taken.load(), 1);
}

// libfuse answers whatever it reads before it has processed INIT with EIO:
// a second reader must not get to the device before the saved INIT is
// answered.
TEST(InitReplayTest, OtherReadersWaitUntilTheSavedRequestIsAnswered) {
  InitReplay replay(Init(42));
  char buf[512];
  ssize_t n = 0;
  ASSERT_TRUE(replay.Take(buf, sizeof(buf), &n));
  absl::Notification returned;
  bool took = true;
  std::thread second([&] {
    char other[512];
    ssize_t m = 0;
    took = replay.Take(other, sizeof(other), &m);
    returned.Notify();
  });
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  replay.Answered();
  second.join();
  EXPECT_TRUE(returned.HasBeenNotified());
  EXPECT_FALSE(took);
}

TEST(InitReplayTest, ABufferTooSmallForTheRequestLeavesNobodyWaiting) {
  const std::string saved = Init(42);
  InitReplay replay(saved);
  std::vector<char> small(saved.size() - 1);
  ssize_t n = 0;
  ASSERT_TRUE(replay.Take(small.data(), small.size(), &n));
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_FALSE(replay.Take(small.data(), small.size(), &n));
}

TEST(InitReplayTest, OnlyTheReplyToTheSavedRequestIsRecognized) {
  InitReplay replay(Init(42));
  struct fuse_out_header mine = ReplyHeader(42);
  struct fuse_init_out body = {};
  struct iovec reply[2] = {{&mine, sizeof(mine)}, {&body, sizeof(body)}};
  EXPECT_TRUE(replay.IsReplyToSaved(reply, 2));
  EXPECT_TRUE(replay.IsReplyToSaved(reply, 1));

  struct fuse_out_header other = ReplyHeader(43);
  struct iovec other_reply[2] = {{&other, sizeof(other)},
                                 {&body, sizeof(body)}};
  EXPECT_FALSE(replay.IsReplyToSaved(other_reply, 2));
  // No header to read.
  EXPECT_FALSE(replay.IsReplyToSaved(reply, 0));
  struct iovec cut = {&mine, sizeof(mine) - 1};
  EXPECT_FALSE(replay.IsReplyToSaved(&cut, 1));
  // Taking the request changes nothing of that.
  char buf[512];
  ssize_t n = 0;
  ASSERT_TRUE(replay.Take(buf, sizeof(buf), &n));
  EXPECT_TRUE(replay.IsReplyToSaved(reply, 2));
  EXPECT_FALSE(replay.IsReplyToSaved(other_reply, 2));
}

TEST(InitReplayTest, NotificationsAreNeverTheReply) {
  // Unique 0 is what notifications carry: a saved request without a unique
  // of its own matches nothing.
  InitReplay replay(Init(0));
  struct fuse_out_header notification = ReplyHeader(0);
  struct iovec iov = {&notification, sizeof(notification)};
  EXPECT_FALSE(replay.IsReplyToSaved(&iov, 1));
  InitReplay nothing("");
  EXPECT_FALSE(nothing.IsReplyToSaved(&iov, 1));
}

TEST(ResendUnansweredTest, WritesTheResendNotification) {
  Pipe p = MakePipe();
  ASSERT_TRUE(ResendUnanswered(p.write_end.get()).ok());
  struct fuse_out_header h = {};
  ASSERT_EQ(read(p.read_end.get(), &h, sizeof(h) + 1),
            static_cast<ssize_t>(sizeof(h)));
  EXPECT_EQ(h.len, sizeof(h));
  EXPECT_EQ(h.error, 7);  // FUSE_NOTIFY_RESEND
  EXPECT_EQ(h.unique, 0u);
}

TEST(ResendUnansweredTest, AFailedWriteIsAnError) {
  Pipe p = MakePipe();
  EXPECT_TRUE(absl::IsInternal(ResendUnanswered(p.read_end.get())));
  EXPECT_TRUE(absl::IsInternal(ResendUnanswered(-1)));
}

}  // namespace
}  // namespace fusehost
