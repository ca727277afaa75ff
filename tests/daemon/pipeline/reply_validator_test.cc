// The reply validator: what a backend may send, what is repaired, what is
// refused; and the layer passing checked results on.

#include "daemon/pipeline/reply_validator.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {
namespace {

v1::Attr FileAttr(uint32_t mode = S_IFREG | 0644) {
  v1::Attr a;
  a.set_ino(5);
  a.set_mode(mode);
  a.set_nlink(1);
  return a;
}

ReplyExpectation Expect(v1::Op::OpCase op, uint64_t size = 0) {
  ReplyExpectation e;
  e.op = op;
  e.size = size;
  return e;
}

std::vector<std::string> Validate(v1::Op::OpCase op, v1::OpResult* r,
                                  uint64_t size = 0) {
  return ValidateResult(Expect(op, size), r);
}

TEST(ValidateResult, AGoodGetattrPassesUntouched) {
  v1::OpResult r;
  r.set_id(3);
  *r.mutable_getattr()->mutable_attr() = FileAttr();
  v1::OpResult before = r;
  EXPECT_TRUE(Validate(v1::Op::kGetattr, &r).empty());
  EXPECT_EQ(r.SerializeAsString(), before.SerializeAsString());
}

TEST(ValidateResult, ErrnoOutOfRangeIsEio) {
  for (int bad : {-1, 512 /* ERESTARTSYS */, 4096, 1 << 30}) {
    v1::OpResult r;
    r.set_id(3);
    r.set_posix_errno(bad);
    EXPECT_FALSE(Validate(v1::Op::kUnlink, &r).empty()) << bad;
    EXPECT_EQ(r.posix_errno(), EIO) << bad;
    EXPECT_EQ(r.id(), 3u);
  }
  v1::OpResult ok;
  ok.set_posix_errno(ENOENT);
  EXPECT_TRUE(Validate(v1::Op::kUnlink, &ok).empty());
  EXPECT_EQ(ok.posix_errno(), ENOENT);
}

TEST(ValidateResult, AFailureCarriesNothingElse) {
  v1::OpResult r;
  r.set_id(4);
  r.set_posix_errno(EACCES);
  *r.mutable_getattr()->mutable_attr() = FileAttr(0);  // would be invalid
  *r.mutable_parent_attr() = FileAttr(S_IFDIR | 0755);
  EXPECT_TRUE(Validate(v1::Op::kGetattr, &r).empty());
  EXPECT_EQ(r.posix_errno(), EACCES);
  EXPECT_FALSE(r.has_getattr());
  EXPECT_FALSE(r.has_parent_attr());
  EXPECT_EQ(r.id(), 4u);
}

TEST(ValidateResult, RequiredResultMissingOrOfTheWrongKindIsEio) {
  v1::OpResult missing;
  EXPECT_FALSE(Validate(v1::Op::kGetattr, &missing).empty());
  EXPECT_EQ(missing.posix_errno(), EIO);

  v1::OpResult wrong;
  wrong.mutable_read()->set_data("x");
  EXPECT_FALSE(Validate(v1::Op::kGetattr, &wrong).empty());
  EXPECT_EQ(wrong.posix_errno(), EIO);

  // Optional results may be absent (an empty listing page, a mutation
  // without attributes).
  v1::OpResult none;
  EXPECT_TRUE(Validate(v1::Op::kChmod, &none).empty());
  EXPECT_EQ(none.posix_errno(), 0);
  v1::OpResult empty;
  empty.mutable_empty();
  EXPECT_TRUE(Validate(v1::Op::kUnlink, &empty).empty());
  EXPECT_EQ(empty.posix_errno(), 0);
}

TEST(ValidateResult, GetlkNeedsItsLockButSetlkDoesNot) {
  v1::Op getlk;
  getlk.mutable_lock()->set_cmd(F_GETLK);
  v1::OpResult r;
  EXPECT_FALSE(ValidateResult(ReplyExpectation::Of(getlk), &r).empty());
  EXPECT_EQ(r.posix_errno(), EIO);
  v1::Op setlk;
  setlk.mutable_lock()->set_cmd(F_SETLK);
  v1::OpResult s;
  EXPECT_TRUE(ValidateResult(ReplyExpectation::Of(setlk), &s).empty());
  v1::OpResult bad_type;
  bad_type.mutable_lock()->mutable_lock()->set_type(77);
  EXPECT_FALSE(ValidateResult(ReplyExpectation::Of(getlk), &bad_type).empty());
  EXPECT_EQ(bad_type.posix_errno(), EIO);
}

TEST(ValidateResult, RequiredAttrWithoutAFileTypeIsEio) {
  for (uint32_t mode : {0u, 0644u, 0170000u | 0644u}) {
    v1::OpResult r;
    *r.mutable_getattr()->mutable_attr() = FileAttr(mode);
    EXPECT_FALSE(Validate(v1::Op::kGetattr, &r).empty()) << mode;
    EXPECT_EQ(r.posix_errno(), EIO) << mode;
    EXPECT_FALSE(r.has_getattr());
  }
}

TEST(ValidateResult, OptionalAttrsWithoutAFileTypeAreDropped) {
  v1::OpResult r;
  *r.mutable_entry()->mutable_attr() = FileAttr(0777);
  *r.mutable_parent_attr() = FileAttr(0755);
  *r.mutable_old_parent_attr() = FileAttr(S_IFDIR | 0755);
  EXPECT_EQ(Validate(v1::Op::kMkdir, &r).size(), 2u);
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_FALSE(r.entry().has_attr());
  EXPECT_FALSE(r.has_parent_attr());
  EXPECT_TRUE(r.has_old_parent_attr());

  v1::OpResult w;
  w.mutable_write()->set_size(1);
  *w.mutable_write()->mutable_attr() = FileAttr(0);
  w.mutable_write()->mutable_attr()->set_ino(9);  // set, but no type
  EXPECT_FALSE(Validate(v1::Op::kWrite, &w, 1).empty());
  EXPECT_FALSE(w.write().has_attr());
  EXPECT_EQ(w.write().size(), 1u);
}

// Checking an optional field must not create it: an empty parent_attr would
// read as "the backend sent directory attributes" further up.
// The kernel refuses a new entry of another type than the op made, and
// then neither forgets its node nor releases its handle.
TEST(ValidateResult, ANewNameOfAnotherFileTypeIsEio) {
  struct Case {
    v1::Op op;
    uint32_t mode;
    bool fits;
  };
  auto op = [](auto set) {
    v1::Op o;
    set(&o);
    return o;
  };
  std::vector<Case> cases = {
      {op([](v1::Op* o) { o->mutable_mkdir()->set_path("/d"); }),
       S_IFREG | 0644, false},
      {op([](v1::Op* o) { o->mutable_mkdir()->set_path("/d"); }),
       S_IFDIR | 0755, true},
      {op([](v1::Op* o) { o->mutable_symlink()->set_path("/l"); }),
       S_IFDIR | 0755, false},
      {op([](v1::Op* o) { o->mutable_mknod()->set_mode(S_IFIFO | 0644); }),
       S_IFIFO | 0644, true},
      {op([](v1::Op* o) { o->mutable_mknod()->set_mode(0644); }),
       S_IFREG | 0644, true},
      {op([](v1::Op* o) { o->mutable_mknod()->set_mode(S_IFIFO | 0644); }),
       S_IFREG | 0644, false},
      {op([](v1::Op* o) { o->mutable_link()->set_new_path("/b"); }),
       S_IFDIR | 0755, false},
      {op([](v1::Op* o) { o->mutable_link()->set_new_path("/b"); }),
       S_IFLNK | 0777, true},
  };
  for (const Case& c : cases) {
    v1::OpResult r;
    r.set_id(1);
    *r.mutable_entry()->mutable_attr() = FileAttr(c.mode);
    std::vector<std::string> problems =
        ValidateResult(ReplyExpectation::Of(c.op), &r);
    EXPECT_EQ(r.posix_errno() == 0, c.fits) << c.op.ShortDebugString();
    EXPECT_EQ(problems.empty(), c.fits) << c.op.ShortDebugString();
  }
  v1::Op create;
  create.mutable_create()->set_path("/f");
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(3);
  *r.mutable_create()->mutable_attr() = FileAttr(S_IFDIR | 0755);
  ValidateResult(ReplyExpectation::Of(create), &r);
  EXPECT_EQ(r.posix_errno(), EIO);
}

TEST(ValidateResult, AbsentOptionalAttrsStayAbsent) {
  v1::OpResult r;
  r.mutable_read()->set_data("hello");
  EXPECT_TRUE(Validate(v1::Op::kRead, &r, 5).empty());
  EXPECT_FALSE(r.has_parent_attr());
  EXPECT_FALSE(r.has_old_parent_attr());

  v1::OpResult e;
  e.mutable_entry();
  EXPECT_TRUE(Validate(v1::Op::kMkdir, &e).empty());
  EXPECT_FALSE(e.entry().has_attr());
  EXPECT_FALSE(e.has_parent_attr());
}

TEST(ValidateResult, InvalidXattrNamesDropTheList) {
  v1::OpResult r;
  v1::Attr* a = r.mutable_getattr()->mutable_attr();
  *a = FileAttr();
  a->set_xattr_names_known(true);
  a->add_xattr_names("user.ok");
  a->add_xattr_names(std::string("bad\0name", 8));
  EXPECT_FALSE(Validate(v1::Op::kGetattr, &r).empty());
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_FALSE(r.getattr().attr().xattr_names_known());
  EXPECT_EQ(r.getattr().attr().xattr_names_size(), 0);
}

TEST(ValidateResult, SizesBeyondWhatWasAskedAreCut) {
  v1::OpResult read;
  read.mutable_read()->set_data(std::string(100, 'x'));
  EXPECT_FALSE(Validate(v1::Op::kRead, &read, 10).empty());
  EXPECT_EQ(read.read().data(), std::string(10, 'x'));

  v1::OpResult write;
  write.mutable_write()->set_size(1 << 20);
  EXPECT_FALSE(Validate(v1::Op::kWrite, &write, 4096).empty());
  EXPECT_EQ(write.write().size(), 4096u);

  v1::OpResult copy;
  copy.mutable_copy_file_range()->set_size(500);
  EXPECT_FALSE(Validate(v1::Op::kCopyFileRange, &copy, 100).empty());
  EXPECT_EQ(copy.copy_file_range().size(), 100u);

  v1::OpResult short_read;
  short_read.mutable_read()->set_data("ab");
  EXPECT_TRUE(Validate(v1::Op::kRead, &short_read, 10).empty());
}

TEST(ValidateResult, SymlinkTargets) {
  v1::OpResult empty;
  empty.mutable_readlink()->set_target("");
  Validate(v1::Op::kReadlink, &empty);
  EXPECT_EQ(empty.posix_errno(), EIO);

  v1::OpResult nul;
  nul.mutable_readlink()->set_target(std::string("a\0b", 3));
  Validate(v1::Op::kReadlink, &nul);
  EXPECT_EQ(nul.posix_errno(), EIO);

  v1::OpResult long_target;
  long_target.mutable_readlink()->set_target(std::string(PATH_MAX + 10, 'a'));
  Validate(v1::Op::kReadlink, &long_target);
  EXPECT_EQ(long_target.posix_errno(), 0);
  EXPECT_EQ(long_target.readlink().target().size(), size_t{PATH_MAX - 1});
}

TEST(ValidateResult, OpenContentsAboveTheLimitAreDropped) {
  v1::OpResult r;
  r.mutable_open()->set_fh(3);
  r.mutable_open()->set_contents(std::string(kMaxOpenContents + 1, 'x'));
  EXPECT_FALSE(Validate(v1::Op::kOpen, &r).empty());
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_FALSE(r.open().has_contents());
  EXPECT_EQ(r.open().fh(), 3u);
}

TEST(ValidateResult, NegativeSeekIsEio) {
  v1::OpResult r;
  r.mutable_lseek()->set_offset(-1);
  Validate(v1::Op::kLseek, &r);
  EXPECT_EQ(r.posix_errno(), EIO);
}

std::vector<std::string> NamesOf(const v1::OpResult& r) {
  std::vector<std::string> names;
  for (const v1::DirEntry& e : r.readdir().entries()) names.push_back(e.name());
  return names;
}

TEST(ValidateResult, ListingsLoseInvalidAndRepeatedNames) {
  v1::OpResult r;
  auto add = [&](const std::string& name, uint32_t mode) {
    v1::DirEntry* e = r.mutable_readdir()->add_entries();
    e->set_name(name);
    if (mode != 0) *e->mutable_attr() = FileAttr(mode);
    return e;
  };
  add("", S_IFREG);
  add(".", S_IFDIR);
  add("..", S_IFDIR);
  add("x/y", S_IFREG);
  add(std::string("n\0ul", 4), S_IFREG);
  add(std::string(256, 'n'), S_IFREG);
  add(std::string(255, 'm'), S_IFREG);
  add("ok", S_IFREG);
  add("ok", S_IFDIR);
  add("notype", 0755);
  add("badtype", 0)->set_type(0170000);
  add("dir", 0)->set_type(S_IFDIR);
  r.mutable_readdir()->set_eof(true);
  EXPECT_FALSE(Validate(v1::Op::kReaddir, &r).empty());
  EXPECT_EQ(NamesOf(r),
            (std::vector<std::string>{".", "..", std::string(255, 'm'), "ok",
                                      "notype", "badtype", "dir"}));
  EXPECT_EQ(r.readdir().entries(3).attr().mode(),
            static_cast<uint32_t>(S_IFREG));  // the first "ok" stays
  EXPECT_FALSE(r.readdir().entries(4).has_attr());
  EXPECT_EQ(r.readdir().entries(5).type(), 0u);
  EXPECT_EQ(r.readdir().entries(6).type(), static_cast<uint32_t>(S_IFDIR));
  EXPECT_TRUE(r.readdir().eof());
}

TEST(ValidateResult, RepliesOverTheSizeLimitsAreEio) {
  v1::OpResult page;
  for (int i = 0; i <= kMaxPageEntries; ++i) {
    page.mutable_readdir()->add_entries()->set_name(absl::StrCat("n", i));
  }
  EXPECT_FALSE(Validate(v1::Op::kReaddir, &page).empty());
  EXPECT_EQ(page.posix_errno(), EIO);
  v1::OpResult value;
  value.mutable_xattr()->set_data(std::string(65537, 'v'));
  EXPECT_FALSE(Validate(v1::Op::kGetxattr, &value).empty());
  EXPECT_EQ(value.posix_errno(), EIO);
  v1::OpResult fine;
  fine.mutable_xattr()->set_data(std::string(65536, 'v'));
  EXPECT_TRUE(Validate(v1::Op::kGetxattr, &fine).empty());
}

TEST(ValidateNotice, PathsMustBeAbsoluteAndClean) {
  auto check = [](const std::string& path) {
    v1::Invalidation n;
    n.set_path(path);
    return ValidateNotice(n);
  };
  EXPECT_EQ(check("/"), "");
  EXPECT_EQ(check("/a/b"), "");
  for (const std::string& bad :
       {std::string(""), std::string("a"), std::string("/a/"),
        std::string("//a"), std::string("/a/./b"), std::string("/a/../b"),
        std::string("/a\0b", 4), "/" + std::string(256, 'x')}) {
    EXPECT_NE(check(bad), "") << bad;
  }
  v1::Invalidation kind;
  kind.set_path("/a");
  kind.set_kind(static_cast<v1::Invalidation::Kind>(9));
  EXPECT_NE(ValidateNotice(kind), "");
}

// The layer: results reach the caller repaired; the stats count them.
class RecordingSink : public CountingTransport, public BatchSink {
 public:
  void Send(v1::Op op, Done done) override {
    ops.push_back(PendingOp{std::move(op), std::move(done)});
  }
  void SendBatch(std::vector<PendingOp> batch, std::function<void()> sent,
                 bool /*in_order*/) override {
    for (PendingOp& p : batch) ops.push_back(std::move(p));
    sent();
  }
  // Answers op i as the channel does: the op's check first, in place.
  void Answer(size_t i, v1::OpResult result) {
    if (ops[i].check) ops[i].check(&result);
    ops[i].done(result);
  }
  std::vector<PendingOp> ops;
};

TEST(ReplyValidator, RepairsResultsOnTheirWayUpAndCountsThem) {
  RecordingSink channel;
  MountStats stats;
  ReplyValidator::Options options;
  options.sink = &channel;
  options.transport = &channel;
  options.stats = &stats;
  options.log_name = "/mnt/test";
  ReplyValidator validator(options);

  v1::Op read;
  read.set_id(1);
  read.mutable_read()->set_size(2);
  v1::Op getattr;
  getattr.set_id(2);
  getattr.mutable_getattr()->set_path("/f");
  std::vector<PendingOp> batch;
  std::vector<v1::OpResult> results(2);
  batch.push_back(PendingOp{read, [&](const v1::OpResult& r) { results[0] = r; }});
  batch.push_back(
      PendingOp{getattr, [&](const v1::OpResult& r) { results[1] = r; }});
  bool sent = false;
  validator.SendBatch(std::move(batch), [&] { sent = true; }, false);
  EXPECT_TRUE(sent);
  ASSERT_EQ(channel.ops.size(), 2u);

  v1::OpResult long_read;
  long_read.set_id(1);
  long_read.mutable_read()->set_data("abcdef");
  channel.Answer(0, long_read);
  v1::OpResult bad_attr;
  bad_attr.set_id(2);
  bad_attr.mutable_getattr()->mutable_attr()->set_mode(0644);
  channel.Answer(1, bad_attr);

  EXPECT_EQ(results[0].read().data(), "ab");
  EXPECT_EQ(results[1].posix_errno(), EIO);
  EXPECT_EQ(stats.Snap().backend_invalid, 2u);

  v1::Invalidation notice;
  notice.set_path("relative");
  EXPECT_FALSE(validator.AcceptNotice(notice));
  notice.set_path("/fine");
  EXPECT_TRUE(validator.AcceptNotice(notice));
  EXPECT_EQ(stats.Snap().backend_invalid, 3u);
}

TEST(ValidateResult, IoctlDataIsCutToTheCallersBufferAndResultsAreNotNegative) {
  v1::Op op;
  op.mutable_ioctl()->set_out_size(4);
  v1::OpResult r;
  r.mutable_ioctl()->set_result(1);
  r.mutable_ioctl()->set_out_data("12345678");
  EXPECT_FALSE(ValidateResult(ReplyExpectation::Of(op), &r).empty());
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_EQ(r.ioctl().out_data(), "1234");
  EXPECT_EQ(r.ioctl().result(), 1);

  v1::OpResult negative;
  negative.mutable_ioctl()->set_result(-5);
  EXPECT_FALSE(ValidateResult(ReplyExpectation::Of(op), &negative).empty());
  EXPECT_EQ(negative.posix_errno(), EIO);

  v1::OpResult missing;  // an ioctl's result is required
  EXPECT_FALSE(ValidateResult(ReplyExpectation::Of(op), &missing).empty());
  EXPECT_EQ(missing.posix_errno(), EIO);

  v1::OpResult fits;
  fits.mutable_ioctl()->set_out_data("12");
  EXPECT_TRUE(ValidateResult(ReplyExpectation::Of(op), &fits).empty());
}

}  // namespace
}  // namespace fusehost
