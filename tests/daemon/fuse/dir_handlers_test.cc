// Directories through the request handlers: listings from the backend and
// from the cache, paging into the kernel's buffers, readdirplus references.

#include <linux/fuse.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/memory_budget.h"
#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
constexpr uint64_t kRoot = NodeTable::kRootId;

struct Dirent {
  std::string name;
  uint64_t ino;        // dirent's inode number
  uint64_t node;       // readdirplus: the node handed out (0: none)
  uint64_t next;       // offset to continue from
  uint64_t size;       // readdirplus: the attributes' st_size
};

// Decodes a readdir(plus) reply buffer.
std::vector<Dirent> Decode(const std::string& buf, bool plus) {
  std::vector<Dirent> out;
  size_t pos = 0;
  while (pos < buf.size()) {
    const struct fuse_dirent* d;
    Dirent e = {};
    if (plus) {
      const auto* p = reinterpret_cast<const fuse_direntplus*>(buf.data() + pos);
      d = &p->dirent;
      e.node = p->entry_out.nodeid;
      e.size = p->entry_out.attr.size;
      pos += FUSE_DIRENTPLUS_SIZE(p);
    } else {
      d = reinterpret_cast<const fuse_dirent*>(buf.data() + pos);
      pos += FUSE_DIRENT_SIZE(d);
    }
    e.name.assign(d->name, d->namelen);
    e.ino = d->ino;
    e.next = d->off;
    out.push_back(e);
  }
  return out;
}

std::vector<std::string> Names(const std::vector<Dirent>& entries) {
  std::vector<std::string> names;
  for (const Dirent& e : entries) names.push_back(e.name);
  return names;
}

v1::OpResult Page(const std::vector<std::string>& names, bool eof,
                  uint64_t first_cookie = 0) {
  v1::OpResult r;
  uint64_t cookie = first_cookie;
  for (const std::string& name : names) {
    v1::DirEntry* e = r.mutable_readdir()->add_entries();
    e->set_name(name);
    *e->mutable_attr() = FileAttr(100 + name.size());
    if (first_cookie != 0) e->set_offset(++cookie);
  }
  r.mutable_readdir()->set_eof(eof);
  return r;
}

class DirHandlerTest : public HandlerTest {
 protected:
  // The kernel releases every directory it opened; so does each test, here
  // unless it released the handle itself (an unreleased handle is a leak).
  void TearDown() override {
    for (uint64_t fh : open_) {
      handlers_->Releasedir(Req(KernelOp::kReleasedir), fh);
    }
  }
  void Release(std::shared_ptr<FakeRequest> req, uint64_t fh) {
    open_.erase(std::remove(open_.begin(), open_.end(), fh), open_.end());
    handlers_->Releasedir(std::move(req), fh);
  }
  // Shows the handlers a caller that looks up what it lists (as ls -l
  // does): a readdirplus of a name without attributes, then a LOOKUP of
  // it. Leaves every op answered; returns how many were sent.
  size_t TeachThatCallersLookUp() {
    uint64_t fh = OpenRoot();
    v1::OpResult page;
    page.mutable_readdir()->add_entries()->set_name("seen");
    page.mutable_readdir()->set_eof(true);
    Read(fh, 2, 4096, true, &page);
    Known(kRoot, "seen", FileAttr(3));
    Release(Req(KernelOp::kReleasedir), fh);
    pipeline_.Answer(sent() - 1, Ok());
    return sent();
  }
  // One pass over a directory (the root unless told) holding a file "f"
  // and a directory "d", both listed with attributes, to its end: whether
  // "f" was handed out with them (the directory always is). The handle is
  // released after, unless told (TearDown does then).
  bool ReadFileAndDir(uint64_t node = kRoot, bool release = true) {
    uint64_t fh = OpenDir(node);
    Read(fh, 0, 4096, true, nullptr, node);
    v1::OpResult page = Page({"f"}, true);
    v1::DirEntry* dir = page.mutable_readdir()->add_entries();
    dir->set_name("d");
    *dir->mutable_attr() = FileAttr(77, S_IFDIR | 0755, 2);
    std::vector<Dirent> entries = Read(fh, 2, 4096, true, &page, node);
    if (release) Release(Req(KernelOp::kReleasedir), fh);
    EXPECT_EQ(Names(entries), (std::vector<std::string>{"f", "d"}));
    if (entries.size() != 2) return false;
    EXPECT_EQ(entries[0].ino, 101u) << "the listing's inode number";
    EXPECT_NE(entries[1].node, 0u) << "a directory without attributes";
    return entries[0].node != 0;
  }
  // Opens the root through the backend: the handle.
  uint64_t OpenRoot() { return OpenDir(kRoot); }
  uint64_t OpenDir(uint64_t node) {
    auto req = Req(KernelOp::kOpendir);
    handlers_->Opendir(req, node, 0);
    if (req->kind == Kind::kNone) {
      v1::OpResult r;
      r.mutable_opendir()->set_fh(55);
      pipeline_.Answer(sent() - 1, r);
    }
    EXPECT_EQ(req->kind, Kind::kOpen);
    if (req->kind == Kind::kOpen) open_.push_back(req->open.fh);
    return req->open.fh;
  }
  // Opens the root through the backend and releases it: whether the kernel
  // was let list its own copy of the listing (FOPEN_CACHE_DIR).
  bool KernelListsItsCopy() {
    auto req = Req(KernelOp::kOpendir);
    handlers_->Opendir(req, kRoot, 0);
    if (req->kind == Kind::kNone) pipeline_.Answer(sent() - 1, Ok());
    EXPECT_EQ(req->kind, Kind::kOpen);
    EXPECT_TRUE(req->open.keep_cache);
    handlers_->Releasedir(Req(KernelOp::kReleasedir), req->open.fh);
    return req->open.cache_readdir;
  }
  std::vector<Dirent> Read(uint64_t fh, off_t offset, size_t size, bool plus,
                           const v1::OpResult* page = nullptr,
                           uint64_t node = kRoot) {
    auto req = Req(plus ? KernelOp::kReaddirplus : KernelOp::kReaddir);
    size_t before = sent();
    handlers_->Readdir(req, node, fh, size, offset, plus);
    if (page != nullptr) {
      EXPECT_EQ(sent(), before + 1) << "no page asked of the backend";
      if (sent() == before + 1) pipeline_.Answer(before, *page);
    }
    EXPECT_EQ(req->kind, Kind::kData);
    return Decode(req->data, plus);
  }

