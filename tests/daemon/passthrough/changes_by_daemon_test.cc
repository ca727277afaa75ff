// ChangesByDaemon: chmod, chown, utimens, removals and creates made beneath
// the adopted root directory and answered as the backend would, and every
// op it may not make sent on below, unchanged.

#include "daemon/passthrough/changes_by_daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/stat_convert.h"
#include "gtest/gtest.h"
#include "tests/daemon/testing/counting_transport.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

// Records what reaches it and answers each op at once with `errno_`.
class RecordingTransport : public CountingTransport {
 public:
  void Send(v1::Op op, Done done) override {
    {
      absl::MutexLock lock(&mu_);
      sent_.push_back(op);
    }
    done(ErrorResult(op.id(), EACCES));
  }
  std::vector<v1::Op> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Op> sent_ ABSL_GUARDED_BY(mu_);
};

class ChangesByDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_path_ = dir_.Mkdir("root", 0755);
    file_ = root_path_ + "/file";
    std::ofstream(file_) << "data";
    ASSERT_EQ(chmod(file_.c_str(), 0644), 0);
    ASSERT_TRUE(root_.Adopt(UniqueFd(open(root_path_.c_str(),
                                          O_PATH | O_DIRECTORY)),
                            std::nullopt, /*changes_attributes=*/true,
                            /*removes_names=*/true)
                    .ok());
    MakeLayer(/*write_behind=*/false);
  }

  // With write-behind, `queued_` is the path it holds a change for.
  void MakeLayer(bool write_behind) {
    ChangesByDaemon::Options o;
    o.root = &root_;
    o.cache = &cache_;
    o.next = &next_;
    if (write_behind) {
      o.queued_at = [this](const std::string& p) { return p == queued_; };
    }
    layer_.emplace(std::move(o));
  }

  // Caches the attributes the daemon answered for `path` on the host.
  void Know(const std::string& path) {
    struct stat st;
    ASSERT_EQ(lstat((root_path_ + path).c_str(), &st), 0);
    v1::Attr attr;
    attr.set_ino(st.st_ino);
    attr.set_mode(st.st_mode);
    cache_.PutAttr(path, attr, absl::Seconds(60), cache_.epoch());
  }

  static v1::Op ChmodOp(const std::string& path, uint32_t mode,
                        uint32_t caller_uid = 0) {
    v1::Op op;
    op.set_id(7);
    op.mutable_caller()->set_uid(caller_uid);
    op.mutable_caller()->set_gid(caller_uid);
    op.mutable_chmod()->set_path(path);
    op.mutable_chmod()->set_mode(mode);
    return op;
  }

  v1::OpResult SendOne(v1::Op op) {
    std::optional<v1::OpResult> got;
    layer_->Send(std::move(op), [&](const v1::OpResult& r) { got = r; });
    EXPECT_TRUE(got.has_value());  // both paths answer at once here
    return got.value_or(v1::OpResult());
  }

  mode_t Mode() {
    struct stat st;
    return stat(file_.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
  }

  ScratchDir dir_;
  std::string root_path_;
  std::string file_;
  RootDirectory root_;
  MetadataCache cache_{MetadataCache::Options()};
  RecordingTransport next_;
  std::string queued_;
  std::optional<ChangesByDaemon> layer_;
};

TEST_F(ChangesByDaemonTest, MakesAKnownFilesChangeAndAnswersWithItsAttributes) {
  Know("/file");
  v1::OpResult r = SendOne(ChmodOp("/file", 0600));
  EXPECT_EQ(r.id(), 7u);
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_EQ(r.entry().attr().mode() & 07777, 0600u);
  EXPECT_EQ(Mode(), 0600u);

  v1::Op times;
  times.set_id(8);
  times.mutable_utimens()->set_path("/file");
  times.mutable_utimens()->mutable_atime()->set_kind(v1::TimeSet::SET);
  times.mutable_utimens()->mutable_atime()->mutable_time()->set_sec(1234);
  times.mutable_utimens()->mutable_mtime()->set_kind(v1::TimeSet::OMIT);
  r = SendOne(times);
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_EQ(r.entry().attr().atime().sec(), 1234);

  v1::Op owner;
  owner.set_id(9);
  owner.mutable_chown()->set_path("/file");
  owner.mutable_chown()->set_uid(kNobody);
  r = SendOne(owner);
  EXPECT_EQ(r.posix_errno(), 0);
  EXPECT_EQ(r.entry().attr().uid(), kNobody);
  EXPECT_EQ(r.entry().attr().gid(), 0u);
  EXPECT_TRUE(next_.sent().empty());
  EXPECT_EQ(root_.changed(), 3u);
}

