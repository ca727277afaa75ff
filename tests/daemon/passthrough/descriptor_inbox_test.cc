#include "daemon/passthrough/descriptor_inbox.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "client/descriptor_sender.h"
#include "gtest/gtest.h"
#include "tests/daemon/testing/raw_datagram.h"

namespace fusehost {
namespace {

int Connect(const std::string& path) {
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(connect(s, reinterpret_cast<struct sockaddr*>(&addr),
                    sizeof(addr)),
            0);
  return s;
}

std::string Tag(uint64_t tag) {
  return std::string(reinterpret_cast<const char*>(&tag), sizeof(tag));
}

ino_t InodeOf(int fd) {
  struct stat st;
  fstat(fd, &st);
  return st.st_ino;
}

class DescriptorInboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/descriptor-inbox-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_fd_ = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(file_fd_, 0);
  }
  void TearDown() override {
    close(file_fd_);
    inbox_.reset();
    rmdir(dir_.c_str());
  }

  void MakeInbox(bool accept_peer, size_t max_waiting = 64) {
    DescriptorInbox::Options o;
    o.socket_path = dir_ + "/inbox.sock";
    o.is_backend = [accept_peer](const PeerCredentials& peer) {
      return accept_peer && peer.pid == getpid();
    };
    o.max_waiting = max_waiting;
    o.log_name = "test";
    auto inbox = DescriptorInbox::Create(std::move(o));
    ASSERT_TRUE(inbox.ok()) << inbox.status();
    inbox_ = *std::move(inbox);
  }

  std::string dir_;
  int file_fd_ = -1;
  std::unique_ptr<DescriptorInbox> inbox_;
};

TEST_F(DescriptorInboxTest, TheBackendsDescriptorArrivesForItsTag) {
  MakeInbox(/*accept_peer=*/true);
  DescriptorSender sender;
  ASSERT_TRUE(sender.Connect(1, inbox_->socket_path()));
  ASSERT_TRUE(sender.Send(1, 42, file_fd_));
  EXPECT_FALSE(inbox_->Take(41).valid());  // another open's tag
  UniqueFd got = inbox_->Take(42);
  ASSERT_TRUE(got.valid());
  EXPECT_NE(got.get(), file_fd_);  // a copy
  EXPECT_EQ(InodeOf(got.get()), InodeOf(file_fd_));
  EXPECT_FALSE(inbox_->Take(42).valid());  // taken once
}

TEST_F(DescriptorInboxTest, AnotherProcessIsRefused) {
  MakeInbox(/*accept_peer=*/false);
  DescriptorSender sender;
  ASSERT_TRUE(sender.Connect(1, inbox_->socket_path()));
  ASSERT_TRUE(sender.Send(1, 42, file_fd_));
  EXPECT_FALSE(inbox_->Take(42).valid());
  EXPECT_EQ(inbox_->refused_peers(), 1u);
}

TEST_F(DescriptorInboxTest, MalformedMessagesAreDropped) {
  MakeInbox(/*accept_peer=*/true);
  int s = Connect(inbox_->socket_path());
  ASSERT_TRUE(SendRaw(s, Tag(1), {file_fd_, file_fd_}));  // two descriptors
  ASSERT_TRUE(SendRaw(s, Tag(2), {}));                    // none
  ASSERT_TRUE(SendRaw(s, "abc", {file_fd_}));             // a short tag
  ASSERT_TRUE(SendRaw(s, Tag(0), {file_fd_}));            // tag 0
  ASSERT_TRUE(SendRaw(s, Tag(5), {file_fd_}));            // well formed
  EXPECT_FALSE(inbox_->Take(1).valid());
  EXPECT_FALSE(inbox_->Take(2).valid());
  EXPECT_TRUE(inbox_->Take(5).valid());
  EXPECT_EQ(inbox_->dropped(), 4u);
  close(s);
}

int OpenDescriptors() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) ++n;
  }
  return n;
}

// A message with descriptors and no data reads as 0 bytes, like the end of
// the connection: its descriptors must still be closed, however often it
// comes.
TEST_F(DescriptorInboxTest, DescriptorsOfAnEmptyMessageAreClosed) {
  MakeInbox(/*accept_peer=*/true);
  int s = Connect(inbox_->socket_path());
  ASSERT_TRUE(SendRaw(s, Tag(1), {file_fd_}));
  ASSERT_TRUE(inbox_->Take(1).valid());  // the inbox has its end now
  const int before = OpenDescriptors();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(SendRaw(s, "", {file_fd_, file_fd_, file_fd_, file_fd_}));
  }
  ASSERT_TRUE(SendRaw(s, Tag(5), {file_fd_}));
  EXPECT_TRUE(inbox_->Take(5).valid());  // after them, on the same connection
  EXPECT_EQ(OpenDescriptors(), before);
  EXPECT_EQ(inbox_->dropped(), 200u);
  close(s);
}

TEST_F(DescriptorInboxTest, TwoDescriptorsForOneTagAreBothDropped) {
  MakeInbox(/*accept_peer=*/true);
  int s = Connect(inbox_->socket_path());
  ASSERT_TRUE(SendRaw(s, Tag(9), {file_fd_}));
  ASSERT_TRUE(SendRaw(s, Tag(9), {file_fd_}));
  EXPECT_FALSE(inbox_->Take(9).valid());
  close(s);
}

TEST_F(DescriptorInboxTest, DescriptorsNeverTakenAreBounded) {
  MakeInbox(/*accept_peer=*/true, /*max_waiting=*/2);
  int s = Connect(inbox_->socket_path());
  for (uint64_t tag = 1; tag <= 3; ++tag) {
    ASSERT_TRUE(SendRaw(s, Tag(tag), {file_fd_}));
  }
  EXPECT_FALSE(inbox_->Take(99).valid());  // drains all three
  EXPECT_FALSE(inbox_->Take(1).valid());   // the oldest went
  EXPECT_TRUE(inbox_->Take(2).valid());
  EXPECT_TRUE(inbox_->Take(3).valid());
  close(s);
}

TEST_F(DescriptorInboxTest, TheSocketGoesWithTheInbox) {
  MakeInbox(/*accept_peer=*/true);
  std::string path = inbox_->socket_path();
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  inbox_.reset();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace fusehost
