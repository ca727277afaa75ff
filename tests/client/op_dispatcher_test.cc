#include "client/op_dispatcher.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::Eq;
using ::testing::Field;
using ::testing::IsNull;
using ::testing::NotNull;
using ::testing::Pointee;
using ::testing::Return;
using ::testing::SetArgPointee;

class MockFs : public FileSystem {
 public:
  MOCK_METHOD(int, Getattr,
              (const Context&, const std::string&, const FileInfo*,
               struct stat*),
              (override));
  MOCK_METHOD(int, Mkdir, (const Context&, const std::string&, mode_t),
              (override));
  MOCK_METHOD(int, Link,
              (const Context&, const std::string&, const std::string&),
              (override));
  MOCK_METHOD(int, Chown,
              (const Context&, const std::string&, uid_t, gid_t,
               const FileInfo*),
              (override));
  MOCK_METHOD(int, Truncate,
              (const Context&, const std::string&, off_t, const FileInfo*),
              (override));
  MOCK_METHOD(int, Utimens,
              (const Context&, const std::string&, const TimeSpec&,
               const TimeSpec&, const FileInfo*),
              (override));
  MOCK_METHOD(int, Create,
              (const Context&, const std::string&, mode_t, FileInfo*),
              (override));
  MOCK_METHOD(int, Read,
              (const Context&, const std::string&, std::string*, size_t, off_t,
               const FileInfo&),
              (override));
  MOCK_METHOD(int, Write,
              (const Context&, const std::string&, const std::string&, off_t,
               const FileInfo&, size_t*),
              (override));
  MOCK_METHOD(int, Readdir,
              (const Context&, const std::string&, off_t, const FileInfo&,
               std::vector<DirEntry>*, bool*),
              (override));
  MOCK_METHOD(int, Getxattr,
              (const Context&, const std::string&, const std::string&,
               std::string*),
              (override));
};

// The backend instance the dispatchers under test answer as.
constexpr uint64_t kInstance = 41;

struct stat FileStat(ino_t ino, off_t size) {
  struct stat st = {};
  st.st_ino = ino;
  st.st_mode = S_IFREG | 0644;
  st.st_nlink = 1;
  st.st_size = size;
  return st;
}

class OpDispatcherTest : public ::testing::Test {
 protected:
  v1::OpResult Run(const v1::Op& op, uint64_t mount_id = 7) {
    v1::OpResult result;
    dispatcher_.Dispatch(mount_id, op, &result);
    return result;
  }

  ::testing::StrictMock<MockFs> fs_;
  OpDispatcher dispatcher_{fs_, kInstance};
};

TEST_F(OpDispatcherTest, ContextComesFromCallerAndMount) {
  v1::Op op;
  op.set_id(42);
  op.mutable_caller()->set_uid(1000);
  op.mutable_caller()->set_gid(100);
  op.mutable_caller()->set_pid(4321);
  op.mutable_caller()->set_umask(022);
  op.mutable_caller()->add_groups(5);
  op.mutable_caller()->add_groups(6);
  op.mutable_getattr()->set_path("/f");
  Context seen;
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), NotNull()))
      .WillOnce([&](const Context& ctx, const std::string&, const FileInfo*,
                    struct stat* st) {
        seen = ctx;
        *st = FileStat(9, 3);
        return 0;
      });
  v1::OpResult result = Run(op, /*mount_id=*/77);
  EXPECT_EQ(result.id(), 42u);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_EQ(result.getattr().attr().ino(), 9u);
  EXPECT_EQ(result.getattr().attr().size(), 3u);
  EXPECT_EQ(seen.mount_id, 77u);
  EXPECT_EQ(seen.uid, 1000u);
  EXPECT_EQ(seen.gid, 100u);
  EXPECT_EQ(seen.pid, 4321);
  EXPECT_EQ(seen.umask, 022u);
  EXPECT_EQ(seen.groups, (std::vector<gid_t>{5, 6}));
}

TEST_F(OpDispatcherTest, OptionalHandleBecomesFileInfoOnlyWhenPresent) {
  v1::Op op;
  op.mutable_getattr()->set_path("/f");
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), _)).WillOnce(Return(0));
  Run(op);

  op.mutable_getattr()->set_path("");  // unlinked, open file
  op.mutable_getattr()->set_fh(0);     // present even though zero
  EXPECT_CALL(fs_, Getattr(_, "", Pointee(Field(&FileInfo::fh, Eq(0u))), _))
      .WillOnce(Return(0));
  Run(op);
}

