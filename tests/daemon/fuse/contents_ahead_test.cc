// Small files fetched ahead of their opens (daemon/fuse/contents_ahead.h),
// through the request handlers: what is fetched, when an open is answered
// with it, and when it must go to the backend after all.

#include <fcntl.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/pipeline/handle_map.h"
#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
constexpr uint64_t kRoot = NodeTable::kRootId;

class ContentsAheadTest : public HandlerTest {
 protected:
  ContentsAheadTest() {
    handles_ = &handle_map_;
    contents_ahead_files_ = 8;
    Rebuild(KernelTimeouts(), /*backend_ioctl=*/false);
    v1::Attr dir = FileAttr(2, S_IFDIR | 0755, 2);
    dir_ = Known(kRoot, "d", dir);
    pipeline_.cached_path = "/d";
    // a, b, c and e are small files; "big" is too large to fetch, "sub" a
    // directory.
    AddFile("a", 10, 10);
    AddFile("b", 11, 20);
    AddFile("big", 12, kOpenContentsWanted + 1);
    AddFile("c", 13, 30);
    pipeline_.cached_listing.emplace("sub", ListingEntry{S_IFDIR, 14});
    AddFile("e", 15, 40);
  }

  // Whatever a test left unanswered fails, so every request gets its
  // answer.
  void TearDown() override { AnswerTheRest(); }
  void AnswerTheRest() {
    for (size_t i = 0; i < pipeline_.ops.size(); ++i) {
      if (pipeline_.ops[i].done) pipeline_.Answer(i, Errno(EIO));
    }
  }

  void AddFile(const std::string& name, uint64_t ino, uint64_t size) {
    v1::Attr a = FileAttr(ino);
    a.set_size(size);
    a.mutable_mtime()->set_sec(1000);
    pipeline_.cached_attrs["/d/" + name] = a;
    pipeline_.cached_listing.emplace(name, ListingEntry{S_IFREG, ino});
  }

  static v1::OpResult OpenWith(uint64_t fh, const std::string& contents) {
    v1::OpResult r;
    r.mutable_open()->set_fh(fh);
    r.mutable_open()->set_contents(contents);
    return r;
  }

  // Opens "a", which goes to the backend and starts the fetch, and answers
  // that open: the index of it among the ops sent.
  size_t OpenFirst() {
    uint64_t a = Known(dir_, "a", pipeline_.cached_attrs["/d/a"]);
    const size_t before = sent();
    auto open = Req(KernelOp::kOpen);
    handlers_->Open(open, a, O_RDONLY);
    EXPECT_EQ(pipeline_.op(before).open().path(), "/d/a");
    pipeline_.Answer(before, OpenWith(9, std::string(10, 'a')));
    EXPECT_EQ(open->kind, Kind::kOpen);
    return before;
  }

  // Looks `name` up and opens it while its contents are on their way: the
  // open waits, sending nothing.
  std::shared_ptr<FakeRequest> OpenWaiting(const std::string& name) {
    uint64_t node = Known(dir_, name, pipeline_.cached_attrs["/d/" + name]);
    const size_t before = sent();
    auto open = Req(KernelOp::kOpen);
    handlers_->Open(open, node, O_RDONLY);
    EXPECT_EQ(open->kind, Kind::kNone) << "answered before the fetch came";
    EXPECT_EQ(sent(), before);
    return open;
  }

  // Answers the fetch's opens (ops first..first+2: b, c, e) with their
  // contents, as big as the cached sizes say.
  void AnswerFetch(size_t first) {
    pipeline_.Answer(first, OpenWith(21, std::string(20, 'b')));
    pipeline_.Answer(first + 1, OpenWith(23, std::string(30, 'c')));
    pipeline_.Answer(first + 2, OpenWith(25, std::string(40, 'e')));
  }

  HandleMap handle_map_;
  uint64_t dir_ = 0;
};

