// Open files through the request handlers, with fake requests and a fake
// pipeline.

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
constexpr uint64_t kRoot = NodeTable::kRootId;

v1::OpResult OpenResult(uint64_t fh) {
  v1::OpResult r;
  r.mutable_open()->set_fh(fh);
  return r;
}

KernelFile File(uint64_t fh, int flags = O_RDONLY) {
  KernelFile f;
  f.fh = fh;
  f.flags = flags;
  return f;
}

TEST_F(HandlerTest, OpenPassesTheBackendsHandleAndFlags) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kOpen);
  handlers_->Open(req, node, O_RDWR);
  EXPECT_EQ(pipeline_.op(1).open().path(), "/f");
  EXPECT_EQ(pipeline_.op(1).open().flags(), static_cast<uint32_t>(O_RDWR));
  v1::OpResult r = OpenResult(31);
  r.mutable_open()->set_noflush(true);
  r.mutable_open()->set_direct_io(true);
  pipeline_.Answer(1, r);
  ASSERT_EQ(req->kind, Kind::kOpen);
  EXPECT_EQ(req->open.fh, 31u);
  EXPECT_TRUE(req->open.noflush);
  EXPECT_TRUE(req->open.direct_io);
  EXPECT_EQ(nodes_.AnyOpenHandle(node), 31u);
}

TEST_F(HandlerTest, AnOpenTheKernelDidNotTakeIsReleased) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kOpen);
  req->refuse = true;
  handlers_->Open(req, node, O_RDONLY);
  pipeline_.Answer(1, OpenResult(31));
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).release().fh(), 31u);
  EXPECT_EQ(nodes_.AnyOpenHandle(node), std::nullopt);
}

TEST_F(HandlerTest, SmallFileContentsAnswerTheFirstReadOnly) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto open = Req(KernelOp::kOpen);
  handlers_->Open(open, node, O_RDONLY);
  v1::OpResult r = OpenResult(7);
  r.mutable_open()->set_contents("hello");
  pipeline_.Answer(1, r);

  auto first = Req(KernelOp::kRead);
  handlers_->Read(first, node, File(7), 4096, 0);
  EXPECT_EQ(first->kind, Kind::kData);
  EXPECT_EQ(first->data, "hello");
  EXPECT_EQ(sent(), 2u) << "the first read went to the backend";

  auto second = Req(KernelOp::kRead);
  handlers_->Read(second, node, File(7), 4096, 0);
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).read().fh(), 7u);
  v1::OpResult data;
  data.mutable_read()->set_data("hello");
  pipeline_.Answer(2, data);
  EXPECT_EQ(second->data, "hello");
}

// A backend that cannot tell a file's size cheaply (the Python SDK) learns
// from the open that the daemon would take the file whole with the reply:
// only for read-only opens of regular files whose cached size is small.
TEST_F(HandlerTest, ReadOnlyOpensOfSmallCachedFilesAskForTheirContents) {
  v1::Attr small_attr = FileAttr(5);
  v1::Attr big_attr = FileAttr(6);
  big_attr.set_size(kOpenContentsWanted + 1);
  uint64_t small = Known(kRoot, "small", small_attr);
  uint64_t big = Known(kRoot, "big", big_attr);
  uint64_t unknown = Known(kRoot, "unknown", FileAttr(7));
  pipeline_.cached_attrs["/small"] = small_attr;
  pipeline_.cached_attrs["/big"] = big_attr;
  handlers_->Open(Req(KernelOp::kOpen), small, O_RDONLY);
  handlers_->Open(Req(KernelOp::kOpen), small, O_RDWR);
  handlers_->Open(Req(KernelOp::kOpen), big, O_RDONLY);
  handlers_->Open(Req(KernelOp::kOpen), unknown, O_RDONLY);
  ASSERT_EQ(sent(), 7u);  // three lookups, four opens
  EXPECT_EQ(pipeline_.op(3).open().contents_up_to(),
            kOpenContentsWanted);
  EXPECT_EQ(pipeline_.op(4).open().contents_up_to(), 0u) << "opened to write";
  EXPECT_EQ(pipeline_.op(5).open().contents_up_to(), 0u) << "too large";
  EXPECT_EQ(pipeline_.op(6).open().contents_up_to(), 0u) << "size not cached";
  for (size_t i = 3; i < 7; ++i) pipeline_.Answer(i, OpenResult(i));
}

