#include "daemon/survival/kept_descriptors.h"

#include <string>
#include <utility>
#include <vector>

#include "daemon/survival/keeper_protocol.h"
#include "gtest/gtest.h"
#include "tests/daemon/survival/descriptor_probes.h"
#include "tests/daemon/testing/raw_datagram.h"

namespace fusehost {
namespace {

std::vector<UniqueFd> Fds(UniqueFd a) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(a));
  return fds;
}

// The headers of `replies`, for comparing in one go.
std::vector<std::string> Headers(
    const std::vector<KeptDescriptors::Reply>& replies) {
  std::vector<std::string> headers;
  for (const KeptDescriptors::Reply& r : replies) headers.push_back(r.header);
  return headers;
}

bool IsRefusal(const std::vector<KeptDescriptors::Reply>& replies) {
  return replies.size() == 1 && replies[0].header.rfind("ERR ", 0) == 0 &&
         replies[0].fds.empty();
}

using Strings = std::vector<std::string>;

TEST(KeptDescriptorsTest, PutThenGet) {
  KeptDescriptors kept;
  std::vector<UniqueFd> fds;
  fds.push_back(MemfdWith("fuse"));
  fds.push_back(MemfdWith("journal"));
  EXPECT_EQ(Headers(kept.Handle("PUT m-1", std::move(fds))), Strings{"OK"});
  EXPECT_EQ(kept.size(), 1u);

  std::vector<KeptDescriptors::Reply> replies = kept.Handle("GET", {});
  ASSERT_EQ(Headers(replies), (Strings{"ENTRY m-1", "END"}));
  ASSERT_EQ(replies[0].fds.size(), 2u);
  EXPECT_EQ(ContentsOf(replies[0].fds[0]), "fuse");
  EXPECT_EQ(ContentsOf(replies[0].fds[1]), "journal");
  EXPECT_TRUE(replies[1].fds.empty());
  // GET gives copies away; the keeper keeps its own.
  EXPECT_EQ(kept.size(), 1u);
  EXPECT_EQ(Headers(kept.Handle("GET", {})), (Strings{"ENTRY m-1", "END"}));
}

TEST(KeptDescriptorsTest, PutReplacesAndClosesWhatWasKept) {
  KeptDescriptors kept;
  Pipe p = MakePipe();
  kept.Handle("PUT m", Fds(std::move(p.write_end)));
  EXPECT_EQ(Headers(kept.Handle("PUT m", Fds(MemfdWith("new")))),
            Strings{"OK"});
  EXPECT_TRUE(WriteEndsClosed(p));
  std::vector<KeptDescriptors::Reply> replies = kept.Handle("GET", {});
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_EQ(replies[0].fds.size(), 1u);
  EXPECT_EQ(ContentsOf(replies[0].fds[0]), "new");
}

TEST(KeptDescriptorsTest, RefusedPutClosesWhatCame) {
  KeptDescriptors kept;
  Pipe p = MakePipe();
  EXPECT_TRUE(IsRefusal(kept.Handle("PUT bad/key", Fds(std::move(p.write_end)))));
  EXPECT_TRUE(WriteEndsClosed(p));
  EXPECT_EQ(kept.size(), 0u);
}

TEST(KeptDescriptorsTest, PutWantsOneToEightDescriptors) {
  KeptDescriptors kept;
  EXPECT_TRUE(IsRefusal(kept.Handle("PUT m", {})));
  std::vector<UniqueFd> nine;
  for (size_t i = 0; i <= kMaxKeeperFds; ++i) nine.push_back(MemfdWith("x"));
  EXPECT_TRUE(IsRefusal(kept.Handle("PUT m", std::move(nine))));
  EXPECT_TRUE(IsRefusal(kept.Handle("PUT", Fds(MemfdWith("x")))));
  EXPECT_TRUE(IsRefusal(kept.Handle("PUT ", Fds(MemfdWith("x")))));
  EXPECT_TRUE(IsRefusal(
      kept.Handle("PUT " + std::string(kMaxKeeperKey + 1, 'k'),
                  Fds(MemfdWith("x")))));
  EXPECT_EQ(kept.size(), 0u);
}

TEST(KeptDescriptorsTest, DelClosesAndForgets) {
  KeptDescriptors kept;
  Pipe p = MakePipe();
  kept.Handle("PUT m", Fds(std::move(p.write_end)));
  EXPECT_EQ(Headers(kept.Handle("DEL m", {})), Strings{"OK"});
  EXPECT_TRUE(WriteEndsClosed(p));
  EXPECT_EQ(kept.size(), 0u);
  EXPECT_EQ(Headers(kept.Handle("GET", {})), Strings{"END"});
  // Unknown keys are no error: the daemon may repeat a DEL it never saw
  // answered.
  EXPECT_EQ(Headers(kept.Handle("DEL m", {})), Strings{"OK"});
}

TEST(KeptDescriptorsTest, DelRefusesDescriptorsAndBadKeys) {
  KeptDescriptors kept;
  kept.Handle("PUT m", Fds(MemfdWith("x")));
  Pipe p = MakePipe();
  EXPECT_TRUE(IsRefusal(kept.Handle("DEL m", Fds(std::move(p.write_end)))));
  EXPECT_TRUE(WriteEndsClosed(p));
  EXPECT_TRUE(IsRefusal(kept.Handle("DEL", {})));
  EXPECT_TRUE(IsRefusal(kept.Handle("DEL m n", {})));
  EXPECT_EQ(kept.size(), 1u);
}