TEST_F(ContentsAheadTest, TheSmallFilesListedAfterAnOpenedOneComeInOneGo) {
  const size_t open_a = OpenFirst();
  ASSERT_EQ(sent(), open_a + 4) << "a's open, then b, c and e";
  EXPECT_EQ(pipeline_.op(open_a).open().path(), "/d/a");
  ASSERT_EQ(pipeline_.groups.size(), 1u);
  EXPECT_EQ(pipeline_.groups[0], 3u) << "one SendAll";
  const char* names[] = {"/d/b", "/d/c", "/d/e"};
  for (size_t i = 0; i < 3; ++i) {
    const v1::Op& op = pipeline_.op(open_a + 1 + i);
    EXPECT_EQ(op.open().path(), names[i]);
    EXPECT_EQ(op.open().flags(), O_RDONLY);
    EXPECT_EQ(op.open().contents_up_to(), kOpenContentsWanted);
    EXPECT_EQ(op.caller().uid(), 1000u) << "as the reader";
  }
  AnswerFetch(open_a + 1);
  // The backend's handles are released, together, once all came back.
  ASSERT_EQ(sent(), open_a + 7);
  EXPECT_EQ(pipeline_.groups.back(), 3u);
  EXPECT_EQ(pipeline_.op(open_a + 4).release().fh(), 21u);
  EXPECT_EQ(pipeline_.op(open_a + 5).release().fh(), 23u);
  EXPECT_EQ(pipeline_.op(open_a + 6).release().fh(), 25u);

  // b's open and first read cost no message.
  uint64_t b = Known(dir_, "b", pipeline_.cached_attrs["/d/b"]);
  const size_t before = sent();
  auto open = Req(KernelOp::kOpen);
  handlers_->Open(open, b, O_RDONLY);
  ASSERT_EQ(open->kind, Kind::kOpen);
  EXPECT_EQ(sent(), before);
  auto read = Req(KernelOp::kRead);
  KernelFile file;
  file.fh = open->open.fh;
  file.flags = O_RDONLY;
  handlers_->Read(read, b, file, 4096, 0);
  ASSERT_EQ(read->kind, Kind::kData);
  EXPECT_EQ(read->data, std::string(20, 'b'));
  EXPECT_EQ(sent(), before);
  // Served once: the next open of b asks the backend (and fetches nothing
  // new: c and e are kept already).
  handlers_->Open(Req(KernelOp::kOpen), b, O_RDONLY);
  EXPECT_EQ(sent(), before + 1);
  EXPECT_EQ(pipeline_.op(before).open().path(), "/d/b");
  EXPECT_EQ(handlers_->contents_fetched_ahead(), 3u);
  EXPECT_EQ(handlers_->opens_answered_ahead(), 1u);
}

TEST_F(ContentsAheadTest, AnOpenOfAFileOnItsWayWaitsForIt) {
  const size_t open_a = OpenFirst();
  const size_t before = sent() + 1;  // after c's lookup
  auto open = OpenWaiting("c");
  AnswerFetch(open_a + 1);
  EXPECT_EQ(open->kind, Kind::kOpen);
  EXPECT_EQ(sent(), before + 3) << "only the fetch's releases";
}

TEST_F(ContentsAheadTest, AFailedFetchLeavesTheWaitingOpenToTheBackend) {
  const size_t open_a = OpenFirst();
  const size_t before = sent() + 1;
  auto open = OpenWaiting("b");
  pipeline_.Answer(open_a + 1, Errno(EACCES));
  ASSERT_EQ(sent(), before + 1) << "b's own open";
  EXPECT_EQ(pipeline_.op(before).open().path(), "/d/b");
  pipeline_.Answer(before, Errno(EACCES));
  EXPECT_EQ(open->kind, Kind::kError);
  EXPECT_EQ(open->err, EACCES);
}