TEST_F(OpDispatcherTest, ChownUnsetIdsAreMinusOne) {
  v1::Op op;
  op.mutable_chown()->set_path("/f");
  op.mutable_chown()->set_gid(50);
  EXPECT_CALL(fs_, Chown(_, "/f", static_cast<uid_t>(-1), 50u, IsNull()))
      .WillOnce(Return(0));
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), _)).WillOnce(Return(0));
  EXPECT_EQ(Run(op).posix_errno(), 0);

  op.mutable_chown()->clear_gid();
  op.mutable_chown()->set_uid(0);  // root is a real value, not "unset"
  EXPECT_CALL(fs_, Chown(_, "/f", 0u, static_cast<gid_t>(-1), IsNull()))
      .WillOnce(Return(0));
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), _)).WillOnce(Return(0));
  EXPECT_EQ(Run(op).posix_errno(), 0);
}

TEST_F(OpDispatcherTest, AttributeChangeThroughHandleStatsThroughHandle) {
  v1::Op op;
  op.mutable_truncate()->set_path("");
  op.mutable_truncate()->set_size(100);
  op.mutable_truncate()->set_fh(12);
  auto has_fh_12 = Pointee(Field(&FileInfo::fh, Eq(12u)));
  EXPECT_CALL(fs_, Truncate(_, "", 100, has_fh_12)).WillOnce(Return(0));
  EXPECT_CALL(fs_, Getattr(_, "", has_fh_12, _))
      .WillOnce(DoAll(SetArgPointee<3>(FileStat(3, 100)), Return(0)));
  v1::OpResult result = Run(op);
  EXPECT_EQ(result.posix_errno(), 0);
  ASSERT_TRUE(result.entry().has_attr());
  EXPECT_EQ(result.entry().attr().size(), 100u);
}

TEST_F(OpDispatcherTest, TimeSetKinds) {
  v1::Op op;
  v1::UtimensRequest* req = op.mutable_utimens();
  req->set_path("/f");
  req->mutable_atime()->set_kind(v1::TimeSet::NOW);
  req->mutable_mtime()->set_kind(v1::TimeSet::SET);
  req->mutable_mtime()->mutable_time()->set_sec(1234);
  req->mutable_mtime()->mutable_time()->set_nsec(5678);
  TimeSpec atime, mtime;
  EXPECT_CALL(fs_, Utimens(_, "/f", _, _, IsNull()))
      .WillOnce([&](const Context&, const std::string&, const TimeSpec& a,
                    const TimeSpec& m, const FileInfo*) {
        atime = a;
        mtime = m;
        return 0;
      });
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), _)).WillOnce(Return(0));
  EXPECT_EQ(Run(op).posix_errno(), 0);
  EXPECT_TRUE(atime.now);
  EXPECT_FALSE(atime.omit);
  EXPECT_FALSE(mtime.now);
  EXPECT_FALSE(mtime.omit);
  EXPECT_EQ(mtime.time.tv_sec, 1234);
  EXPECT_EQ(mtime.time.tv_nsec, 5678);

  req->clear_atime();  // an unset TimeSet is OMIT, the enum's zero
  EXPECT_CALL(fs_, Utimens(_, "/f", _, _, IsNull()))
      .WillOnce([&](const Context&, const std::string&, const TimeSpec& a,
                    const TimeSpec&, const FileInfo*) {
        atime = a;
        return 0;
      });
  EXPECT_CALL(fs_, Getattr(_, "/f", IsNull(), _)).WillOnce(Return(0));
  EXPECT_EQ(Run(op).posix_errno(), 0);
  EXPECT_TRUE(atime.omit);

  // A kind from a newer protocol is refused, not guessed at.
  req->mutable_atime()->set_kind(static_cast<v1::TimeSet::Kind>(9));
  EXPECT_EQ(Run(op).posix_errno(), EINVAL);
}

TEST_F(OpDispatcherTest, EntryAttrFromGetattrAndLeftUnsetWhenItFails) {
  v1::Op op;
  op.mutable_mkdir()->set_path("/d");
  op.mutable_mkdir()->set_mode(0755);
  EXPECT_CALL(fs_, Mkdir(_, "/d", 0755u)).WillOnce(Return(0));
  struct stat dir = {};
  dir.st_mode = S_IFDIR | 0755;
  dir.st_ino = 5;
  EXPECT_CALL(fs_, Getattr(_, "/d", IsNull(), _))
      .WillOnce(DoAll(SetArgPointee<3>(dir), Return(0)));
  v1::OpResult result = Run(op);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_EQ(result.entry().attr().mode(), S_IFDIR | 0755u);
  EXPECT_EQ(result.entry().attr().ino(), 5u);

  EXPECT_CALL(fs_, Mkdir(_, "/d", 0755u)).WillOnce(Return(0));
  EXPECT_CALL(fs_, Getattr(_, "/d", IsNull(), _)).WillOnce(Return(ENOENT));
  result = Run(op);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_TRUE(result.has_entry());
  EXPECT_FALSE(result.entry().has_attr());
}