 private:
  std::vector<uint64_t> open_;
};

TEST_F(DirHandlerTest, AWholeListingIsPagedIntoSmallBuffers) {
  uint64_t fh = OpenRoot();
  EXPECT_EQ(pipeline_.op(0).opendir().path(), "/");
  // "." and ".." need no backend.
  std::vector<Dirent> dots = Read(fh, 0, 4096, false);
  EXPECT_EQ(Names(dots), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(dots.back().next, 2u);
  v1::OpResult page = Page({"a", "b", "c", "d"}, true);
  // Room for two entries of these short names (32 bytes each).
  std::vector<Dirent> first = Read(fh, 2, 64, false, &page);
  EXPECT_EQ(Names(first), (std::vector<std::string>{"a", "b"}));
  std::vector<Dirent> rest = Read(fh, first.back().next, 4096, false);
  EXPECT_EQ(Names(rest), (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(Read(fh, rest.back().next, 4096, false).size(), 0u);
  EXPECT_EQ(sent(), 2u) << "the listing was fetched more than once";
  auto release = Req(KernelOp::kReleasedir);
  Release(release, fh);
  EXPECT_EQ(release->err, 0);
  EXPECT_EQ(pipeline_.op(2).releasedir().fh(), 55u);
  pipeline_.Answer(2, Ok());
}

TEST_F(DirHandlerTest, OpenListingsAreChargedWhatTheyHoldAndGiveItBack) {
  MemoryBudget budget(1 << 20);
  listing_budget_ = &budget;
  SetTimeouts(KernelTimeouts{});
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    names.push_back(std::string(190, 'x') + std::to_string(i));
  }
  v1::OpResult page = Page(names, true);
  uint64_t fh = OpenRoot();
  Read(fh, 2, 4096, false, &page);
  // At the least each name's text and its string: the real memory, not
  // the names' length alone.
  EXPECT_GT(budget.used(), names.size() * (200 + sizeof(std::string)));
  // A second copy does not fit: refused, not held.
  uint64_t fh2 = OpenRoot();
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh2, 4096, 2, false);
  pipeline_.Answer(sent() - 1, page);
  EXPECT_EQ(req->err, ENOMEM);
  Release(Req(KernelOp::kReleasedir), fh2);
  Release(Req(KernelOp::kReleasedir), fh);
  EXPECT_EQ(budget.used(), 0u);
}

// A readdir the kernel abandoned (answered EINTR when its caller was
// interrupted) may still wait for the backend when the caller closes the
// directory. The backend's late answer must find the released handle, keep
// nothing in it, and charge nothing to the budget (under AddressSanitizer,
// a handle freed at release made this a use after free).
TEST_F(DirHandlerTest, AnAnswerAfterTheReleaseKeepsNothing) {
  MemoryBudget budget(1 << 20);
  listing_budget_ = &budget;
  SetTimeouts(KernelTimeouts{});
  uint64_t fh = OpenRoot();
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh, 4096, 2, false);
  const size_t readdir = sent() - 1;
  ASSERT_TRUE(pipeline_.op(readdir).has_readdir());
  Release(Req(KernelOp::kReleasedir), fh);
  pipeline_.Answer(sent() - 1, Ok());  // the releasedir
  pipeline_.Answer(readdir, Page({"a", "b", "c"}, true));
  EXPECT_EQ(req->err, EBADF);
  EXPECT_EQ(budget.used(), 0u);

  // The same for readdirplus's attributes fetched ahead.
  fh = OpenRoot();
  v1::OpResult bare;
  for (const char* name : {"x", "y"}) {
    bare.mutable_readdir()->add_entries()->set_name(name);
  }
  bare.mutable_readdir()->set_eof(true);
  TeachThatCallersLookUp();
  auto plus = Req(KernelOp::kReaddirplus);
  size_t before = sent();
  handlers_->Readdir(plus, kRoot, fh, 4096, 2, true);
  pipeline_.Answer(before, bare);
  ASSERT_GT(sent(), before + 1) << "no attributes fetched ahead";
  Release(Req(KernelOp::kReleasedir), fh);
  for (size_t i = before + 1; i < sent(); ++i) {
    if (pipeline_.op(i).has_getattr()) {
      v1::OpResult r;
      *r.mutable_getattr()->mutable_attr() = FileAttr(7);
      pipeline_.Answer(i, r);
    }
  }
  EXPECT_EQ(plus->err, EBADF);
  EXPECT_EQ(budget.used(), 0u);
}