TEST_F(HandlerTest, AWriteForgetsContentsKeptForAnyHandleOfTheFile) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  handlers_->Open(Req(KernelOp::kOpen), node, O_RDONLY);
  v1::OpResult r = OpenResult(7);
  r.mutable_open()->set_contents("old");
  pipeline_.Answer(1, r);
  auto write = Req(KernelOp::kWrite);
  handlers_->Write(write, node, File(8, O_WRONLY), "new", 0);
  EXPECT_EQ(pipeline_.op(2).write().data(), "new");
  v1::OpResult w;
  w.mutable_write()->set_size(3);
  pipeline_.Answer(2, w);
  EXPECT_EQ(write->kind, Kind::kWritten);
  EXPECT_EQ(write->count, 3u);
  auto read = Req(KernelOp::kRead);
  handlers_->Read(read, node, File(7), 4096, 0);
  EXPECT_EQ(sent(), 4u) << "read answered from stale contents";
  pipeline_.Answer(3, Errno(EIO));
}

TEST_F(HandlerTest, AWriteThroughOneHardLinkForgetsContentsKeptForAnother) {
  uint64_t a = Known(kRoot, "a", FileAttr(5, S_IFREG | 0644, 2));
  uint64_t b = Known(kRoot, "b", FileAttr(5, S_IFREG | 0644, 2));
  handlers_->Open(Req(KernelOp::kOpen), b, O_RDONLY);
  v1::OpResult r = OpenResult(7);
  r.mutable_open()->set_contents("old");
  pipeline_.Answer(2, r);
  auto write = Req(KernelOp::kWrite);
  handlers_->Write(write, a, File(8, O_WRONLY), "new", 0);
  v1::OpResult w;
  w.mutable_write()->set_size(3);
  pipeline_.Answer(3, w);
  auto read = Req(KernelOp::kRead);
  handlers_->Read(read, b, File(7), 4096, 0);
  ASSERT_EQ(sent(), 5u) << "read through the other name answered from "
                           "contents older than the write";
  v1::OpResult data;
  data.mutable_read()->set_data("new");
  pipeline_.Answer(4, data);
  EXPECT_EQ(read->data, "new");
}

TEST_F(HandlerTest, ReleaseIsAnsweredBeforeTheBackendCloses) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  nodes_.AddOpenHandle(node, 7);
  auto req = Req(KernelOp::kRelease);
  handlers_->Release(req, node, File(7));
  EXPECT_EQ(req->err, 0);
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).release().fh(), 7u);
  EXPECT_EQ(nodes_.AnyOpenHandle(node), std::nullopt);
  pipeline_.Answer(1, Errno(EIO));  // nobody waits for it
}

TEST_F(HandlerTest, CreateAnswersWithEntryAndHandle) {
  auto req = Req(KernelOp::kCreate);
  handlers_->Create(req, kRoot, "n", S_IFREG | 0600, O_CREAT | O_WRONLY);
  EXPECT_EQ(pipeline_.op(0).create().path(), "/n");
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(12);
  *r.mutable_create()->mutable_attr() = FileAttr(40);
  pipeline_.Answer(0, r);
  ASSERT_EQ(req->kind, Kind::kCreate);
  EXPECT_EQ(req->open.fh, 12u);
  EXPECT_EQ(nodes_.PathOf(req->entry.node), "/n");
  EXPECT_EQ(nodes_.AnyOpenHandle(req->entry.node), 12u);
}

TEST_F(HandlerTest, ACreateTheKernelDidNotTakeIsUndone) {
  auto req = Req(KernelOp::kCreate);
  req->refuse = true;
  handlers_->Create(req, kRoot, "n", S_IFREG | 0600, O_CREAT | O_WRONLY);
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(12);
  pipeline_.Answer(0, r);  // no attributes: asked for
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).getattr().fh(), 12u);
  pipeline_.Answer(1, GetattrResult(FileAttr(40)));
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).release().fh(), 12u);
  EXPECT_EQ(nodes_.Find("/n"), 0u);
}