TEST_F(OpDispatcherTest, LinkReportsTheNewPath) {
  v1::Op op;
  op.mutable_link()->set_old_path("/a");
  op.mutable_link()->set_new_path("/b");
  EXPECT_CALL(fs_, Link(_, "/a", "/b")).WillOnce(Return(0));
  struct stat st = FileStat(4, 0);
  st.st_nlink = 2;
  EXPECT_CALL(fs_, Getattr(_, "/b", IsNull(), _))
      .WillOnce(DoAll(SetArgPointee<3>(st), Return(0)));
  EXPECT_EQ(Run(op).entry().attr().nlink(), 2u);
}

TEST_F(OpDispatcherTest, CreateReturnsHandleAndAttr) {
  v1::Op op;
  op.mutable_create()->set_path("/n");
  op.mutable_create()->set_mode(S_IFREG | 0600);
  op.mutable_create()->set_flags(O_WRONLY | O_CREAT);
  EXPECT_CALL(fs_, Create(_, "/n", S_IFREG | 0600u, NotNull()))
      .WillOnce([](const Context&, const std::string&, mode_t, FileInfo* fi) {
        EXPECT_EQ(fi->flags, O_WRONLY | O_CREAT);
        fi->fh = 99;
        fi->direct_io = true;
        return 0;
      });
  EXPECT_CALL(fs_, Getattr(_, "/n", Pointee(Field(&FileInfo::fh, Eq(99u))), _))
      .WillOnce(DoAll(SetArgPointee<3>(FileStat(8, 0)), Return(0)));
  v1::OpResult result = Run(op);
  EXPECT_EQ(result.create().open().fh(), 99u);
  EXPECT_TRUE(result.create().open().direct_io());
  EXPECT_EQ(result.create().attr().ino(), 8u);

  EXPECT_CALL(fs_, Create(_, "/n", _, _)).WillOnce(Return(0));
  EXPECT_CALL(fs_, Getattr(_, "/n", _, _)).WillOnce(Return(EIO));
  result = Run(op);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_TRUE(result.has_create());
  EXPECT_FALSE(result.create().has_attr());
}

TEST_F(OpDispatcherTest, HostileErrnoBecomesEio) {
  v1::Op op;
  op.mutable_getattr()->set_path("/f");
  for (int hostile : {-5, 99999, 4096, 512, -2147483647 - 1}) {
    EXPECT_CALL(fs_, Getattr(_, "/f", _, _)).WillOnce(Return(hostile));
    EXPECT_EQ(Run(op).posix_errno(), EIO) << hostile;
  }
  EXPECT_CALL(fs_, Getattr(_, "/f", _, _)).WillOnce(Return(ENOENT));
  EXPECT_EQ(Run(op).posix_errno(), ENOENT);
  EXPECT_CALL(fs_, Getattr(_, "/f", _, _)).WillOnce(Return(511));
  EXPECT_EQ(Run(op).posix_errno(), 511);
}

TEST_F(OpDispatcherTest, FailedResultCarriesNothingButIdAndErrno) {
  v1::Op op;
  op.set_id(3);
  op.mutable_read()->set_path("/f");
  op.mutable_read()->set_size(10);
  EXPECT_CALL(fs_, Read(_, "/f", _, 10u, 0, _))
      .WillOnce([](const Context&, const std::string&, std::string* data,
                   size_t, off_t, const FileInfo&) {
        data->append("partial");
        return EIO;
      });
  v1::OpResult result = Run(op);
  EXPECT_EQ(result.id(), 3u);
  EXPECT_EQ(result.posix_errno(), EIO);
  EXPECT_EQ(result.result_case(), v1::OpResult::RESULT_NOT_SET);
}