// A readdirplus buffer hands the kernel a lookup reference per entry with
// attributes. If the kernel does not take the buffer (the request was
// abandoned while the page was on its way), it never got them: none may be
// left counted.
TEST_F(DirHandlerTest, ReferencesOfAReaddirplusTheKernelDidNotTakeAreGiven) {
  uint64_t fh = OpenRoot();
  const size_t nodes_before = nodes_.size();
  auto req = Req(KernelOp::kReaddirplus);
  req->refuse = true;
  handlers_->Readdir(req, kRoot, fh, 4096, 2, true);
  pipeline_.Answer(sent() - 1, Page({"a", "b", "c"}, true));
  EXPECT_EQ(req->kind, FakeRequest::Kind::kData);
  EXPECT_EQ(nodes_.size(), nodes_before);
  EXPECT_EQ(nodes_.Find("/a"), 0u);
}

TEST_F(DirHandlerTest, ResumableListingsContinueFromTheLastCookie) {
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, false);
  v1::OpResult one = Page({"a", "b"}, false, /*first_cookie=*/10);
  std::vector<Dirent> first = Read(fh, 2, 4096, false, &one);
  EXPECT_EQ(Names(first), (std::vector<std::string>{"a", "b"}));
  // The backend repeats "b" on its next page: shown once.
  v1::OpResult two = Page({"b", "c"}, true, 12);
  std::vector<Dirent> second = Read(fh, first.back().next, 4096, false, &two);
  EXPECT_EQ(pipeline_.op(2).readdir().offset(), 12u);
  EXPECT_EQ(Names(second), (std::vector<std::string>{"c"}));
}

TEST_F(DirHandlerTest, APageOfDotsAloneIsNotTheEnd) {
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, false);
  v1::OpResult dots;
  dots.mutable_readdir()->add_entries()->set_name(".");
  dots.mutable_readdir()->mutable_entries(0)->set_offset(1);
  dots.mutable_readdir()->add_entries()->set_name("..");
  dots.mutable_readdir()->mutable_entries(1)->set_offset(2);
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh, 4096, 2, false);
  pipeline_.Answer(1, dots);
  // Nothing to show yet: the next page is asked for, after cookie 2.
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).readdir().offset(), 2u);
  pipeline_.Answer(2, Page({"a"}, true, 2));
  EXPECT_EQ(Names(Decode(req->data, false)), std::vector<std::string>{"a"});
}