// Each of these goes to the backend, whose answer (EACCES here) stands.
TEST_F(ChangesByDaemonTest, SendsOnWhatItMayNotMake) {
  // Not cached.
  EXPECT_EQ(SendOne(ChmodOp("/file", 0600)).posix_errno(), EACCES);
  Know("/file");
  // Queued behind an early answer.
  MakeLayer(/*write_behind=*/true);
  queued_ = "/file";
  EXPECT_EQ(SendOne(ChmodOp("/file", 0600)).posix_errno(), EACCES);
  queued_.clear();
  // Refused to this caller by the host (the backend may know better).
  EXPECT_EQ(SendOne(ChmodOp("/file", 0666, kNobody)).posix_errno(), EACCES);
  // Replaced on the host since the daemon learnt it (made before the old
  // one goes, so that its inode number differs).
  std::ofstream(file_ + ".new") << "other";
  ASSERT_EQ(chmod((file_ + ".new").c_str(), 0644), 0);
  ASSERT_EQ(rename((file_ + ".new").c_str(), file_.c_str()), 0);
  EXPECT_EQ(SendOne(ChmodOp("/file", 0600)).posix_errno(), EACCES);
  EXPECT_EQ(Mode(), 0644u);
  // Not a change of attributes at all.
  v1::Op unlink_op;
  unlink_op.mutable_unlink()->set_path("/file");
  EXPECT_EQ(SendOne(unlink_op).posix_errno(), EACCES);
  EXPECT_EQ(next_.sent().size(), 5u);
  EXPECT_EQ(root_.changed(), 0u);
  // The backend's directory gone (a restarted backend not yet greeted).
  root_.Drop();
  Know("/file");
  EXPECT_EQ(SendOne(ChmodOp("/file", 0600)).posix_errno(), EACCES);
  EXPECT_EQ(Mode(), 0644u);
}

TEST_F(ChangesByDaemonTest, AnswersALookupWithTheFilesOwnAttributes) {
  v1::Op op;
  op.set_id(9);
  op.mutable_getattr()->set_path("/file");
  v1::OpResult got = SendOne(op);
  struct stat st;
  ASSERT_EQ(lstat(file_.c_str(), &st), 0);
  EXPECT_EQ(got.id(), 9u);
  EXPECT_EQ(got.getattr().attr().ino(), st.st_ino);
  EXPECT_EQ(got.getattr().attr().size(), 4u);
  EXPECT_EQ(root_.looked_up(), 1u);
  EXPECT_TRUE(next_.sent().empty());
  // An absent name too, as the backend's lstat would have answered it.
  v1::Op absent = op;
  absent.mutable_getattr()->set_path("/absent");
  EXPECT_EQ(SendOne(absent).posix_errno(), ENOENT);
  EXPECT_EQ(root_.looked_up(), 2u);
  EXPECT_TRUE(next_.sent().empty());
  // Sent on: through a handle, the root, and a path write-behind holds a
  // change for (an absent one too: its create may be queued).
  v1::Op by_handle = op;
  by_handle.mutable_getattr()->set_fh(3);
  SendOne(by_handle);
  v1::Op root = op;
  root.mutable_getattr()->set_path("/");
  SendOne(root);
  MakeLayer(/*write_behind=*/true);
  queued_ = "/file";
  SendOne(op);
  queued_ = "/absent";
  SendOne(absent);
  EXPECT_EQ(next_.sent().size(), 4u);
  EXPECT_EQ(root_.looked_up(), 2u);
}