TEST_F(ContentsAheadTest, ChangedAttributesAnotherCallerOrWritingGoToTheBackend) {
  const size_t open_a = OpenFirst();
  AnswerFetch(open_a + 1);
  uint64_t b = Known(dir_, "b", pipeline_.cached_attrs["/d/b"]);
  uint64_t c = Known(dir_, "c", pipeline_.cached_attrs["/d/c"]);
  uint64_t e = Known(dir_, "e", pipeline_.cached_attrs["/d/e"]);

  // b changed since (its cached attributes say so).
  pipeline_.cached_attrs["/d/b"].mutable_mtime()->set_nsec(1);
  size_t before = sent();
  handlers_->Open(Req(KernelOp::kOpen), b, O_RDONLY);
  EXPECT_EQ(sent(), before + 1);

  // c was fetched for uid 1000.
  auto other = Req(KernelOp::kOpen);
  other->caller().set_uid(1001);
  before = sent();
  handlers_->Open(other, c, O_RDONLY);
  EXPECT_EQ(sent(), before + 1);
  // ... and is still there for its reader.
  auto own = Req(KernelOp::kOpen);
  handlers_->Open(own, c, O_RDONLY);
  EXPECT_EQ(own->kind, Kind::kOpen);
  EXPECT_EQ(sent(), before + 1);

  // Opened to write, e goes to the backend.
  before = sent();
  handlers_->Open(Req(KernelOp::kOpen), e, O_RDWR);
  EXPECT_EQ(sent(), before + 1);
  EXPECT_EQ(handlers_->opens_answered_ahead(), 1u);
}

TEST_F(ContentsAheadTest, ContentsOfAnotherSizeThanCachedAreNotKept) {
  const size_t open_a = OpenFirst();
  pipeline_.Answer(open_a + 1, OpenWith(21, "grown since listed"));
  pipeline_.Answer(open_a + 2, OpenWith(23, std::string(30, 'c')));
  pipeline_.Answer(open_a + 3, OpenWith(25, std::string(40, 'e')));
  EXPECT_EQ(handlers_->contents_fetched_ahead(), 2u);
  uint64_t b = Known(dir_, "b", pipeline_.cached_attrs["/d/b"]);
  const size_t before = sent();
  handlers_->Open(Req(KernelOp::kOpen), b, O_RDONLY);
  EXPECT_EQ(sent(), before + 1);
}

TEST_F(ContentsAheadTest,
       ListingsAndSizesPastTheirLifetimeStillChooseTheWindow) {
  // As between `ls` and `cat` with 1 s lifetimes: only the opened file's
  // attributes are fresh (the kernel looked it up).
  pipeline_.listings_expired = true;
  for (const char* name : {"/d/b", "/d/big", "/d/c", "/d/e"}) {
    pipeline_.expired_attrs[name] = pipeline_.cached_attrs[name];
    pipeline_.cached_attrs.erase(name);
  }
  const size_t open_a = OpenFirst();
  ASSERT_EQ(sent(), open_a + 7)
      << "a's open, then b, c and e, and their attributes anew";
  EXPECT_EQ(pipeline_.groups.back(), 6u) << "one SendAll";
  const char* names[] = {"/d/b", "/d/c", "/d/e"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(pipeline_.op(open_a + 1 + i).open().path(), names[i]);
    EXPECT_EQ(pipeline_.op(open_a + 4 + i).getattr().path(), names[i]);
    EXPECT_EQ(pipeline_.op(open_a + 4 + i).caller().uid(), 1000u);
  }
  AnswerFetch(open_a + 1);
  EXPECT_EQ(handlers_->contents_fetched_ahead(), 3u);

  // The kernel looks b up: fresh attributes, as they were. Its open costs
  // no message.
  pipeline_.cached_attrs["/d/b"] = pipeline_.expired_attrs["/d/b"];
  uint64_t b = Known(dir_, "b", pipeline_.cached_attrs["/d/b"]);
  size_t before = sent();
  auto open = Req(KernelOp::kOpen);
  handlers_->Open(open, b, O_RDONLY);
  ASSERT_EQ(open->kind, Kind::kOpen);
  EXPECT_EQ(sent(), before);

  // c changed since its attributes were cached: its fresh ones differ, so
  // what was fetched is not served.
  v1::Attr c_now = pipeline_.expired_attrs["/d/c"];
  c_now.mutable_mtime()->set_sec(2000);
  pipeline_.cached_attrs["/d/c"] = c_now;
  uint64_t c = Known(dir_, "c", c_now);
  before = sent();
  handlers_->Open(Req(KernelOp::kOpen), c, O_RDONLY);
  ASSERT_GE(sent(), before + 1);
  EXPECT_EQ(pipeline_.op(before).open().path(), "/d/c");
  EXPECT_EQ(handlers_->opens_answered_ahead(), 1u);
}