TEST_F(DirHandlerTest, AListingThatRepeatsItselfFailsInsteadOfLooping) {
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, false);
  v1::OpResult page = Page({"a", "b"}, false, 10);
  std::vector<Dirent> first = Read(fh, 2, 4096, false, &page);
  EXPECT_EQ(Names(first), (std::vector<std::string>{"a", "b"}));
  // Asked to continue after cookie 12, the backend answers the very same
  // page again: the kernel gets EIO, not an endless wait.
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh, 4096, first.back().next, false);
  EXPECT_EQ(pipeline_.op(2).readdir().offset(), 12u);
  pipeline_.Answer(2, page);
  EXPECT_EQ(req->err, EIO);
  EXPECT_EQ(sent(), 3u);
}

TEST_F(DirHandlerTest, PagesOfRepeatedNamesFailToo) {
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, false);
  v1::OpResult page = Page({"a"}, false, 10);
  Read(fh, 2, 4096, false, &page);
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh, 4096, 3, false);
  // New cookies each time, but never a new name.
  for (uint64_t cookie = 20; req->kind == Kind::kNone && cookie < 100;
       cookie += 10) {
    pipeline_.Answer(sent() - 1, Page({"a"}, false, cookie));
  }
  EXPECT_EQ(req->err, EIO);
  EXPECT_LE(sent(), 5u);
}

TEST_F(DirHandlerTest, ReaddirplusHandsOutNodesForEntriesWithAttributes) {
  size_t base = TeachThatCallersLookUp();
  uint64_t fh = OpenRoot();
  v1::OpResult page = Page({"a"}, true);
  v1::DirEntry* typed = page.mutable_readdir()->add_entries();
  typed->set_name("t");
  typed->set_type(S_IFDIR);
  std::vector<Dirent> dots = Read(fh, 0, 4096, true);
  EXPECT_EQ(dots[0].node, 0u);
  // "t" came without attributes: they are fetched before the answer.
  auto req = Req(KernelOp::kReaddirplus);
  handlers_->Readdir(req, kRoot, fh, 4096, 2, true);
  pipeline_.Answer(base + 1, page);
  ASSERT_EQ(sent(), base + 3);
  EXPECT_EQ(pipeline_.op(base + 2).getattr().path(), "/t");
  EXPECT_EQ(req->kind, Kind::kNone) << "answered before the attributes came";
  v1::OpResult t;
  *t.mutable_getattr()->mutable_attr() = FileAttr(77, S_IFDIR | 0755, 2);
  pipeline_.Answer(base + 2, t);
  ASSERT_EQ(req->kind, Kind::kData);
  std::vector<Dirent> entries = Decode(req->data, true);
  ASSERT_EQ(Names(entries), (std::vector<std::string>{"a", "t"}));
  EXPECT_NE(entries[0].node, 0u);
  EXPECT_EQ(nodes_.PathOf(entries[0].node), "/a");
  EXPECT_EQ(entries[0].ino, 101u);
  EXPECT_NE(entries[1].node, 0u);
  EXPECT_EQ(nodes_.PathOf(entries[1].node), "/t");
  EXPECT_EQ(entries[1].ino, 77u);
}

TEST_F(DirHandlerTest, NamesWithoutAttributesAreFetchedTogether) {
  size_t base = TeachThatCallersLookUp();
  uint64_t fh = OpenRoot();
  v1::OpResult page;
  for (const char* name : {"gone", "known", "n1", "n2", "n3"}) {
    page.mutable_readdir()->add_entries()->set_name(name);
  }
  page.mutable_readdir()->set_eof(true);
  pipeline_.cached_attrs["/known"] = FileAttr(5);
  auto req = Req(KernelOp::kReaddirplus);
  handlers_->Readdir(req, kRoot, fh, 4096, 2, true);
  pipeline_.Answer(base + 1, page);
  // One group of four: the cache knew one name.
  ASSERT_EQ(pipeline_.groups, (std::vector<size_t>{4}));
  ASSERT_EQ(sent(), base + 6);
  pipeline_.Answer(base + 2, Errno(ENOENT));  // "gone" went meanwhile
  for (size_t i = base + 3; i < base + 6; ++i) {
    EXPECT_EQ(req->kind, Kind::kNone);
    v1::OpResult r;
    *r.mutable_getattr()->mutable_attr() = FileAttr(10 + i);
    pipeline_.Answer(i, r);
  }
  ASSERT_EQ(req->kind, Kind::kData);
  std::vector<Dirent> entries = Decode(req->data, true);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].node, 0u);  // the kernel looks "gone" up itself
  for (size_t i = 1; i < 5; ++i) EXPECT_NE(entries[i].node, 0u) << i;
  // A second pass over the same entries asks nothing again.
  auto again = Req(KernelOp::kReaddirplus);
  handlers_->Readdir(again, kRoot, fh, 4096, 3, true);
  EXPECT_EQ(again->kind, Kind::kData);
  EXPECT_EQ(sent(), base + 6);
}