TEST_F(ChangesByDaemonTest, PassesEverythingElseThrough) {
  layer_->CancelAll();
  layer_->WaitIdle();
  EXPECT_EQ(next_.cancels(), 1);
  EXPECT_EQ(next_.waits(), 1);
}

v1::Invalidation Notice(const std::string& path,
                        v1::Invalidation::Kind kind =
                            v1::Invalidation::CHANGED) {
  v1::Invalidation n;
  n.set_kind(kind);
  n.set_path(path);
  return n;
}

// A watching backend reports the daemon's own change back: no news while
// the file is as the daemon answered; news again once anyone else changed
// it.
TEST_F(ChangesByDaemonTest, RecognizesNoticesOfItsOwnChanges) {
  Know("/file");
  EXPECT_FALSE(layer_->NoNews(Notice("/file")));  // not changed by it yet
  v1::OpResult r = SendOne(ChmodOp("/file", 0600));
  ASSERT_EQ(r.posix_errno(), 0);
  // The cache above takes the answer, as CachingTransport does.
  cache_.UpdateAttr("/file", r.entry().attr(), absl::Seconds(60));
  EXPECT_TRUE(layer_->NoNews(Notice("/file")));
  EXPECT_FALSE(layer_->NoNews(Notice("/file", v1::Invalidation::REMOVED)));
  EXPECT_FALSE(layer_->NoNews(Notice("/file", v1::Invalidation::SUBTREE)));
  EXPECT_FALSE(layer_->NoNews(Notice("/")));
  // Someone else changes it on the host: ctime moves.
  std::ofstream(file_, std::ios::app) << "more";
  EXPECT_FALSE(layer_->NoNews(Notice("/file")));
  // Or removes it: the daemon changed it, but did not remove it.
  ASSERT_EQ(unlink(file_.c_str()), 0);
  EXPECT_FALSE(layer_->NoNews(Notice("/file", v1::Invalidation::REMOVED)));
}

v1::Op UnlinkOp(const std::string& path) {
  v1::Op op;
  op.set_id(11);
  op.mutable_unlink()->set_path(path);
  return op;
}

TEST_F(ChangesByDaemonTest, RemovesAKnownNameAndAnswersWithItsParent) {
  Know("/file");
  v1::OpResult r = SendOne(UnlinkOp("/file"));
  EXPECT_EQ(r.id(), 11u);
  EXPECT_EQ(r.posix_errno(), 0);
  struct stat st;
  EXPECT_NE(lstat(file_.c_str(), &st), 0);
  ASSERT_EQ(lstat(root_path_.c_str(), &st), 0);
  EXPECT_EQ(r.parent_attr().ino(), st.st_ino);
  EXPECT_EQ(r.parent_attr().mtime().nsec(),
            static_cast<uint32_t>(st.st_mtim.tv_nsec));
  EXPECT_TRUE(next_.sent().empty());
  // Its notices are no news while it stays gone and the directory stays
  // as the cache shows it.
  cache_.UpdateAttr("/", r.parent_attr(), absl::Seconds(60));
  EXPECT_TRUE(layer_->NoNews(Notice("/file", v1::Invalidation::REMOVED)));
  EXPECT_TRUE(layer_->NoNews(Notice("/")));
  // A change made before the removal, reported after it (applied, it
  // would drop the directory's attributes).
  EXPECT_TRUE(layer_->NoNews(Notice("/file")));
  std::ofstream(file_) << "back";
  EXPECT_FALSE(layer_->NoNews(Notice("/file", v1::Invalidation::REMOVED)));
  // The name made again on the host is news. The directory's own notice
  // is not: its times changed, but the name's notice says what did.
  EXPECT_FALSE(layer_->NoNews(Notice("/file")));
  EXPECT_TRUE(layer_->NoNews(Notice("/")));
}

// Records the notices Filter passes on, in order.
class Applied {
 public:
  ChangesByDaemon::Apply Into() {
    return [this](const v1::Invalidation& n) {
      absl::MutexLock lock(&mu_);
      paths_.push_back(n.path());
    };
  }
  std::vector<std::string> paths() {
    absl::MutexLock lock(&mu_);
    return paths_;
  }
  // Waits until `n` notices were passed on.
  void AwaitCount(size_t n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n] { return paths_.size() >= n; };
    mu_.Await(absl::Condition(&enough));
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> paths_ ABSL_GUARDED_BY(mu_);
};

