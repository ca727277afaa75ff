// Names and attributes through the request handlers, with fake requests and
// a fake pipeline.

#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
constexpr uint64_t kRoot = NodeTable::kRootId;

TEST_F(HandlerTest, LookupAsksForTheChildAndHandsOutANode) {
  auto req = Req(KernelOp::kLookup);
  handlers_->Lookup(req, kRoot, "a");
  ASSERT_EQ(sent(), 1u);
  EXPECT_EQ(pipeline_.op(0).getattr().path(), "/a");
  EXPECT_EQ(pipeline_.op(0).caller().uid(), 1000u);
  EXPECT_EQ(req->kind, Kind::kNone) << "answered before the backend";
  v1::Attr attr = FileAttr(77);
  attr.set_ttl_ms(5000);
  pipeline_.Answer(0, GetattrResult(attr));
  ASSERT_EQ(req->kind, Kind::kEntry);
  EXPECT_NE(req->entry.node, 0u);
  EXPECT_EQ(req->entry.attr.st_ino, 77u);
  EXPECT_EQ(req->entry.attr_timeout, 5.0);
  EXPECT_EQ(req->entry.entry_timeout, 5.0);
  EXPECT_EQ(nodes_.PathOf(req->entry.node), "/a");
  // A second lookup of the same name is the same node.
  EXPECT_EQ(Known(kRoot, "a", FileAttr(77)), req->entry.node);
}

TEST_F(HandlerTest, LookupWithoutLifetimeUsesTheMountsAndEntryTimeout) {
  KernelTimeouts t;
  t.attr = absl::Seconds(3);
  t.entry = absl::Seconds(7);
  SetTimeouts(t);
  auto req = Req(KernelOp::kLookup);
  handlers_->Lookup(req, kRoot, "a");
  pipeline_.Answer(0, GetattrResult(FileAttr(5)));
  EXPECT_EQ(req->entry.attr_timeout, 3.0);
  EXPECT_EQ(req->entry.entry_timeout, 7.0);
}

TEST_F(HandlerTest, AbsentNamesAreCachedByTheKernelOnlyWhenAsked) {
  auto plain = Req(KernelOp::kLookup);
  handlers_->Lookup(plain, kRoot, "missing");
  pipeline_.Answer(0, Errno(ENOENT));
  EXPECT_EQ(plain->kind, Kind::kError);
  EXPECT_EQ(plain->err, ENOENT);

  KernelTimeouts t;
  t.negative = absl::Seconds(4);
  SetTimeouts(t);
  auto cached = Req(KernelOp::kLookup);
  handlers_->Lookup(cached, kRoot, "missing");
  pipeline_.Answer(1, Errno(ENOENT));
  ASSERT_EQ(cached->kind, Kind::kEntry);
  EXPECT_EQ(cached->entry.node, 0u);
  EXPECT_EQ(cached->entry.entry_timeout, 4.0);
}

TEST_F(HandlerTest, UnknownNodesAreStaleWithoutAskingTheBackend) {
  auto req = Req(KernelOp::kLookup);
  handlers_->Lookup(req, 12345, "a");
  EXPECT_EQ(req->err, ESTALE);
  auto attr = Req(KernelOp::kGetattr);
  handlers_->Getattr(attr, 12345, std::nullopt);
  EXPECT_EQ(attr->err, ESTALE);
  EXPECT_EQ(sent(), 0u);
}

TEST_F(HandlerTest, GetattrOfAnUnlinkedOpenFileGoesThroughItsHandle) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  nodes_.AddOpenHandle(node, 99);
  nodes_.Remove(kRoot, "f");
  auto req = Req(KernelOp::kGetattr);
  handlers_->Getattr(req, node, std::nullopt);
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).getattr().path(), "");
  EXPECT_EQ(pipeline_.op(1).getattr().fh(), 99u);
  pipeline_.Answer(1, GetattrResult(FileAttr(5)));
  EXPECT_EQ(req->kind, Kind::kAttr);
  EXPECT_EQ(req->timeout, 2.0);

  nodes_.RemoveOpenHandle(node, 99);
  auto gone = Req(KernelOp::kGetattr);
  handlers_->Getattr(gone, node, std::nullopt);
  EXPECT_EQ(gone->err, ENOENT);
  EXPECT_EQ(sent(), 2u);
}