// A caller that lists without looking names up (ls, find without stat)
// costs no getattr per name.
TEST_F(DirHandlerTest, OnceTheEntriesItHandedOutLapseTheKernelListsAnew) {
  for (uint32_t ttl_ms : {600000u, 20u}) {
    SCOPED_TRACE(ttl_ms);
    // Nothing handed out yet, or entries still alive.
    EXPECT_TRUE(KernelListsItsCopy());
    uint64_t fh = OpenRoot();
    v1::OpResult page = Page({"a", "b"}, true);
    for (v1::DirEntry& e : *page.mutable_readdir()->mutable_entries()) {
      e.mutable_attr()->set_ttl_ms(ttl_ms);
    }
    std::vector<Dirent> entries = Read(fh, 2, 4096, true, &page);
    ASSERT_EQ(Names(entries), (std::vector<std::string>{"a", "b"}));
    ASSERT_NE(entries[0].node, 0u);
    Release(Req(KernelOp::kReleasedir), fh);
    absl::SleepFor(absl::Milliseconds(40));
    // Lapsed, the kernel's entries would each be looked up: it lists anew.
    // Still alive, it lists its copy.
    EXPECT_EQ(KernelListsItsCopy(), ttl_ms > 40);
  }
}

TEST_F(DirHandlerTest, NamesHandedOutBareAreListedAnewOnlyForCallersWhoStat) {
  uint64_t fh = OpenRoot();
  v1::OpResult page;
  page.mutable_readdir()->add_entries()->set_name("n");
  page.mutable_readdir()->set_eof(true);
  Read(fh, 2, 4096, true, &page);
  Release(Req(KernelOp::kReleasedir), fh);
  // Not yet known whether callers look names up: the kernel's copy serves.
  EXPECT_TRUE(KernelListsItsCopy());
  // They do (a LOOKUP of a name handed out bare): listed from the kernel's
  // copy, each name would be looked up; listed anew, they come with
  // attributes.
  TeachThatCallersLookUp();
  EXPECT_FALSE(KernelListsItsCopy());
}

TEST_F(DirHandlerTest, ListingsWhoseNamesNobodyLooksUpFetchNothing) {
  uint64_t fh = OpenRoot();
  v1::OpResult page;
  page.mutable_readdir()->add_entries()->set_name("n");
  page.mutable_readdir()->set_eof(true);
  std::vector<Dirent> entries = Read(fh, 2, 4096, true, &page);
  ASSERT_EQ(Names(entries), (std::vector<std::string>{"n"}));
  EXPECT_EQ(entries[0].node, 0u);
  EXPECT_TRUE(pipeline_.groups.empty());
  EXPECT_EQ(sent(), 2u);
}

TEST_F(DirHandlerTest, FilesGoOutBareToCallersWhoListOnly) {
  // A find lists without looking files up: an inode per file would cost
  // the kernel more than the whole listing. The directories it enters
  // still come with attributes, sparing their LOOKUPs.
  EXPECT_TRUE(ReadFileAndDir()) << "the mount's first listing";
  EXPECT_FALSE(ReadFileAndDir()) << "the second: whether files are looked up";
  // They were not.
  EXPECT_FALSE(ReadFileAndDir());
  // Entering a directory is no sign that callers look at files.
  Known(kRoot, "d", FileAttr(77, S_IFDIR | 0755, 2));
  EXPECT_FALSE(ReadFileAndDir());
  // A file of the listing looked up after its handle was released (the
  // kernel lists its own copy) is.
  Known(kRoot, "f", FileAttr(101));
  EXPECT_TRUE(ReadFileAndDir());
}