// What the kernel never receives it never releases: a create whose
// attributes could not be had, or are of another file type (which the
// kernel refuses), has its backend handle released here.
TEST_F(HandlerTest, ACreateWithoutUsableAttributesReleasesItsHandle) {
  auto failed = Req(KernelOp::kCreate);
  handlers_->Create(failed, kRoot, "n", S_IFREG | 0600, O_CREAT | O_WRONLY);
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(12);
  pipeline_.Answer(0, r);  // no attributes: asked for
  ASSERT_EQ(sent(), 2u);
  pipeline_.Answer(1, Errno(ESTALE));
  EXPECT_EQ(failed->err, ESTALE);
  ASSERT_EQ(sent(), 3u);
  EXPECT_EQ(pipeline_.op(2).release().fh(), 12u);

  auto directory = Req(KernelOp::kCreate);
  handlers_->Create(directory, kRoot, "m", S_IFREG | 0600, O_CREAT | O_WRONLY);
  r.mutable_create()->mutable_open()->set_fh(13);
  pipeline_.Answer(3, r);
  ASSERT_EQ(sent(), 5u);
  pipeline_.Answer(4, GetattrResult(FileAttr(41, S_IFDIR | 0755, 2)));
  EXPECT_EQ(directory->err, EIO);
  ASSERT_EQ(sent(), 6u);
  EXPECT_EQ(pipeline_.op(5).release().fh(), 13u);
  EXPECT_EQ(nodes_.Find("/n"), 0u);
  EXPECT_EQ(nodes_.Find("/m"), 0u);
}

TEST_F(HandlerTest, AMkdirAnsweredWithAFileFailsAndKeepsNoNode) {
  auto req = Req(KernelOp::kMkdir);
  handlers_->Mkdir(req, kRoot, "d", 0755);
  pipeline_.Answer(0, v1::OpResult());  // no attributes: asked for
  ASSERT_EQ(sent(), 2u);
  pipeline_.Answer(1, GetattrResult(FileAttr(42)));
  EXPECT_EQ(req->err, EIO);
  EXPECT_EQ(nodes_.Find("/d"), 0u);
}

TEST_F(HandlerTest, AWriteToAHardLinkDropsTheOtherNamesFirst) {
  uint64_t a = Known(kRoot, "a", FileAttr(5, S_IFREG | 0644, 2));
  uint64_t b = Known(kRoot, "b", FileAttr(5, S_IFREG | 0644, 2));
  auto req = Req(KernelOp::kWrite);
  handlers_->Write(req, a, File(3, O_WRONLY), "x", 0);
  v1::OpResult w;
  w.mutable_write()->set_size(1);
  pipeline_.Answer(2, w);
  EXPECT_EQ(req->kind, Kind::kWritten);
  ASSERT_EQ(notify_.nodes.size(), 1u);
  EXPECT_EQ(notify_.nodes[0], std::make_pair(b, false));
  EXPECT_EQ(pipeline_.other_names, std::vector<std::string>{"/b"});
}