TEST_F(HandlerTest,
       GetattrOfAnOpenFileGoneBehindTheDaemonGoesThroughItsHandle) {
  // Unlinked at the backend, not through the daemon: its path still names
  // it here, and only the backend's answer says it is gone from there.
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  nodes_.AddOpenHandle(node, 99);
  auto req = Req(KernelOp::kGetattr);
  handlers_->Getattr(req, node, std::nullopt);
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).getattr().path(), "/f");
  EXPECT_FALSE(pipeline_.op(1).getattr().has_fh());
  pipeline_.Answer(1, Errno(ENOENT));
  ASSERT_EQ(sent(), 3u);
  // Asked as a file without a name: its attributes are not the path's.
  EXPECT_EQ(pipeline_.op(2).getattr().path(), "");
  EXPECT_EQ(pipeline_.op(2).getattr().fh(), 99u);
  pipeline_.Answer(2, GetattrResult(FileAttr(5, S_IFREG | 0644, 0)));
  ASSERT_EQ(req->kind, Kind::kAttr);
  EXPECT_EQ(req->attr.st_ino, 5u);
  EXPECT_EQ(req->attr.st_nlink, 0u);

  // Not open: ENOENT stands.
  nodes_.RemoveOpenHandle(node, 99);
  auto closed = Req(KernelOp::kGetattr);
  handlers_->Getattr(closed, node, std::nullopt);
  ASSERT_EQ(sent(), 4u);
  pipeline_.Answer(3, Errno(ENOENT));
  EXPECT_EQ(closed->err, ENOENT);
  EXPECT_EQ(sent(), 4u);
}

TEST_F(HandlerTest, SetattrRunsItsOpsInOrderAndStopsAtTheFirstFailure) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  struct stat st = {};
  st.st_mode = 0600;
  st.st_size = 10;
  auto req = Req(KernelOp::kSetattr);
  handlers_->Setattr(req, node, st, kSetMode | kSetSize | kSetMtime,
                     std::nullopt);
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).chmod().mode(), 0600u);
  pipeline_.Answer(1, Ok());
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).truncate().size(), 10u);
  pipeline_.Answer(2, Errno(EFBIG));
  EXPECT_EQ(req->err, EFBIG);
  EXPECT_EQ(sent(), 3u) << "utimens sent after a failure";
  // The chmod took effect: the kernel, which keeps a node's attributes
  // after a failed setattr, is told to drop them.
  EXPECT_EQ(notify_.nodes,
            (std::vector<std::pair<uint64_t, bool>>{{node, false}}));
  // A setattr whose first op fails changed nothing.
  notify_.nodes.clear();
  auto none = Req(KernelOp::kSetattr);
  handlers_->Setattr(none, node, st, kSetMode | kSetSize, std::nullopt);
  pipeline_.Answer(3, Errno(EPERM));
  EXPECT_EQ(none->err, EPERM);
  EXPECT_TRUE(notify_.nodes.empty());
}

TEST_F(HandlerTest, SetattrAnswersWithTheLastAttributesOrAsksForThem) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  struct stat st = {};
  st.st_mode = 0600;
  auto with = Req(KernelOp::kSetattr);
  handlers_->Setattr(with, node, st, kSetMode, std::nullopt);
  pipeline_.Answer(1, EntryResult(FileAttr(5, S_IFREG | 0600)));
  ASSERT_EQ(with->kind, Kind::kAttr);
  EXPECT_EQ(with->attr.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(sent(), 2u);

  auto without = Req(KernelOp::kSetattr);
  handlers_->Setattr(without, node, st, kSetMode, std::nullopt);
  pipeline_.Answer(2, Ok());
  ASSERT_EQ(sent(), 4u);
  EXPECT_TRUE(pipeline_.op(3).has_getattr());
  pipeline_.Answer(3, GetattrResult(FileAttr(5, S_IFREG | 0600)));
  EXPECT_EQ(without->kind, Kind::kAttr);
}