TEST_F(DirHandlerTest, ACallerThatMovesOnFromABareListingListsOnly) {
  // The kernel releases a directory in the background: a find's next
  // listing may start before the release of the one it read last.
  uint64_t sub = Known(kRoot, "d", FileAttr(77, S_IFDIR | 0755, 2));
  EXPECT_TRUE(ReadFileAndDir(sub)) << "the mount's first listing";
  EXPECT_FALSE(ReadFileAndDir(kRoot, /*release=*/false)) << "the probe";
  EXPECT_FALSE(ReadFileAndDir(sub)) << "no file of the probe looked up";
}

TEST_F(DirHandlerTest, ACallerThatLooksUpBeforeMovingOnStillGetsAttributes) {
  uint64_t sub = Known(kRoot, "d", FileAttr(77, S_IFDIR | 0755, 2));
  EXPECT_TRUE(ReadFileAndDir(sub));
  EXPECT_FALSE(ReadFileAndDir(kRoot, /*release=*/false));
  // A find -printf %s reads a directory to its end, then looks its files
  // up, then moves on.
  Known(kRoot, "f", FileAttr(101));
  EXPECT_TRUE(ReadFileAndDir(sub));
}

TEST_F(DirHandlerTest, NowAndThenAListingGoesOutBareToNoticeCallersStopping) {
  TeachThatCallersLookUp();
  // An ls -l that looks up what it lists gets attributes; one pass in 16
  // goes out bare (the second, the 18th), and is looked up too.
  int bare = 0;
  for (int i = 0; i < 32; ++i) {
    if (!ReadFileAndDir()) {
      ++bare;
      Known(kRoot, "f", FileAttr(101));
    }
  }
  EXPECT_EQ(bare, 2);
  // A find comes next: the next pass that goes out bare, released with no
  // file looked up, turns attributes off.
  std::vector<bool> with_attrs;
  for (int i = 0; i < 4; ++i) with_attrs.push_back(ReadFileAndDir());
  EXPECT_EQ(with_attrs, (std::vector<bool>{true, false, false, false}));
}

TEST_F(DirHandlerTest, AProbeHandsOutOnlyItsFirstFewFilesBare) {
  TeachThatCallersLookUp();
  EXPECT_TRUE(ReadFileAndDir());
  // The second pass probes.
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, true);
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) names.push_back("f" + std::to_string(i));
  v1::OpResult page = Page(names, true);
  std::vector<Dirent> entries = Read(fh, 2, 8192, true, &page);
  ASSERT_EQ(entries.size(), 20u);
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].node == 0, i < 8) << i;
  }
}

TEST_F(DirHandlerTest, AProbeWhoseFilesWereLookedUpLetsTheKernelListItsCopy) {
  TeachThatCallersLookUp();
  EXPECT_TRUE(ReadFileAndDir());
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, true);
  v1::OpResult page = Page({"f"}, true);
  v1::DirEntry* dir = page.mutable_readdir()->add_entries();
  dir->set_name("d");
  *dir->mutable_attr() = FileAttr(77, S_IFDIR | 0755, 2);
  std::vector<Dirent> entries = Read(fh, 2, 4096, true, &page);
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_EQ(entries[0].node, 0u) << "the second pass probes";
  Known(kRoot, "f", FileAttr(101));  // ls -l
  Release(Req(KernelOp::kReleasedir), fh);
  // The kernel holds every name of it now: listing its copy costs no
  // LOOKUP, where listing anew would cost a readdirplus.
  EXPECT_TRUE(KernelListsItsCopy());
}

TEST_F(DirHandlerTest, PlainReaddirFetchesNoAttributes) {
  uint64_t fh = OpenRoot();
  v1::OpResult page;
  page.mutable_readdir()->add_entries()->set_name("n");
  page.mutable_readdir()->set_eof(true);
  std::vector<Dirent> entries = Read(fh, 2, 4096, false, &page);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{"n"}));
  EXPECT_TRUE(pipeline_.groups.empty());
}