// Each name of a hard-linked file is a node of its own in the kernel: every
// change of the file through one name drops the others' attributes before
// the reply, and tells the daemon's cache which file changed.
TEST_F(HandlerTest, EveryChangeThroughAHardLinkDropsTheOtherNamesFirst) {
  struct Change {
    const char* what;
    std::function<void(RequestHandlers*, Request, uint64_t)> run;
    v1::OpResult result;
    Kind reply;
  };
  v1::OpResult copied;
  copied.mutable_copy_file_range()->set_size(4);
  const std::vector<Change> changes = {
      {"fallocate",
       [](RequestHandlers* h, Request r, uint64_t n) {
         h->Fallocate(r, n, File(3, O_WRONLY), 0, 0, 4096);
       },
       Ok(), Kind::kError},
      {"copy_file_range into it",
       [](RequestHandlers* h, Request r, uint64_t n) {
         h->CopyFileRange(r, n, 0, File(3), n, 8, File(3, O_RDWR), 4, 0);
       },
       copied, Kind::kWritten},
      {"setxattr",
       [](RequestHandlers* h, Request r, uint64_t n) {
         h->Setxattr(r, n, "system.posix_acl_access", "acl", 0);
       },
       Ok(), Kind::kError},
      {"removexattr",
       [](RequestHandlers* h, Request r, uint64_t n) {
         h->Removexattr(r, n, "user.a");
       },
       Ok(), Kind::kError},
      {"open with O_TRUNC",
       [](RequestHandlers* h, Request r, uint64_t n) {
         h->Open(r, n, O_WRONLY | O_TRUNC);
       },
       OpenResult(4), Kind::kOpen},
  };
  uint64_t a = Known(kRoot, "a", FileAttr(5, S_IFREG | 0644, 2));
  uint64_t b = Known(kRoot, "b", FileAttr(5, S_IFREG | 0644, 2));
  for (const Change& change : changes) {
    SCOPED_TRACE(change.what);
    notify_.nodes.clear();
    pipeline_.files_changed.clear();
    pipeline_.other_names.clear();
    auto req = Req(KernelOp::kWrite);
    change.run(handlers_.get(), req, a);
    ASSERT_EQ(notify_.nodes.size(), 0u) << "dropped before the backend's answer";
    pipeline_.Answer(sent() - 1, change.result);
    EXPECT_EQ(req->kind, change.reply);
    if (change.reply == Kind::kError) {
      EXPECT_EQ(req->err, 0);
    }
    EXPECT_EQ(notify_.nodes,
              (std::vector<std::pair<uint64_t, bool>>{{b, false}}));
    EXPECT_EQ(pipeline_.other_names, std::vector<std::string>{"/b"});
    EXPECT_EQ(pipeline_.files_changed,
              (std::vector<std::pair<uint64_t, std::string>>{{5, "/a"}}));
  }
  // An open that truncates nothing changes nothing.
  notify_.nodes.clear();
  auto plain = Req(KernelOp::kOpen);
  handlers_->Open(plain, a, O_WRONLY);
  pipeline_.Answer(sent() - 1, OpenResult(6));
  EXPECT_EQ(plain->kind, Kind::kOpen);
  EXPECT_TRUE(notify_.nodes.empty());
}

// A truncating open forgets the contents an earlier open of the file kept
// for its first read: they are the file's old bytes.
TEST_F(HandlerTest, ATruncatingOpenForgetsContentsKeptForAnotherHandle) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto first = Req(KernelOp::kOpen);
  handlers_->Open(first, node, O_RDONLY);
  v1::OpResult with_contents = OpenResult(3);
  with_contents.mutable_open()->set_contents("old bytes");
  pipeline_.Answer(1, with_contents);
  ASSERT_EQ(first->kind, Kind::kOpen);
  handlers_->Open(Req(KernelOp::kOpen), node, O_WRONLY | O_TRUNC);
  pipeline_.Answer(2, OpenResult(4));
  auto read = Req(KernelOp::kRead);
  handlers_->Read(read, node, File(3), 4096, 0);
  ASSERT_EQ(sent(), 4u) << "answered from contents kept before the truncation";
  pipeline_.Answer(3, v1::OpResult());
  EXPECT_EQ(read->kind, Kind::kData);
}

TEST_F(HandlerTest, LocksCarryTheirOwnerAndRange) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  KernelFile f = File(3);
  f.lock_owner = 0xabc;
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_start = 10;
  lock.l_len = 5;
  auto get = Req(KernelOp::kGetlk);
  handlers_->Getlk(get, node, f, lock);
  const v1::LockRequest& r = pipeline_.op(1).lock();
  EXPECT_EQ(r.cmd(), F_GETLK);
  EXPECT_EQ(r.lock_owner(), 0xabcu);
  EXPECT_EQ(r.lock().start(), 10u);
  v1::OpResult answer;
  answer.mutable_lock()->mutable_lock()->set_type(F_UNLCK);
  pipeline_.Answer(1, answer);
  EXPECT_EQ(get->kind, Kind::kLock);
  EXPECT_EQ(get->lock.l_type, F_UNLCK);

  auto set = Req(KernelOp::kSetlk);
  handlers_->Setlk(set, node, f, lock, /*sleep=*/true);
  EXPECT_EQ(pipeline_.op(2).lock().cmd(), F_SETLKW);
  pipeline_.Answer(2, Errno(EAGAIN));
  EXPECT_EQ(set->err, EAGAIN);
}