TEST_F(HandlerTest, SetattrTimesNowAndOmitted) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  struct stat st = {};
  handlers_->Setattr(Req(KernelOp::kSetattr), node, st,
                     kSetAtime | kSetAtimeNow, std::nullopt);
  const v1::UtimensRequest& u = pipeline_.op(1).utimens();
  EXPECT_EQ(u.atime().kind(), v1::TimeSet::NOW);
  EXPECT_EQ(u.mtime().kind(), v1::TimeSet::OMIT);
  pipeline_.Answer(1, EntryResult(FileAttr(5)));
}

TEST_F(HandlerTest, TheKernelsOwnSetidClearingIsLeftToTheBackend) {
  // Caller 1000 writes a setuid file of uid 2000; the kernel then asks, in
  // the caller's name, to drop the bit. The backend drops it with the write.
  v1::Attr theirs = FileAttr(5, S_IFREG | 04777);
  theirs.set_uid(2000);
  uint64_t node = Known(kRoot, "f", theirs);
  pipeline_.cached_attrs["/f"] = theirs;
  struct stat st = {};
  st.st_mode = S_IFREG | 0777;
  auto req = Req(KernelOp::kSetattr);
  handlers_->Setattr(req, node, st, kSetMode, std::nullopt);
  ASSERT_EQ(sent(), 2u);
  EXPECT_TRUE(pipeline_.op(1).has_getattr()) << "a chmod was forwarded";
  pipeline_.Answer(1, GetattrResult(theirs));
  EXPECT_EQ(req->kind, Kind::kAttr);

  // The owner's own chmod goes through.
  pipeline_.cached_attrs["/f"].set_uid(1000);
  auto own = Req(KernelOp::kSetattr);
  handlers_->Setattr(own, node, st, kSetMode, std::nullopt);
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).chmod().mode(), 0777u);
  pipeline_.Answer(2, EntryResult(FileAttr(5, S_IFREG | 0777)));

  // A change of other bits by someone else is not the kernel's clearing:
  // forwarded, for the backend to refuse.
  pipeline_.cached_attrs["/f"] = theirs;
  st.st_mode = S_IFREG | 0700;
  auto other = Req(KernelOp::kSetattr);
  handlers_->Setattr(other, node, st, kSetMode, std::nullopt);
  ASSERT_EQ(sent(), 4u);
  EXPECT_EQ(pipeline_.op(3).chmod().mode(), 0700u);
  pipeline_.Answer(3, Errno(EPERM));
  EXPECT_EQ(other->err, EPERM);
}

TEST_F(HandlerTest, MkdirAnswersWithTheNewEntry) {
  auto req = Req(KernelOp::kMkdir);
  handlers_->Mkdir(req, kRoot, "d", S_IFDIR | 0755);
  EXPECT_EQ(pipeline_.op(0).mkdir().path(), "/d");
  EXPECT_EQ(pipeline_.op(0).mkdir().mode(), 0755u);
  pipeline_.Answer(0, EntryResult(FileAttr(9, S_IFDIR | 0755, 2)));
  ASSERT_EQ(req->kind, Kind::kEntry);
  EXPECT_EQ(nodes_.PathOf(req->entry.node), "/d");
}

TEST_F(HandlerTest, AnEntryTheKernelDidNotTakeIsForgotten) {
  auto req = Req(KernelOp::kMkdir);
  req->refuse = true;
  handlers_->Mkdir(req, kRoot, "d", 0755);
  pipeline_.Answer(0, EntryResult(FileAttr(9, S_IFDIR | 0755, 2)));
  EXPECT_EQ(nodes_.Find("/d"), 0u);
}