TEST_F(DirHandlerTest, ACachedListingSparesTheBackend) {
  pipeline_.cached_path = "/";
  pipeline_.cached_listing["x"] = ListingEntry{S_IFREG, 0};
  pipeline_.cached_attrs["/x"] = FileAttr(9);
  pipeline_.cached_listing["y"] = ListingEntry{S_IFDIR, 8};
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  ASSERT_EQ(open->kind, Kind::kOpen);
  EXPECT_TRUE(open->open.cache_readdir);
  EXPECT_TRUE(open->open.keep_cache);
  std::vector<Dirent> entries = Read(open->open.fh, 0, 4096, true);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{".", "..", "x", "y"}));
  EXPECT_EQ(entries[3].ino, 8u);
  EXPECT_EQ(sent(), 0u);
  // Nothing of the backend's is open: no releasedir, no fsyncdir.
  auto fsync = Req(KernelOp::kFsyncdir);
  handlers_->Fsyncdir(fsync, kRoot, open->open.fh, false);
  EXPECT_EQ(fsync->err, 0);
  Release(Req(KernelOp::kReleasedir), open->open.fh);
  EXPECT_EQ(sent(), 0u);
}

TEST_F(DirHandlerTest, ACachedListingHandsOutEachEntrysOwnAttributes) {
  // Entries of a cached listing are built in one reused place: one whose
  // attributes the cache lacks must not show the previous entry's.
  pipeline_.cached_path = "/";
  pipeline_.cached_listing["a"] = ListingEntry{S_IFREG, 11};
  pipeline_.cached_listing["b"] = ListingEntry{S_IFREG, 22};
  pipeline_.cached_listing["c"] = ListingEntry{S_IFREG, 33};
  v1::Attr a = FileAttr(11);
  a.set_size(100);
  v1::Attr c = FileAttr(33);
  c.set_size(300);
  pipeline_.cached_attrs["/a"] = a;
  pipeline_.cached_attrs["/c"] = c;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  ASSERT_EQ(open->kind, Kind::kOpen);
  std::vector<Dirent> entries = Read(open->open.fh, 2, 4096, true);
  ASSERT_EQ(Names(entries), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_NE(entries[0].node, 0u);
  EXPECT_EQ(entries[0].ino, 11u);
  EXPECT_EQ(entries[0].size, 100u);
  EXPECT_EQ(entries[1].node, 0u) << "handed out with a's attributes";
  EXPECT_EQ(entries[1].ino, 22u);
  EXPECT_NE(entries[2].node, 0u);
  EXPECT_EQ(entries[2].ino, 33u);
  EXPECT_EQ(entries[2].size, 300u);
  EXPECT_EQ(nodes_.PathOf(entries[2].node), "/c");
  Release(Req(KernelOp::kReleasedir), open->open.fh);
}

TEST_F(DirHandlerTest, RewinddirReadsAFreshListing) {
  uint64_t fh = OpenRoot();
  Read(fh, 0, 4096, false);
  v1::OpResult page = Page({"a"}, true);
  Read(fh, 2, 4096, false, &page);
  Read(fh, 0, 4096, false);
  v1::OpResult again = Page({"a", "new"}, true);
  std::vector<Dirent> entries = Read(fh, 2, 4096, false, &again);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{"a", "new"}));
}

// --- a backend that lists by path (InitReply.lists_by_path) ------------------

TEST_F(DirHandlerTest, ABackendThatListsByPathGetsOneReaddirAtOpendir) {
  lists_by_path_ = true;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  ASSERT_EQ(sent(), 1u);
  EXPECT_EQ(pipeline_.op(0).readdir().path(), "/");
  EXPECT_EQ(pipeline_.op(0).readdir().fh(), 0u);
  EXPECT_EQ(pipeline_.op(0).readdir().offset(), 0u);
  EXPECT_EQ(open->kind, Kind::kNone) << "answered before the listing came";
  pipeline_.Answer(0, Page({"a", "b"}, true));
  ASSERT_EQ(open->kind, Kind::kOpen);
  const uint64_t fh = open->open.fh;
  std::vector<Dirent> entries = Read(fh, 0, 4096, true);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{".", "..", "a", "b"}));
  EXPECT_EQ(entries[2].ino, 101u) << "no attributes from the listing";
  // Nothing was opened at the backend: nothing to release or sync there.
  auto fsync = Req(KernelOp::kFsyncdir);
  handlers_->Fsyncdir(fsync, kRoot, fh, false);
  EXPECT_EQ(fsync->err, 0);
  auto release = Req(KernelOp::kReleasedir);
  handlers_->Releasedir(release, fh);
  EXPECT_EQ(release->err, 0);
  EXPECT_EQ(sent(), 1u);
}