TEST_F(HandlerTest, XattrSizesAndRange) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  v1::OpResult value;
  value.mutable_xattr()->set_data("12345");
  auto size = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(size, node, "user.a", 0);
  pipeline_.Answer(1, value);
  EXPECT_EQ(size->kind, Kind::kXattrSize);
  EXPECT_EQ(size->count, 5u);
  auto small = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(small, node, "user.a", 4);
  pipeline_.Answer(2, value);
  EXPECT_EQ(small->err, ERANGE);
  auto fits = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(fits, node, "user.a", 5);
  pipeline_.Answer(3, value);
  EXPECT_EQ(fits->data, "12345");
}

TEST_F(HandlerTest, NamesTheBackendDoesNotKeepAreUnsupportedWithoutAMessage) {
  // An empty prefix and one with a NUL would exclude every name: ignored.
  unsupported_xattrs_ = XattrExclusions(
      {"security.selinux", "", std::string("user\0", 5), "security.SMACK64"});
  SetTimeouts(KernelTimeouts{.attr = absl::Seconds(2)});
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  const size_t before = sent();
  auto get = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(get, node, "security.selinux", 0);
  EXPECT_EQ(get->err, EOPNOTSUPP);
  auto set = Req(KernelOp::kSetxattr);
  handlers_->Setxattr(set, node, "security.SMACK64EXEC", "x", 0);
  EXPECT_EQ(set->err, EOPNOTSUPP);
  auto remove = Req(KernelOp::kRemovexattr);
  handlers_->Removexattr(remove, node, "security.selinux");
  EXPECT_EQ(remove->err, EOPNOTSUPP);
  EXPECT_EQ(sent(), before);

  // Other names go to the backend, and lists lose the excluded ones, in
  // their length too.
  auto other = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(other, node, "user.a", 0);
  EXPECT_EQ(sent(), before + 1);
  pipeline_.Answer(before, Errno(ENODATA));
  EXPECT_EQ(other->err, ENODATA);
  v1::OpResult names;
  names.mutable_xattr()->set_data(
      std::string("user.a\0security.selinux\0security.capability\0", 44));
  auto length = Req(KernelOp::kListxattr);
  handlers_->Listxattr(length, node, 0);
  pipeline_.Answer(before + 1, names);
  EXPECT_EQ(length->kind, Kind::kXattrSize);
  EXPECT_EQ(length->count, 27u);
  auto list = Req(KernelOp::kListxattr);
  handlers_->Listxattr(list, node, 27);
  pipeline_.Answer(before + 2, names);
  EXPECT_EQ(list->data, std::string("user.a\0security.capability\0", 27));
}

TEST_F(HandlerTest, ABackendWithoutXattrsHasEveryXattrRequestAnsweredEnosys) {
  no_xattrs_ = true;
  unsupported_xattrs_ = XattrExclusions({"security.selinux"});
  SetTimeouts(KernelTimeouts{.attr = absl::Seconds(2)});
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  const size_t before = sent();
  // ENOSYS, as libfuse answers for missing callbacks: the kernel then
  // sends no more (EOPNOTSUPP would have it ask again and again).
  auto get = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(get, node, "security.capability", 0);
  EXPECT_EQ(get->err, ENOSYS);
  auto label = Req(KernelOp::kGetxattr);
  handlers_->Getxattr(label, node, "security.selinux", 0);
  EXPECT_EQ(label->err, ENOSYS);
  auto list = Req(KernelOp::kListxattr);
  handlers_->Listxattr(list, node, 0);
  EXPECT_EQ(list->err, ENOSYS);
  auto set = Req(KernelOp::kSetxattr);
  handlers_->Setxattr(set, node, "user.a", "x", 0);
  EXPECT_EQ(set->err, ENOSYS);
  auto remove = Req(KernelOp::kRemovexattr);
  handlers_->Removexattr(remove, node, "user.a");
  EXPECT_EQ(remove->err, ENOSYS);
  EXPECT_EQ(sent(), before);
}

}  // namespace
}  // namespace fusehost