TEST_F(OpDispatcherTest, UnknownOrUnsetOpIsEnosys) {
  v1::Op op;
  op.set_id(17);
  v1::OpResult result = Run(op);
  EXPECT_EQ(result.id(), 17u);
  EXPECT_EQ(result.posix_errno(), ENOSYS);

  // An op from a newer protocol arrives as an unknown field.
  v1::Op newer;
  newer.set_id(18);
  std::string wire = newer.SerializeAsString();
  wire += std::string("\xfa\x06\x00", 3);  // field 111, empty message
  ASSERT_TRUE(newer.ParseFromString(wire));
  result = Run(newer);
  EXPECT_EQ(result.id(), 18u);
  EXPECT_EQ(result.posix_errno(), ENOSYS);
}

TEST_F(OpDispatcherTest, ReadIsCutToRequestedSize) {
  v1::Op op;
  op.mutable_read()->set_path("/f");
  op.mutable_read()->set_fh(4);
  op.mutable_read()->set_offset(2);
  op.mutable_read()->set_size(3);
  EXPECT_CALL(fs_, Read(_, "/f", _, 3u, 2, Field(&FileInfo::fh, Eq(4u))))
      .WillOnce([](const Context&, const std::string&, std::string* data,
                   size_t, off_t, const FileInfo&) {
        data->append("too long");
        return 0;
      });
  EXPECT_EQ(Run(op).read().data(), "too");
}

TEST_F(OpDispatcherTest, WriteCountIsCappedAndFlagsPassed) {
  v1::Op op;
  op.mutable_write()->set_path("/f");
  op.mutable_write()->set_data("abc");
  op.mutable_write()->set_flags(O_WRONLY | O_APPEND);
  EXPECT_CALL(fs_, Write(_, "/f", "abc", 0,
                         Field(&FileInfo::flags, Eq(O_WRONLY | O_APPEND)), _))
      .WillOnce(DoAll(SetArgPointee<5>(1000), Return(0)));
  EXPECT_EQ(Run(op).write().size(), 3u);
}

TEST_F(OpDispatcherTest, OffsetsBeyondOffTAreRejected) {
  v1::Op op;
  op.mutable_read()->set_path("/f");
  op.mutable_read()->set_offset(uint64_t{1} << 63);
  op.mutable_read()->set_size(1);
  EXPECT_EQ(Run(op).posix_errno(), EINVAL);  // StrictMock: Read not called
}

TEST_F(OpDispatcherTest, ReaddirAttrsTypesAndEof) {
  v1::Op op;
  op.mutable_readdir()->set_path("/d");
  EXPECT_CALL(fs_, Readdir(_, "/d", 0, _, _, _))
      .WillOnce([](const Context&, const std::string&, off_t, const FileInfo&,
                   std::vector<DirEntry>* entries, bool* eof) {
        DirEntry full;
        full.name = "full";
        full.st = FileStat(11, 5);
        full.has_attr = true;
        entries->push_back(full);
        DirEntry typed;
        typed.name = "typed";
        typed.st.st_mode = S_IFDIR | 0755;  // permission bits must not leak
        entries->push_back(typed);
        // The filesystem forgot *eof; a listing without cookies is whole.
        *eof = false;
        return 0;
      });
  v1::OpResult result = Run(op);
  ASSERT_EQ(result.readdir().entries_size(), 2);
  const v1::DirEntry& full = result.readdir().entries(0);
  EXPECT_EQ(full.name(), "full");
  EXPECT_TRUE(full.has_attr());
  EXPECT_EQ(full.attr().ino(), 11u);
  const v1::DirEntry& typed = result.readdir().entries(1);
  EXPECT_FALSE(typed.has_attr());
  EXPECT_EQ(typed.type(), static_cast<uint32_t>(S_IFDIR));
  EXPECT_TRUE(result.readdir().eof());

  // A resumable page keeps the filesystem's eof.
  EXPECT_CALL(fs_, Readdir(_, "/d", 0, _, _, _))
      .WillOnce([](const Context&, const std::string&, off_t, const FileInfo&,
                   std::vector<DirEntry>* entries, bool* eof) {
        DirEntry entry;
        entry.name = "a";
        entry.offset = 1;
        entries->push_back(entry);
        *eof = false;
        return 0;
      });
  result = Run(op);
  EXPECT_EQ(result.readdir().entries(0).offset(), 1u);
  EXPECT_FALSE(result.readdir().eof());
}

TEST_F(OpDispatcherTest, XattrValueIsReturnedWhole) {
  v1::Op op;
  op.mutable_getxattr()->set_path("/f");
  op.mutable_getxattr()->set_name("user.k");
  op.mutable_getxattr()->set_size(2);  // the daemon answers ERANGE itself
  EXPECT_CALL(fs_, Getxattr(_, "/f", "user.k", _))
      .WillOnce(DoAll(SetArgPointee<3>(std::string("value")), Return(0)));
  EXPECT_EQ(Run(op).xattr().data(), "value");
}