TEST_F(HandlerTest, UnlinkAndRenameKeepTheNodeTableInStep) {
  uint64_t a = Known(kRoot, "a", FileAttr(5));
  uint64_t b = Known(kRoot, "b", FileAttr(6));
  auto rename = Req(KernelOp::kRename);
  handlers_->Rename(rename, kRoot, "a", kRoot, "c", 0);
  EXPECT_EQ(pipeline_.op(2).rename().old_path(), "/a");
  EXPECT_EQ(pipeline_.op(2).rename().new_path(), "/c");
  pipeline_.Answer(2, Ok());
  EXPECT_EQ(rename->err, 0);
  EXPECT_EQ(nodes_.PathOf(a), "/c");

  auto exchange = Req(KernelOp::kRename);
  handlers_->Rename(exchange, kRoot, "b", kRoot, "c", RENAME_EXCHANGE);
  pipeline_.Answer(3, Ok());
  EXPECT_EQ(nodes_.PathOf(a), "/b");
  EXPECT_EQ(nodes_.PathOf(b), "/c");

  auto unlink = Req(KernelOp::kUnlink);
  handlers_->Unlink(unlink, kRoot, "c");
  pipeline_.Answer(4, Ok());
  EXPECT_EQ(unlink->err, 0);
  EXPECT_EQ(nodes_.Find("/c"), 0u);
  EXPECT_EQ(nodes_.PathOf(b), "");  // lives on, nameless

  auto failed = Req(KernelOp::kUnlink);
  handlers_->Unlink(failed, kRoot, "b");
  pipeline_.Answer(5, Errno(EACCES));
  EXPECT_EQ(failed->err, EACCES);
  EXPECT_EQ(nodes_.PathOf(a), "/b");
}

TEST_F(HandlerTest, LinkDropsTheOtherNamesAttributesBeforeAnswering) {
  uint64_t a = Known(kRoot, "a", FileAttr(5, S_IFREG | 0644, 2));
  uint64_t b = Known(kRoot, "b", FileAttr(5, S_IFREG | 0644, 2));
  auto req = Req(KernelOp::kLink);
  handlers_->Link(req, a, kRoot, "c");
  EXPECT_EQ(pipeline_.op(2).link().old_path(), "/a");
  EXPECT_EQ(pipeline_.op(2).link().new_path(), "/c");
  pipeline_.Answer(2, EntryResult(FileAttr(5, S_IFREG | 0644, 3)));
  ASSERT_EQ(req->kind, Kind::kEntry);
  // The kernel forgot the attributes of both old names, the daemon's cache
  // those of the other one.
  std::vector<uint64_t> dropped;
  for (const auto& [node, data] : notify_.nodes) dropped.push_back(node);
  EXPECT_NE(std::find(dropped.begin(), dropped.end(), a), dropped.end());
  EXPECT_NE(std::find(dropped.begin(), dropped.end(), b), dropped.end());
  EXPECT_EQ(pipeline_.other_names, std::vector<std::string>{"/b"});
}

// The old name last heard of one link; after the link it is one of two
// names, so an unlink through it drops the new name's attributes.
TEST_F(HandlerTest, UnlinkRightAfterLinkDropsTheNewNamesAttributes) {
  uint64_t a = Known(kRoot, "a", FileAttr(5));
  auto link = Req(KernelOp::kLink);
  handlers_->Link(link, a, kRoot, "b");
  pipeline_.Answer(1, EntryResult(FileAttr(5, S_IFREG | 0644, 2)));
  ASSERT_EQ(link->kind, Kind::kEntry);
  uint64_t b = nodes_.Find("/b");
  ASSERT_NE(b, 0u);
  notify_.nodes.clear();
  pipeline_.other_names.clear();

  auto unlink = Req(KernelOp::kUnlink);
  handlers_->Unlink(unlink, kRoot, "a");
  pipeline_.Answer(2, Ok());
  EXPECT_EQ(unlink->err, 0);
  std::vector<uint64_t> dropped;
  for (const auto& [node, data] : notify_.nodes) dropped.push_back(node);
  EXPECT_NE(std::find(dropped.begin(), dropped.end(), b), dropped.end());
  EXPECT_EQ(pipeline_.other_names, std::vector<std::string>{"/b"});
}