// A notice that arrives while the daemon's own change of the path is under
// way is judged once the caches have that change's answer: judged before,
// it would find the old attributes and be taken for news. It waits as long
// as the change takes, without holding up the notices of other paths, and
// the notices of its path stay in order behind it.
TEST_F(ChangesByDaemonTest, ANoticeWaitsForTheChangeUnderWayAndNoOtherDoes) {
  Know("/file");
  Applied applied;
  layer_->Send(ChmodOp("/file", 0600), [&](const v1::OpResult& r) {
    // Where the metadata cache takes the answer, as slowly as a loaded
    // machine may.
    layer_->Filter(Notice("/file"), applied.Into());
    layer_->Filter(Notice("/other"), applied.Into());
    EXPECT_EQ(applied.paths(), std::vector<std::string>{"/other"});
    absl::SleepFor(absl::Milliseconds(100));
    layer_->Filter(Notice("/file", v1::Invalidation::REMOVED), applied.Into());
    EXPECT_EQ(applied.paths(), std::vector<std::string>{"/other"})
        << "judged before the caches had the answer";
    cache_.UpdateAttr("/file", r.entry().attr(), absl::Seconds(60));
  });
  // The chmod was no news; that the file was removed is (it was not).
  applied.AwaitCount(2);
  EXPECT_EQ(applied.paths(), (std::vector<std::string>{"/other", "/file"}));
  // A notice of the path once all is judged goes at once again.
  layer_->Filter(Notice("/file", v1::Invalidation::REMOVED), applied.Into());
  EXPECT_EQ(applied.paths().size(), 3u);
}

// Parked notices are dropped when filtering stops (the mount ends): none
// reaches caches being taken down.
TEST_F(ChangesByDaemonTest, StoppingDropsParkedNotices) {
  Know("/file");
  Applied applied;
  layer_->Send(ChmodOp("/file", 0600), [&](const v1::OpResult&) {
    layer_->Filter(Notice("/file", v1::Invalidation::REMOVED), applied.Into());
    std::thread stop([&] { layer_->StopFiltering(); });
    stop.join();
  });
  EXPECT_TRUE(applied.paths().empty());
  layer_->Filter(Notice("/file", v1::Invalidation::REMOVED), applied.Into());
  EXPECT_EQ(applied.paths().size(), 1u);
}

// With write-behind, a removal of a name it holds changes for (or names
// below it) goes on down, behind them.
TEST_F(ChangesByDaemonTest, LeavesRemovalsWithQueuedChangesToWriteBehind) {
  Know("/file");
  MakeLayer(/*write_behind=*/true);
  queued_ = "/file";
  EXPECT_EQ(SendOne(UnlinkOp("/file")).posix_errno(), EACCES);
  struct stat st;
  EXPECT_EQ(lstat(file_.c_str(), &st), 0);
  EXPECT_EQ(next_.sent().size(), 1u);
  // Nothing queued for it: removed here.
  queued_ = "/elsewhere";
  EXPECT_EQ(SendOne(UnlinkOp("/file")).posix_errno(), 0);
  EXPECT_NE(lstat(file_.c_str(), &st), 0);
  EXPECT_EQ(next_.sent().size(), 1u);
}

}  // namespace
}  // namespace fusehost

namespace fusehost {
namespace {

// Creates, with a handle token and the file's descriptor left for the
// open's reply.
class CreatesTest : public ChangesByDaemonTest {
 protected:
  void SetUp() override {
    ChangesByDaemonTest::SetUp();
    ASSERT_TRUE(
        root_
            .Adopt(UniqueFd(open(root_path_.c_str(), O_PATH | O_DIRECTORY)),
                   std::nullopt, true, true, /*creates_files=*/true)
            .ok());
    DescriptorInbox::Options io;
    io.socket_path = dir_.path() + "/inbox.sock";
    io.is_backend = [](const PeerCredentials&) { return true; };
    auto inbox = DescriptorInbox::Create(std::move(io));
    ASSERT_TRUE(inbox.ok());
    inbox_ = *std::move(inbox);
    MakeCreatingLayer(nullptr);
  }