// The defaults of filesystem.cc, seen through the dispatcher.
// A filesystem whose Getattr is cheap gets asked for the attributes the
// kernel will want next.
class CheapGetattrFs : public MockFs {
 public:
  bool GetattrIsCheap() const override { return true; }
};

TEST(CheapGetattrTest, WriteAndNameChangesCarryAttributes) {
  ::testing::StrictMock<CheapGetattrFs> fs;
  OpDispatcher dispatcher(fs, kInstance);
  struct stat dir = {};
  dir.st_mode = S_IFDIR | 0755;
  dir.st_nlink = 3;

  v1::Op mkdir;
  mkdir.mutable_mkdir()->set_path("/a/d");
  mkdir.mutable_mkdir()->set_mode(0755);
  EXPECT_CALL(fs, Mkdir(_, "/a/d", 0755u)).WillOnce(Return(0));
  EXPECT_CALL(fs, Getattr(_, "/a/d", IsNull(), _)).WillOnce(Return(ENOENT));
  EXPECT_CALL(fs, Getattr(_, "/a", IsNull(), _))
      .WillOnce(DoAll(SetArgPointee<3>(dir), Return(0)));
  v1::OpResult result;
  dispatcher.Dispatch(1, mkdir, &result);
  EXPECT_EQ(result.parent_attr().nlink(), 3u);
  EXPECT_FALSE(result.has_old_parent_attr());

  v1::Op write;
  write.mutable_write()->set_path("/a/f");
  write.mutable_write()->set_fh(9);
  write.mutable_write()->set_data("abc");
  EXPECT_CALL(fs, Write(_, "/a/f", "abc", 0, _, _))
      .WillOnce(DoAll(SetArgPointee<5>(3), Return(0)));
  EXPECT_CALL(fs, Getattr(_, "/a/f", NotNull(), _))
      .WillOnce(DoAll(SetArgPointee<3>(FileStat(4, 3)), Return(0)));
  dispatcher.Dispatch(1, write, &result);
  EXPECT_EQ(result.write().size(), 3u);
  EXPECT_EQ(result.write().attr().size(), 3u);
  EXPECT_FALSE(result.has_parent_attr());

  // A failed op carries nothing.
  EXPECT_CALL(fs, Mkdir(_, "/a/d", 0755u)).WillOnce(Return(EEXIST));
  dispatcher.Dispatch(1, mkdir, &result);
  EXPECT_EQ(result.posix_errno(), EEXIST);
  EXPECT_FALSE(result.has_parent_attr());
}

TEST(DefaultFileSystemTest, UnimplementedIsEnosysHarmlessOnesSucceed) {
  FileSystem fs;
  OpDispatcher dispatcher(fs, kInstance);
  v1::OpResult result;
  v1::Op op;

  op.mutable_getattr()->set_path("/");
  dispatcher.Dispatch(1, op, &result);
  EXPECT_EQ(result.posix_errno(), ENOSYS);

  op.mutable_fallocate()->set_path("/");
  dispatcher.Dispatch(1, op, &result);
  EXPECT_EQ(result.posix_errno(), ENOSYS);

  op.mutable_open()->set_path("/f");
  dispatcher.Dispatch(1, op, &result);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_EQ(result.open().fh(), 0u);

  for (auto set : std::vector<void (*)(v1::Op*)>{
           [](v1::Op* o) { o->mutable_flush(); },
           [](v1::Op* o) { o->mutable_release(); },
           [](v1::Op* o) { o->mutable_fsync(); },
           [](v1::Op* o) { o->mutable_opendir(); },
           [](v1::Op* o) { o->mutable_releasedir(); },
           [](v1::Op* o) { o->mutable_fsyncdir(); },
           [](v1::Op* o) { o->mutable_access(); },
       }) {
    set(&op);
    dispatcher.Dispatch(1, op, &result);
    EXPECT_EQ(result.posix_errno(), 0) << op.op_case();
  }

  op.mutable_statfs()->set_path("/");
  dispatcher.Dispatch(1, op, &result);
  EXPECT_EQ(result.posix_errno(), 0);
  EXPECT_EQ(result.statfs().namemax(), 255u);
  EXPECT_EQ(result.statfs().blocks(), 0u);
}

}  // namespace
}  // namespace fusehost