// The kernel forgot the file's other names (no siblings in the table); the
// daemon's cache may still hold them, and learns which file lost a link.
TEST_F(HandlerTest, UnlinkOfAHardLinkTellsTheCacheWhichFileChanged) {
  Known(kRoot, "a", FileAttr(5, S_IFREG | 0644, 3));
  auto unlink = Req(KernelOp::kUnlink);
  handlers_->Unlink(unlink, kRoot, "a");
  pipeline_.Answer(1, Ok());
  EXPECT_EQ(unlink->err, 0);
  using Changed = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(pipeline_.files_changed, (Changed{{5, "/a"}}));
  // A link keeps the new name's fresh attributes.
  uint64_t b = Known(kRoot, "b", FileAttr(6, S_IFREG | 0644, 2));
  pipeline_.files_changed.clear();
  auto link = Req(KernelOp::kLink);
  handlers_->Link(link, b, kRoot, "c");
  pipeline_.Answer(3, EntryResult(FileAttr(6, S_IFREG | 0644, 3)));
  ASSERT_EQ(link->kind, Kind::kEntry);
  EXPECT_EQ(pipeline_.files_changed, (Changed{{6, "/c"}}));
}

// A rename onto a name of a hard-linked file takes a link from it.
TEST_F(HandlerTest, RenameOntoAHardLinkTellsTheCacheWhichFileChanged) {
  Known(kRoot, "a", FileAttr(5));
  uint64_t b = Known(kRoot, "b", FileAttr(6, S_IFREG | 0644, 2));
  uint64_t c = Known(kRoot, "c", FileAttr(6, S_IFREG | 0644, 2));
  auto rename = Req(KernelOp::kRename);
  handlers_->Rename(rename, kRoot, "a", kRoot, "b", 0);
  pipeline_.Answer(3, Ok());
  EXPECT_EQ(rename->err, 0);
  using Changed = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(pipeline_.files_changed, (Changed{{6, "/b"}}));
  EXPECT_EQ(pipeline_.other_names, std::vector<std::string>{"/c"});
  std::vector<uint64_t> dropped;
  for (const auto& [node, data] : notify_.nodes) dropped.push_back(node);
  EXPECT_EQ(dropped, std::vector<uint64_t>{c});
  EXPECT_EQ(nodes_.PathOf(b), "");  // replaced: detached
  // An exchange changes no link count.
  pipeline_.files_changed.clear();
  auto exchange = Req(KernelOp::kRename);
  handlers_->Rename(exchange, kRoot, "b", kRoot, "c", RENAME_EXCHANGE);
  pipeline_.Answer(4, Ok());
  EXPECT_EQ(exchange->err, 0);
  EXPECT_TRUE(pipeline_.files_changed.empty());
}

TEST_F(HandlerTest, ReadlinkAnswersTheTarget) {
  uint64_t node = Known(kRoot, "l", FileAttr(5, S_IFLNK | 0777));
  auto req = Req(KernelOp::kReadlink);
  handlers_->Readlink(req, node);
  v1::OpResult r;
  r.mutable_readlink()->set_target("target");
  pipeline_.Answer(1, r);
  EXPECT_EQ(req->kind, Kind::kReadlink);
  EXPECT_EQ(req->data, "target");
}

TEST_F(HandlerTest, ForgetDropsReferences) {
  uint64_t node = Known(kRoot, "a", FileAttr(5));
  auto req = Req(KernelOp::kForget);
  handlers_->Forget(req, {{node, 1}});
  EXPECT_EQ(req->kind, Kind::kForgotten);
  EXPECT_EQ(nodes_.PathOf(node), std::nullopt);
}

TEST_F(HandlerTest, StoppedHandlersCancelInsteadOfSending) {
  handlers_->StopSending();
  auto req = Req(KernelOp::kLookup);
  handlers_->Lookup(req, kRoot, "a");
  EXPECT_EQ(sent(), 0u);
  EXPECT_EQ(req->err, ECANCELED);
}

TEST_F(HandlerTest, EveryReplyIsCountedOnceWithItsErrno) {
  Known(kRoot, "a", FileAttr(5));
  auto req = Req(KernelOp::kLookup);
  handlers_->Lookup(req, kRoot, "b");
  pipeline_.Answer(1, Errno(ENOENT));
  MountStats::Snapshot s = stats_.Snap();
  ASSERT_EQ(s.ops.size(), 1u);
  EXPECT_EQ(s.ops[0].name, "lookup");
  EXPECT_EQ(s.ops[0].count, 2u);
  EXPECT_EQ(s.ops[0].errors, 1u);
}

}  // namespace
}  // namespace fusehost