TEST_F(DirHandlerTest, NamesListedByPathWithoutAttributesAreFetchedTogether) {
  size_t base = TeachThatCallersLookUp();
  lists_by_path_ = true;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  ASSERT_EQ(sent(), base + 1);
  // The caching layer keeps the listing on its way here, names only.
  pipeline_.cached_path = "/";
  pipeline_.cached_listing["n1"] = ListingEntry{S_IFREG, 0};
  pipeline_.cached_listing["n2"] = ListingEntry{S_IFREG, 0};
  v1::OpResult page;
  for (const char* name : {"n1", "n2"}) {
    page.mutable_readdir()->add_entries()->set_name(name);
  }
  page.mutable_readdir()->set_eof(true);
  pipeline_.Answer(base, page);
  ASSERT_EQ(open->kind, Kind::kOpen);
  auto req = Req(KernelOp::kReaddirplus);
  handlers_->Readdir(req, kRoot, open->open.fh, 4096, 2, true);
  // Fetched in one group before the answer, not left to the kernel's
  // lookups one by one.
  ASSERT_EQ(pipeline_.groups, (std::vector<size_t>{2}));
  for (size_t i = base + 1; i < base + 3; ++i) {
    v1::OpResult r;
    *r.mutable_getattr()->mutable_attr() = FileAttr(10 + i);
    pipeline_.Answer(i, r);
  }
  ASSERT_EQ(req->kind, Kind::kData);
  std::vector<Dirent> entries = Decode(req->data, true);
  ASSERT_EQ(entries.size(), 2u);
  for (const Dirent& e : entries) EXPECT_NE(e.node, 0u) << e.name;
  handlers_->Releasedir(Req(KernelOp::kReleasedir), open->open.fh);
}

TEST_F(DirHandlerTest, AListingByPathThatFailsFailsTheOpendir) {
  lists_by_path_ = true;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  pipeline_.Answer(0, Errno(EACCES));
  EXPECT_EQ(open->kind, Kind::kError);
  EXPECT_EQ(open->err, EACCES);
  EXPECT_EQ(sent(), 1u);
}

TEST_F(DirHandlerTest, AResumableListingByPathAsksForItsNextPagesByPath) {
  lists_by_path_ = true;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  pipeline_.Answer(0, Page({"a", "b"}, false, /*first_cookie=*/10));
  ASSERT_EQ(open->kind, Kind::kOpen);
  const uint64_t fh = open->open.fh;
  std::vector<Dirent> first = Read(fh, 2, 4096, false);
  EXPECT_EQ(Names(first), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sent(), 1u);
  v1::OpResult last = Page({"c"}, true, /*first_cookie=*/12);
  std::vector<Dirent> rest = Read(fh, first.back().next, 4096, false, &last);
  EXPECT_EQ(Names(rest), (std::vector<std::string>{"c"}));
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).readdir().fh(), 0u);
  EXPECT_EQ(pipeline_.op(1).readdir().offset(), 12u);
  EXPECT_EQ(pipeline_.op(1).readdir().path(), "/");
  handlers_->Releasedir(Req(KernelOp::kReleasedir), fh);
  EXPECT_EQ(sent(), 2u);
}

TEST_F(DirHandlerTest, RewinddirOfAListingByPathAsksAgain) {
  lists_by_path_ = true;
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  pipeline_.Answer(0, Page({"a"}, true));
  ASSERT_EQ(open->kind, Kind::kOpen);
  const uint64_t fh = open->open.fh;
  Read(fh, 0, 4096, false);
  Read(fh, 2, 4096, false);
  Read(fh, 0, 4096, false);
  v1::OpResult again = Page({"a", "new"}, true);
  std::vector<Dirent> entries = Read(fh, 2, 4096, false, &again);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{"a", "new"}));
  EXPECT_EQ(pipeline_.op(1).readdir().fh(), 0u);
  handlers_->Releasedir(Req(KernelOp::kReleasedir), fh);
  EXPECT_EQ(sent(), 2u);
}

TEST_F(DirHandlerTest, AFailedOpendirAnswersItsErrno) {
  auto req = Req(KernelOp::kOpendir);
  handlers_->Opendir(req, kRoot, 0);
  pipeline_.Answer(0, Errno(EACCES));
  EXPECT_EQ(req->err, EACCES);
}

TEST_F(DirHandlerTest, AFailedPageAnswersItsErrno) {
  uint64_t fh = OpenRoot();
  auto req = Req(KernelOp::kReaddir);
  handlers_->Readdir(req, kRoot, fh, 4096, 2, false);
  pipeline_.Answer(1, Errno(EIO));
  EXPECT_EQ(req->err, EIO);
}

}  // namespace
}  // namespace fusehost
