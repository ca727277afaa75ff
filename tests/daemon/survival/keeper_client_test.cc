#include "daemon/survival/keeper_client.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/survival/keeper_protocol.h"
#include "daemon/survival/kept_descriptors.h"
#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"
#include "tests/daemon/survival/served_keeper.h"

namespace fusehost {
namespace {

class KeeperClientTest : public ::testing::Test {
 protected:
  ServedKeeper keeper_;
  KeeperClient* const client_ = keeper_.client();
};

TEST_F(KeeperClientTest, PutTakeAllRemove) {
  UniqueFd fuse = MemfdWith("fuse");
  UniqueFd journal = MemfdWith("journal");
  UniqueFd other = MemfdWith("other");
  ASSERT_TRUE(client_->Put("m-2", {other.get()}).ok());
  ASSERT_TRUE(client_->Put("m-1", {fuse.get(), journal.get()}).ok());
  // The caller keeps its descriptors.
  EXPECT_TRUE(IsOpen(fuse.get()));
  EXPECT_TRUE(IsOpen(journal.get()));

  absl::StatusOr<std::vector<KeeperClient::Entry>> all = client_->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].key, "m-1");
  ASSERT_EQ((*all)[0].fds.size(), 2u);
  EXPECT_EQ(ContentsOf((*all)[0].fds[0].get()), "fuse");
  EXPECT_EQ(ContentsOf((*all)[0].fds[1].get()), "journal");
  EXPECT_TRUE(IsCloseOnExec((*all)[0].fds[0].get()));
  EXPECT_EQ((*all)[1].key, "m-2");
  EXPECT_EQ(ContentsOf((*all)[1].fds[0].get()), "other");

  ASSERT_TRUE(client_->Remove("m-1").ok());
  ASSERT_TRUE(client_->Remove("never-put").ok());
  all = client_->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].key, "m-2");
}

TEST_F(KeeperClientTest, TakeAllOfNothing) {
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = client_->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST_F(KeeperClientTest, ManyEntriesComeBack) {
  // More replies than the socket's buffer holds: the keeper waits for the
  // client to read.
  UniqueFd m = MemfdWith("m");
  constexpr int kEntries = 400;
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_TRUE(client_->Put(absl::StrCat("m-", 1000 + i), {m.get()}).ok());
  }
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = client_->TakeAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kEntries));
  EXPECT_EQ(all->back().key, absl::StrCat("m-", 1000 + kEntries - 1));
  EXPECT_EQ(ContentsOf(all->back().fds[0].get()), "m");
}

TEST_F(KeeperClientTest, BadArgumentsAreRefusedWithoutBreakingTheConnection) {
  UniqueFd m = MemfdWith("m");
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Put("bad key", {m.get()})));
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Put("m", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(
      client_->Put("m", std::vector<int>(kMaxKeeperFds + 1, m.get()))));
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Put("m", {-1})));
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Remove("")));
  EXPECT_TRUE(client_->Put("m", {m.get()}).ok());
}

TEST(KeeperClientFailureTest, SilentKeeperTimesOutAndTheConnectionCloses) {
  SocketPair s = MakeSocketPair();
  KeeperClient client(std::move(s.a), absl::Milliseconds(50));
  UniqueFd m = MemfdWith("m");
  EXPECT_TRUE(absl::IsDeadlineExceeded(client.Put("m", {m.get()})));
  // A late reply would answer the wrong call: no further calls.
  EXPECT_TRUE(absl::IsUnavailable(client.Remove("m")));
  EXPECT_TRUE(absl::IsUnavailable(client.TakeAll().status()));
  // The client's end is closed: the keeper sees it.
  EXPECT_TRUE(absl::IsUnavailable(
      SendMessage(s.b.get(), "OK", {}, absl::Milliseconds(50))));
}

TEST(KeeperClientFailureTest, GoneKeeperIsUnavailable) {
  SocketPair s = MakeSocketPair();
  KeeperClient client(std::move(s.a));
  s.b.reset();
  UniqueFd m = MemfdWith("m");
  EXPECT_TRUE(absl::IsUnavailable(client.Put("m", {m.get()})));
  EXPECT_TRUE(absl::IsUnavailable(client.TakeAll().status()));
}

TEST(KeeperClientFailureTest, RefusalIsAnError) {
  SocketPair s = MakeSocketPair();
  KeeperClient client(std::move(s.a));
  std::thread keeper([&s] {
    absl::StatusOr<KeeperMessage> request =
        ReceiveMessage(s.b.get(), absl::Seconds(2));
    SendMessage(s.b.get(), KeeperErrorHeader("no room"), {}).IgnoreError();
    request = ReceiveMessage(s.b.get(), absl::Seconds(2));
    SendMessage(s.b.get(), "ENTRY a b c", {}).IgnoreError();
  });
  absl::Status refused = client.Remove("m");
  EXPECT_TRUE(absl::IsInternal(refused));
  EXPECT_NE(refused.message().find("no room"), absl::string_view::npos)
      << refused;
  // An answer that fits no request breaks the connection.
  EXPECT_TRUE(absl::IsInternal(client.TakeAll().status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Remove("m")));
  keeper.join();
}

// FromEnvironment reads and changes the process's environment.
class KeeperClientEnvironmentTest : public ::testing::Test {
 protected:
  ~KeeperClientEnvironmentTest() override { unsetenv(kKeeperFdVariable); }
};

TEST_F(KeeperClientEnvironmentTest, NoVariableNoClient) {
  unsetenv(kKeeperFdVariable);
  EXPECT_EQ(KeeperClient::FromEnvironment(), nullptr);
}

TEST_F(KeeperClientEnvironmentTest, TakesTheSocketAndHidesIt) {
  // Inherited across exec, as the keeper passes it.
  SocketPair s = MakeSocketPair(/*extra_flags=*/0);
  const int fd = s.a.get();
  setenv(kKeeperFdVariable, std::to_string(fd).c_str(), 1);
  std::unique_ptr<KeeperClient> client = KeeperClient::FromEnvironment();
  ASSERT_NE(client, nullptr);
  s.a.release();  // the client's now
  EXPECT_EQ(std::getenv(kKeeperFdVariable), nullptr);
  EXPECT_TRUE(IsCloseOnExec(fd));

  std::thread keeper([&s] {
    KeptDescriptors kept;
    ServeKeeperRequest(s.b.get(), absl::Seconds(2), absl::Seconds(2), &kept)
        .IgnoreError();
  });
  absl::StatusOr<std::vector<KeeperClient::Entry>> all = client->TakeAll();
  keeper.join();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST_F(KeeperClientEnvironmentTest, IgnoresWhatIsNotTheKeepersSocket) {
  Pipe p = MakePipe();
  for (const std::string& value :
       {std::string("seven"), std::string("-1"), std::string(""),
        std::to_string(p.read_end.get()), std::string("100000")}) {
    setenv(kKeeperFdVariable, value.c_str(), 1);
    EXPECT_EQ(KeeperClient::FromEnvironment(), nullptr) << value;
    EXPECT_EQ(std::getenv(kKeeperFdVariable), nullptr);
  }
  // Not the client's to close.
  EXPECT_TRUE(IsOpen(p.read_end.get()));
}

}  // namespace
}  // namespace fusehost