  // `queued_at`: as write-behind's (unset: nothing queued).
  void MakeCreatingLayer(std::function<bool(const std::string&)> queued_at) {
    ChangesByDaemon::Options o;
    o.root = &root_;
    o.cache = &cache_;
    o.next = &next_;
    o.handles = &handles_;
    o.inbox = inbox_.get();
    o.queued_at = std::move(queued_at);
    layer_.emplace(std::move(o));
  }

  static v1::Op CreateOp(const std::string& path, uint32_t flags,
                         uint64_t tag) {
    v1::Op op;
    op.set_id(21);
    op.mutable_create()->set_path(path);
    op.mutable_create()->set_mode(S_IFREG | 0640);
    op.mutable_create()->set_flags(flags);
    op.mutable_create()->set_passthrough_tag(tag);
    return op;
  }

  HandleMap handles_;
  std::unique_ptr<DescriptorInbox> inbox_;
};

TEST_F(CreatesTest, CreatesANewFileWithATokenAndItsDescriptor) {
  v1::OpResult r = SendOne(CreateOp("/made", O_WRONLY | O_CREAT, 99));
  EXPECT_TRUE(next_.sent().empty());
  EXPECT_EQ(r.id(), 21u);
  EXPECT_EQ(r.posix_errno(), 0);
  struct stat st;
  ASSERT_EQ(lstat((root_path_ + "/made").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(r.create().attr().ino(), st.st_ino);
  ASSERT_EQ(lstat(root_path_.c_str(), &st), 0);
  EXPECT_EQ(r.parent_attr().ino(), st.st_ino);
  EXPECT_TRUE(r.create().open().passthrough());
  EXPECT_TRUE(r.create().open().noflush());
  // A token the backend has no handle for yet: its flush needs none.
  EXPECT_NE(r.create().open().fh(), 0u);
  EXPECT_TRUE(handles_.FlushesHere(r.create().open().fh()));
  UniqueFd fd = inbox_->Take(99);
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(write(fd.get(), "abc", 3), 3);
  // The backend's notice of the new name is no news once the cache has the
  // answer (the layer above takes it, before the notice is judged), as
  // long as the daemon writes it through its descriptor; without the
  // answer cached, or once the name is another file, it is news.
  EXPECT_FALSE(layer_->NoNews(Notice("/made")));
  cache_.PutAttr("/made", r.create().attr(), absl::Seconds(60), cache_.epoch());
  EXPECT_FALSE(layer_->NoNews(Notice("/made")));  // size 3 now, not 0
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  v1::Attr written;
  StatToProto(st, &written);
  cache_.UpdateAttr("/made", written, absl::Seconds(60));
  EXPECT_TRUE(layer_->NoNews(Notice("/made")));
  ASSERT_EQ(unlink((root_path_ + "/made").c_str()), 0);
  std::ofstream(root_path_ + "/keep") << "holds the inode number";
  std::ofstream(root_path_ + "/made") << "someone else's";
  EXPECT_FALSE(layer_->NoNews(Notice("/made")));
}

TEST_F(CreatesTest, LeavesToTheBackendWhatItMayNotCreate) {
  // A name that exists, no tag to hand the descriptor over by, a flag the
  // daemon leaves alone, a change queued by write-behind first.
  SendOne(CreateOp("/file", O_WRONLY | O_CREAT, 5));
  SendOne(CreateOp("/new", O_WRONLY | O_CREAT, 0));
  SendOne(CreateOp("/new", O_WRONLY | O_CREAT | O_APPEND, 6));
  MakeCreatingLayer([](const std::string& p) { return p == "/new"; });
  SendOne(CreateOp("/new", O_WRONLY | O_CREAT, 7));
  EXPECT_EQ(next_.sent().size(), 4u);
  struct stat st;
  EXPECT_NE(lstat((root_path_ + "/new").c_str(), &st), 0);
  EXPECT_FALSE(inbox_->Take(5).valid());
}

}  // namespace
}  // namespace fusehost