TEST_F(ContentsAheadTest, AWindowGoesOnIntoTheNextDirectory) {
  Listing root;
  root.emplace("d", ListingEntry{S_IFDIR, 2});
  root.emplace("d1", ListingEntry{S_IFREG, 3});  // not a directory
  root.emplace("d2", ListingEntry{S_IFDIR, 4});
  pipeline_.more_listings["/"] = root;
  Listing d2;
  for (const char* n : {"x", "y"}) {
    d2.emplace(n, ListingEntry{S_IFREG, 0});
    v1::Attr a = FileAttr(50);
    a.set_size(5);
    pipeline_.cached_attrs[std::string("/d2/") + n] = a;
  }
  pipeline_.more_listings["/d2"] = d2;
  const size_t open_a = OpenFirst();
  std::vector<std::string> paths;
  for (size_t i = open_a + 1; i < sent(); ++i) {
    paths.push_back(pipeline_.op(i).open().path());
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/b", "/d/c", "/d/e", "/d2/x",
                                             "/d2/y"}));
}

TEST_F(ContentsAheadTest,
       AWindowGoesOnIntoTheNextDirectoryOfANamesOnlyListing) {
  // fusepy's readdir gives names only: the attributes tell files from
  // directories.
  Listing root;
  for (const char* n : {"d", "d1", "d2"}) root.emplace(n, ListingEntry{});
  pipeline_.more_listings["/"] = root;
  pipeline_.expired_attrs["/d1"] = FileAttr(3);
  pipeline_.expired_attrs["/d2"] = FileAttr(4, S_IFDIR | 0755, 2);
  Listing d2;
  d2.emplace("x", ListingEntry{});
  v1::Attr x = FileAttr(50);
  x.set_size(5);
  pipeline_.expired_attrs["/d2/x"] = x;
  pipeline_.more_listings["/d2"] = d2;
  const size_t open_a = OpenFirst();
  std::vector<std::string> paths;
  for (size_t i = open_a + 1; i < sent(); ++i) {
    if (pipeline_.op(i).has_open()) {
      paths.push_back(pipeline_.op(i).open().path());
    }
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/b", "/d/c", "/d/e", "/d2/x"}));
}

// Files n00..n39 after e in /d; opens sent from `first` on answered with
// contents as big as cached.
class ContentsAheadWindowTest : public ContentsAheadTest {
 protected:
  ContentsAheadWindowTest() {
    for (int i = 0; i < 40; ++i) AddFile(Name(i), 100 + i, 10);
  }
  static std::string Name(int i) {
    return "n" + std::string(i < 10 ? "0" : "") + std::to_string(i);
  }
  std::vector<std::string> OpenedPaths(size_t first) {
    std::vector<std::string> out;
    for (size_t i = first; i < sent(); ++i) {
      if (pipeline_.op(i).has_open()) out.push_back(pipeline_.op(i).open().path());
    }
    return out;
  }
  void AnswerOpens(size_t first) {
    for (size_t i = first; i < sent(); ++i) {
      if (!pipeline_.op(i).has_open() || !pipeline_.ops[i].done) continue;
      const v1::Attr& a = pipeline_.cached_attrs[pipeline_.op(i).open().path()];
      pipeline_.Answer(i, OpenWith(1000 + i, std::string(a.size(), 'x')));
    }
  }
  // Opens /d/NAME: true if the daemon answered it without a message.
  bool OpenHere(int i) {
    uint64_t node =
        Known(dir_, Name(i), pipeline_.cached_attrs["/d/" + Name(i)]);
    const size_t before = sent();
    auto open = Req(KernelOp::kOpen);
    handlers_->Open(open, node, O_RDONLY);
    if (open->kind == Kind::kOpen) return true;
    // Sent to the backend: its open is the first op since.
    EXPECT_EQ(pipeline_.op(before).open().path(), "/d/" + Name(i));
    pipeline_.Answer(before, OpenWith(900 + i, std::string(10, 'x')));
    return false;
  }
};

TEST_F(ContentsAheadWindowTest, AReaderThatSkipsNamesIsNotSentThem) {
  EXPECT_FALSE(OpenHere(0));
  size_t first = sent();
  // Nothing known of the reader yet: the next 8.
  std::vector<std::string> want;
  for (int i = 1; i <= 8; ++i) want.push_back("/d/" + Name(i));
  EXPECT_EQ(OpenedPaths(first - 8), want);
  AnswerOpens(first - 8);
  EXPECT_TRUE(OpenHere(5));   // a step of 5
  first = sent();
  EXPECT_FALSE(OpenHere(10));
  // Every fifth after n10, to the end of the listing.
  want.clear();
  for (int i = 15; i < 40; i += 5) want.push_back("/d/" + Name(i));
  EXPECT_EQ(OpenedPaths(first + 2), want);  // after n10's lookup and open
  AnswerOpens(first);
  for (int i = 15; i < 40; i += 5) EXPECT_TRUE(OpenHere(i)) << i;
}

TEST_F(ContentsAheadWindowTest, TheNextWindowGoesOutHalfWayThroughThisOne) {
  contents_ahead_files_ = 4;
  Rebuild(KernelTimeouts(), /*backend_ioctl=*/false);
  EXPECT_FALSE(OpenHere(0));
  AnswerOpens(0);
  EXPECT_TRUE(OpenHere(1));
  size_t first = sent();
  EXPECT_TRUE(OpenHere(2));  // two of four left: the next four go
  EXPECT_EQ(OpenedPaths(first + 1),
            (std::vector<std::string>{"/d/n05", "/d/n06", "/d/n07", "/d/n08"}));
  AnswerOpens(first);
  for (int i = 3; i <= 6; ++i) EXPECT_TRUE(OpenHere(i)) << i;
}

// The store itself: the oldest contents make room for new ones.
TEST_F(ContentsAheadTest, TheOldestContentsGoFirstWhenFull) {
  ContentsAhead::Options o;
  o.files = 8;
  o.max_bytes = 50;
  o.coherence = &pipeline_;
  o.send_all = [this](std::vector<PendingOp> ops) {
    pipeline_.SendAll(std::move(ops));
  };
  ContentsAhead ahead(o);
  v1::Caller me;
  me.set_uid(1000);
  me.set_gid(1000);
  const size_t first = sent();
  pipeline_.SendAll(ahead.Opened("/d/a", me, /*answered=*/false));
  ASSERT_EQ(sent(), first + 3);
  AnswerFetch(first);  // b (20 bytes), c (30), then e (40): b and c go
  EXPECT_EQ(ahead.fetched(), 3u);
  EXPECT_EQ(ahead.kept_bytes(), 40u);
  ContentsAhead::Fetched got;
  EXPECT_FALSE(ahead.Take("/d/b", me, &got));
  EXPECT_FALSE(ahead.Take("/d/c", me, &got));
  ASSERT_TRUE(ahead.Take("/d/e", me, &got));
  EXPECT_EQ(got.data, std::string(40, 'e'));
  EXPECT_EQ(ahead.kept_bytes(), 0u);
  // Fetched again once taken.
  pipeline_.SendAll(ahead.Opened("/d/a", me, /*answered=*/false));
  EXPECT_EQ(sent(), first + 9) << "three releases, three opens";
  AnswerTheRest();  // while `ahead` is there
}

TEST_F(ContentsAheadTest, OffByDefault) {
  contents_ahead_files_ = 0;
  Rebuild(KernelTimeouts(), /*backend_ioctl=*/false);
  const size_t open_a = OpenFirst();
  EXPECT_EQ(sent(), open_a + 1) << "a's open alone";
}

}  // namespace
}  // namespace fusehost