TEST(KeptDescriptorsTest, GetAnswersInKeyOrderThenEnd) {
  KeptDescriptors kept;
  EXPECT_EQ(Headers(kept.Handle("GET", {})), Strings{"END"});
  for (const char* key : {"m-2", "m-10", "a", "m-1"}) {
    kept.Handle(std::string("PUT ") + key, Fds(MemfdWith(key)));
  }
  std::vector<KeptDescriptors::Reply> replies = kept.Handle("GET", {});
  ASSERT_EQ(Headers(replies), (Strings{"ENTRY a", "ENTRY m-1", "ENTRY m-10",
                                       "ENTRY m-2", "END"}));
  EXPECT_EQ(ContentsOf(replies[2].fds[0]), "m-10");
}

TEST(KeptDescriptorsTest, GetTakesNothing) {
  KeptDescriptors kept;
  EXPECT_TRUE(IsRefusal(kept.Handle("GET m", {})));
  Pipe p = MakePipe();
  EXPECT_TRUE(IsRefusal(kept.Handle("GET", Fds(std::move(p.write_end)))));
  EXPECT_TRUE(WriteEndsClosed(p));
}

TEST(KeptDescriptorsTest, MalformedAndUnknownRequestsAreRefused) {
  KeptDescriptors kept;
  for (const std::string& header :
       {std::string(""), std::string("put m"), std::string("PUT\x01m"),
        std::string(" GET"), std::string("HELLO"), std::string("OK"),
        std::string("ENTRY m"), std::string("PUT m\0", 6)}) {
    EXPECT_TRUE(IsRefusal(kept.Handle(header, Fds(MemfdWith("x")))))
        << header;
  }
  EXPECT_EQ(kept.size(), 0u);
}

TEST(KeptDescriptorsTest, ReadyIsRememberedUntilTaken) {
  KeptDescriptors kept;
  EXPECT_FALSE(kept.TakeReady());
  std::vector<KeptDescriptors::Reply> r = kept.Handle("READY", {});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header, "OK");
  EXPECT_TRUE(kept.TakeReady());
  EXPECT_FALSE(kept.TakeReady());
  EXPECT_EQ(kept.Handle("READY now", {})[0].header.substr(0, 3), "ERR");
  EXPECT_FALSE(kept.TakeReady());
}

TEST(KeptDescriptorsTest, EverythingClosesWithTheObject) {
  Pipe p = MakePipe();
  {
    KeptDescriptors kept;
    kept.Handle("PUT m", Fds(std::move(p.write_end)));
  }
  EXPECT_TRUE(WriteEndsClosed(p));
}

TEST(ServeKeeperRequestTest, AnswersOverTheSocket) {
  SocketPair s = MakeSocketPair();
  KeptDescriptors kept;
  UniqueFd m = MemfdWith("state");
  ASSERT_TRUE(SendMessage(s.a.get(), "PUT m", {m.get()}).ok());
  ASSERT_TRUE(SendMessage(s.a.get(), "GET", {}).ok());
  const absl::Duration wait = absl::Seconds(2);
  EXPECT_TRUE(ServeKeeperRequest(s.b.get(), wait, wait, &kept).ok());
  EXPECT_TRUE(ServeKeeperRequest(s.b.get(), wait, wait, &kept).ok());

  absl::StatusOr<KeeperMessage> ok = ReceiveMessage(s.a.get(), wait);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->header, "OK");
  absl::StatusOr<KeeperMessage> entry = ReceiveMessage(s.a.get(), wait);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->header, "ENTRY m");
  ASSERT_EQ(entry->fds.size(), 1u);
  EXPECT_EQ(ContentsOf(entry->fds[0].get()), "state");
  absl::StatusOr<KeeperMessage> end = ReceiveMessage(s.a.get(), wait);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->header, "END");
}

TEST(ServeKeeperRequestTest, TruncatedRequestIsAnswered) {
  SocketPair s = MakeSocketPair();
  KeptDescriptors kept;
  const absl::Duration wait = absl::Seconds(2);
  ASSERT_TRUE(SendRaw(s.a.get(), "PUT " + std::string(kMaxKeeperHeader, 'k'),
                      {}));
  EXPECT_TRUE(ServeKeeperRequest(s.b.get(), wait, wait, &kept).ok());
  absl::StatusOr<KeeperMessage> reply = ReceiveMessage(s.a.get(), wait);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->header.rfind("ERR ", 0), 0u) << reply->header;
}

TEST(ServeKeeperRequestTest, NothingAndClosed) {
  SocketPair s = MakeSocketPair();
  KeptDescriptors kept;
  const absl::Duration wait = absl::Milliseconds(20);
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      ServeKeeperRequest(s.b.get(), wait, wait, &kept)));
  s.a.reset();
  EXPECT_TRUE(
      absl::IsUnavailable(ServeKeeperRequest(s.b.get(), wait, wait, &kept)));
}

}  // namespace
}  // namespace fusehost
