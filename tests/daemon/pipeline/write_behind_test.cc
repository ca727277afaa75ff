// WriteBehind over a real MetadataCache and a fake next layer that records
// each call (Send or SendAll, with the ops that came together) and lets the
// test answer the ops by hand.

#include "daemon/pipeline/write_behind.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {
namespace {

using Strings = std::vector<std::string>;

// "chmod /a": the op's kind and path.
std::string Describe(const v1::Op& op) {
  namespace pb = google::protobuf;
  const pb::FieldDescriptor* kind = op.GetReflection()->GetOneofFieldDescriptor(
      op, op.GetDescriptor()->FindOneofByName("op"));
  if (kind == nullptr) return "?";
  const pb::Message& request = op.GetReflection()->GetMessage(op, kind);
  const pb::FieldDescriptor* path =
      request.GetDescriptor()->FindFieldByName("path");
  if (path == nullptr) return kind->name();
  return kind->name() + " " + request.GetReflection()->GetString(request, path);
}

// The next layer: records every call; Complete* answers its ops.
class FakeNext : public CountingTransport {
 public:
  void Send(v1::Op op, Done done) override {
    std::vector<PendingOp> ops;
    ops.push_back(PendingOp{std::move(op), std::move(done), nullptr});
    Record(/*all=*/false, std::move(ops));
  }
  void SendAll(std::vector<PendingOp> ops) override {
    Record(/*all=*/true, std::move(ops));
  }
  void SendInOrder(std::vector<PendingOp> ops) override {
    Record(/*all=*/true, std::move(ops), /*in_order=*/true);
  }

  size_t calls() {
    absl::MutexLock lock(&mu_);
    return calls_.size();
  }
  // Call i came through SendAll or SendInOrder (else Send).
  bool all(size_t i) {
    absl::MutexLock lock(&mu_);
    return calls_.at(i).all;
  }
  // Call i came through SendInOrder.
  bool in_order(size_t i) {
    absl::MutexLock lock(&mu_);
    return calls_.at(i).in_order;
  }
  // The ops of call i, described.
  Strings ops(size_t i) {
    absl::MutexLock lock(&mu_);
    Strings out;
    for (const PendingOp& p : calls_.at(i).ops) out.push_back(Describe(p.op));
    return out;
  }
  v1::Op op(size_t i, size_t j) {
    absl::MutexLock lock(&mu_);
    return calls_.at(i).ops.at(j).op;
  }
  uint64_t creates_token(size_t i, size_t j) {
    absl::MutexLock lock(&mu_);
    return calls_.at(i).ops.at(j).creates_token;
  }
  // Answers op j of call i with `result` (its id set to the op's). Without
  // the lock: the completion may send again.
  void CompleteOp(size_t i, size_t j, v1::OpResult result) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      ASSERT_LT(i, calls_.size());
      ASSERT_LT(j, calls_[i].ops.size());
      PendingOp& p = calls_[i].ops[j];
      ASSERT_TRUE(p.done) << "op " << j << " of call " << i
                          << " answered twice";
      done = std::move(p.done);
      p.done = nullptr;
      result.set_id(p.op.id());
    }
    done(result);
  }
  // From now on every call is answered with success inside Send/SendAll
  // itself, as a layer that answers from its own state may.
  void AnswerAtOnce() {
    absl::MutexLock lock(&mu_);
    at_once_ = true;
  }
  // Answers every op of call i with `posix_errno` (0: success, empty).
  void Complete(size_t i, int posix_errno = 0) {
    size_t n;
    {
      absl::MutexLock lock(&mu_);
      ASSERT_LT(i, calls_.size());
      n = calls_[i].ops.size();
    }
    for (size_t j = 0; j < n; ++j) {
      v1::OpResult result;
      result.set_posix_errno(posix_errno);
      if (posix_errno == 0) result.mutable_empty();
      CompleteOp(i, j, result);
    }
  }

 private:
  struct Call {
    bool all;
    std::vector<PendingOp> ops;
    bool in_order;
  };
  void Record(bool all, std::vector<PendingOp> ops, bool in_order = false) {
    size_t i;
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(Call{all, std::move(ops), in_order});
      i = calls_.size() - 1;
      if (!at_once_) return;
    }
    Complete(i);
  }

  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  bool at_once_ ABSL_GUARDED_BY(mu_) = false;
};

// The daemon's clock, as the layer sees it.
const absl::Time kNow = absl::FromUnixNanos(int64_t{1800000000} * 1000000000 +
                                            456);

v1::Timespec Ts(int64_t sec, uint32_t nsec) {
  v1::Timespec ts;
  ts.set_sec(sec);
  ts.set_nsec(nsec);
  return ts;
}
const v1::Timespec kNowTs = Ts(1800000000, 456);

v1::Attr AttrOf(uint64_t ino, uint32_t mode) {
  v1::Attr attr;
  attr.set_ino(ino);
  attr.set_mode(mode);
  attr.set_nlink(S_ISDIR(mode) ? 2 : 1);
  attr.set_uid(1000);
  attr.set_gid(100);
  attr.set_size(ino * 10);
  attr.set_blocks(8);
  attr.set_blksize(4096);
  *attr.mutable_atime() = Ts(1600000000, 1);
  *attr.mutable_mtime() = Ts(1600000001, 2);
  *attr.mutable_ctime() = Ts(1600000002, 3);
  return attr;
}

v1::Op ChmodOp(const std::string& path, uint32_t mode,
               std::optional<uint64_t> fh = std::nullopt) {
  v1::Op op;
  op.mutable_chmod()->set_path(path);
  op.mutable_chmod()->set_mode(mode);
  if (fh) op.mutable_chmod()->set_fh(*fh);
  return op;
}
v1::Op ChownOp(const std::string& path, std::optional<uint32_t> uid,
               std::optional<uint32_t> gid) {
  v1::Op op;
  op.mutable_chown()->set_path(path);
  if (uid) op.mutable_chown()->set_uid(*uid);
  if (gid) op.mutable_chown()->set_gid(*gid);
  return op;
}
v1::TimeSet Omit() { return v1::TimeSet(); }
v1::TimeSet Now() {
  v1::TimeSet set;
  set.set_kind(v1::TimeSet::NOW);
  return set;
}
v1::TimeSet Set(int64_t sec, uint32_t nsec) {
  v1::TimeSet set;
  set.set_kind(v1::TimeSet::SET);
  *set.mutable_time() = Ts(sec, nsec);
  return set;
}
v1::Op UtimensOp(const std::string& path, v1::TimeSet atime,
                 v1::TimeSet mtime) {
  v1::Op op;
  op.mutable_utimens()->set_path(path);
  *op.mutable_utimens()->mutable_atime() = std::move(atime);
  *op.mutable_utimens()->mutable_mtime() = std::move(mtime);
  return op;
}
v1::Op UnlinkOp(const std::string& path) {
  v1::Op op;
  op.mutable_unlink()->set_path(path);
  return op;
}
v1::Op RmdirOp(const std::string& path) {
  v1::Op op;
  op.mutable_rmdir()->set_path(path);
  return op;
}
v1::Op RenameOp(const std::string& from, const std::string& to,
                uint32_t flags = 0) {
  v1::Op op;
  op.mutable_rename()->set_old_path(from);
  op.mutable_rename()->set_new_path(to);
  op.mutable_rename()->set_flags(flags);
  return op;
}
v1::Op GetattrOp(const std::string& path) {
  v1::Op op;
  op.mutable_getattr()->set_path(path);
  return op;
}
v1::Op ReleaseOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_release()->set_path(path);
  op.mutable_release()->set_fh(fh);
  return op;
}
v1::Op CreateOp(const std::string& path, uint32_t mode, uint32_t uid = 1001,
                uint32_t gid = 50) {
  v1::Op op;
  op.mutable_create()->set_path(path);
  op.mutable_create()->set_mode(mode);
  op.mutable_create()->set_flags(O_WRONLY | O_CREAT | O_EXCL);
  op.mutable_create()->set_passthrough_tag(9);
  op.mutable_caller()->set_uid(uid);
  op.mutable_caller()->set_gid(gid);
  return op;
}
v1::Op WriteOp(const std::string& path, uint64_t fh, uint64_t offset,
               const std::string& data) {
  v1::Op op;
  op.mutable_write()->set_path(path);
  op.mutable_write()->set_fh(fh);
  op.mutable_write()->set_offset(offset);
  op.mutable_write()->set_data(data);
  return op;
}
v1::Op FlushOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_flush()->set_path(path);
  op.mutable_flush()->set_fh(fh);
  return op;
}
v1::Op FsyncOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_fsync()->set_path(path);
  op.mutable_fsync()->set_fh(fh);
  return op;
}
v1::Op FsyncdirOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_fsyncdir()->set_path(path);
  op.mutable_fsyncdir()->set_fh(fh);
  return op;
}

// What one op's `done` was given.
struct Reply {
  uint64_t id = 0;
  int calls = 0;
  v1::OpResult result;

  bool answered() const { return calls > 0; }
  int posix_errno() const { return result.posix_errno(); }
};

class WriteBehindTest : public ::testing::Test {
 protected:
  WriteBehindTest() : cache_(MetadataCache::Options()) {}

  void Make(size_t max_queued = 1024, bool in_order = false,
            bool creates = false, bool posix_acl = false,
            bool takes_handles = false) {
    WriteBehind::Options options;
    if (takes_handles) {
      options.takes_handles_from_earlier_ops = [this] {
        return takes_handles_.load();
      };
    }
    options.next = &next_;
    if (creates) options.handles = &handles_;
    options.posix_acl = posix_acl;
    options.acl_ttl = absl::Hours(1);
    options.cache = &cache_;
    options.max_queued = max_queued;
    options.in_order = in_order;
    options.log_name = "/mnt/test";
    options.on_failure = [this](const Strings& paths) {
      absl::MutexLock lock(&mu_);
      failures_.push_back(paths);
    };
    options.now = [] { return kNow; };
    wb_ = std::make_unique<WriteBehind>(std::move(options));
  }

  // What the backend says of Op.fh_from_op (with Make's takes_handles).
  std::atomic<bool> takes_handles_{true};

  void Put(const std::string& path, uint64_t ino, uint32_t mode) {
    cache_.PutAttr(path, AttrOf(ino, mode), absl::Hours(1), cache_.epoch());
  }
  void PutFile(const std::string& path, uint64_t ino,
               uint32_t mode = S_IFREG | 0644) {
    Put(path, ino, mode);
  }
  void PutDir(const std::string& path, uint64_t ino,
              uint32_t mode = S_IFDIR | 0755) {
    Put(path, ino, mode);
  }
  // The cached attributes of `path`, as an early answer starts from them.
  v1::Attr Cached(const std::string& path) {
    v1::Attr attr;
    EXPECT_EQ(cache_.GetAttr(path, &attr), MetadataCache::AttrLookup::kHit)
        << path;
    attr.clear_ttl_ms();
    return attr;
  }

  // Sends `op` (numbered, with a kernel deadline) through the layer.
  Reply* Send(v1::Op op) {
    Reply* reply = NewReply(&op);
    wb_->Send(std::move(op), Recorder(reply));
    return reply;
  }
  // Sends `ops` together through SendAll.
  std::vector<Reply*> SendAll(std::vector<v1::Op> ops) {
    std::vector<Reply*> replies;
    std::vector<PendingOp> pending;
    for (v1::Op& op : ops) {
      replies.push_back(NewReply(&op));
      pending.push_back(
          PendingOp{std::move(op), Recorder(replies.back()), nullptr});
    }
    wb_->SendAll(std::move(pending));
    return replies;
  }

  std::vector<Strings> failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }

  static constexpr int64_t kDeadlineMs = int64_t{4000000000} * 1000;

  FakeNext next_;
  MetadataCache cache_;
  HandleMap handles_;
  std::unique_ptr<WriteBehind> wb_;

 private:
  Reply* NewReply(v1::Op* op) {
    op->set_id(++last_id_);
    op->set_deadline_unix_ms(kDeadlineMs);
    replies_.push_back(std::make_unique<Reply>());
    replies_.back()->id = op->id();
    return replies_.back().get();
  }
  OpTransport::Done Recorder(Reply* reply) {
    return [reply](const v1::OpResult& result) {
      ++reply->calls;
      reply->result = result;
    };
  }

  uint64_t last_id_ = 100;
  std::vector<std::unique_ptr<Reply>> replies_;
  absl::Mutex mu_;
  std::vector<Strings> failures_ ABSL_GUARDED_BY(mu_);
};

// Attributes compare readably.
#define EXPECT_ATTR_EQ(got, want) \
  EXPECT_EQ((got).DebugString(), (want).DebugString())

// --- early answers -------------------------------------------------------

TEST_F(WriteBehindTest, ChmodOfACachedPathIsAnsweredAtOnce) {
  Make();
  PutFile("/f", 5);
  v1::Attr want = Cached("/f");
  want.set_mode(S_IFREG | 04700);
  *want.mutable_ctime() = kNowTs;

  // Type bits in the request are not the file's to change.
  Reply* r = Send(ChmodOp("/f", S_IFDIR | 04700));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->calls, 1);
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_EQ(r->posix_errno(), 0);
  ASSERT_TRUE(r->result.has_entry());
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);
  EXPECT_EQ(wb_->deferred(), 1u);

  // It still goes to the backend, in a message of its own, with no
  // deadline (no kernel request waits for it).
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(next_.ops(0), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(0, 0).id(), r->id);
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), 0);
  EXPECT_EQ(next_.op(0, 0).chmod().mode(), uint32_t{S_IFDIR | 04700});
  EXPECT_EQ(wb_->queued(), 1u);

  // The backend's answer is not passed on a second time.
  next_.Complete(0);
  EXPECT_EQ(r->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
  // The cache itself is not the layer's to change.
  EXPECT_EQ(Cached("/f").mode(), uint32_t{S_IFREG | 0644});
}

TEST_F(WriteBehindTest, ChownOfACachedPathIsAnsweredAtOnce) {
  Make();
  PutFile("/f", 5);
  // A set-gid directory: only files have set-id bits a chown may drop.
  PutDir("/sgid", 6, S_IFDIR | 02775);

  v1::Attr want = Cached("/f");
  want.set_uid(2000);  // the gid is left as it was
  *want.mutable_ctime() = kNowTs;
  Reply* r = Send(ChownOp("/f", 2000, std::nullopt));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);

  want = Cached("/sgid");
  want.set_gid(300);
  *want.mutable_ctime() = kNowTs;
  Reply* dir = Send(ChownOp("/sgid", std::nullopt, 300));
  ASSERT_TRUE(dir->answered());
  EXPECT_ATTR_EQ(dir->result.entry().attr(), want);

  EXPECT_EQ(wb_->deferred(), 2u);
  EXPECT_EQ(next_.calls(), 1u);  // the second waits for the first message
  EXPECT_EQ(next_.ops(0), Strings{"chown /f"});
}

TEST_F(WriteBehindTest, UtimensAppliesSetNowAndOmit) {
  Make();
  PutFile("/f", 5);
  PutFile("/g", 6);

  // atime set, mtime to the daemon's now.
  v1::Attr want = Cached("/f");
  *want.mutable_atime() = Ts(12345, 678);
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  Reply* r = Send(UtimensOp("/f", Set(12345, 678), Now()));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_ATTR_EQ(r->result.entry().attr(), want);

  // atime left alone, mtime set.
  want = Cached("/g");
  *want.mutable_mtime() = Ts(99, 1);
  *want.mutable_ctime() = kNowTs;
  Reply* g = Send(UtimensOp("/g", Omit(), Set(99, 1)));
  ASSERT_TRUE(g->answered());
  EXPECT_ATTR_EQ(g->result.entry().attr(), want);

  // atime to now, mtime left alone.
  want = Cached("/g");
  *want.mutable_atime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  Reply* g2 = Send(UtimensOp("/g", Now(), Omit()));
  ASSERT_TRUE(g2->answered());
  EXPECT_ATTR_EQ(g2->result.entry().attr(), want);
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, ChownOfASetIdFileWaitsForTheBackend) {
  Make();
  PutFile("/suid", 5, S_IFREG | 04755);
  PutFile("/sgid", 6, S_IFREG | 02755);

  Reply* r = Send(ChownOp("/suid", 0, 0));
  EXPECT_FALSE(r->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_FALSE(next_.all(0));  // forwarded as it came
  EXPECT_EQ(next_.ops(0), Strings{"chown /suid"});
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), kDeadlineMs);

  Reply* g = Send(ChownOp("/sgid", std::nullopt, 0));
  EXPECT_FALSE(g->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chown /sgid"});
  EXPECT_EQ(wb_->deferred(), 0u);
  EXPECT_EQ(wb_->queued(), 0u);

  // The backend's answer (set-uid dropped) is what the caller gets.
  v1::OpResult backend;
  *backend.mutable_entry()->mutable_attr() = AttrOf(5, S_IFREG | 0755);
  next_.CompleteOp(0, 0, backend);
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_EQ(r->result.entry().attr().mode(), uint32_t{S_IFREG | 0755});
  next_.Complete(1, EPERM);
  ASSERT_TRUE(g->answered());
  EXPECT_EQ(g->posix_errno(), EPERM);
  EXPECT_EQ(wb_->failed(), 0u);  // not a deferred op's failure
}

TEST_F(WriteBehindTest, ChangesOfUncachedPathsWaitForTheBackend) {
  Make();
  Reply* chmod = Send(ChmodOp("/nowhere", 0600));
  Reply* chown = Send(ChownOp("/nowhere", 1, 1));
  Reply* utimens = Send(UtimensOp("/nowhere", Now(), Now()));
  EXPECT_FALSE(chmod->answered());
  EXPECT_FALSE(chown->answered());
  EXPECT_FALSE(utimens->answered());
  ASSERT_EQ(next_.calls(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(next_.all(i));
  EXPECT_EQ(wb_->deferred(), 0u);
  next_.Complete(0, ENOENT);
  EXPECT_EQ(chmod->posix_errno(), ENOENT);
}

TEST_F(WriteBehindTest, UnlinkOfACachedFileAnswersWithNewParentTimes) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 5);
  v1::Attr want = Cached("/d");
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;

  Reply* r = Send(UnlinkOp("/d/a"));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_EQ(r->result.id(), r->id);
  EXPECT_TRUE(r->result.has_empty());
  ASSERT_TRUE(r->result.has_parent_attr());
  EXPECT_ATTR_EQ(r->result.parent_attr(), want);
  EXPECT_EQ(wb_->deferred(), 1u);

  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(next_.ops(0), Strings{"unlink /d/a"});
  next_.Complete(0);
  EXPECT_EQ(r->calls, 1);
}

TEST_F(WriteBehindTest, UnlinkOfADirectoryOrAnUncachedPathWaits) {
  Make();
  PutDir("/d", 2);
  PutDir("/d/sub", 3);
  PutFile("/e/f", 4);  // its directory is not cached

  Reply* dir = Send(UnlinkOp("/d/sub"));
  Reply* uncached = Send(UnlinkOp("/d/nothing"));
  Reply* no_parent = Send(UnlinkOp("/e/f"));
  EXPECT_FALSE(dir->answered());
  EXPECT_FALSE(uncached->answered());
  EXPECT_FALSE(no_parent->answered());
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(0), Strings{"unlink /d/sub"});
  EXPECT_EQ(next_.ops(1), Strings{"unlink /d/nothing"});
  EXPECT_EQ(next_.ops(2), Strings{"unlink /e/f"});
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(next_.all(i));

  next_.Complete(0, EISDIR);
  next_.Complete(1, ENOENT);
  next_.Complete(2);
  EXPECT_EQ(dir->posix_errno(), EISDIR);
  EXPECT_EQ(uncached->posix_errno(), ENOENT);
  ASSERT_TRUE(no_parent->answered());
  EXPECT_EQ(no_parent->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 0u);
}

// rm -rf: a directory whose every name was unlinked early is known empty
// from its listing; its rmdir is answered at once and goes behind them.
TEST_F(WriteBehindTest, RmdirOfADirectoryKnownEmptyIsAnsweredAtOnce) {
  Make();
  v1::Attr top = AttrOf(1, S_IFDIR | 0755);
  top.set_nlink(4);  // two subdirectories
  cache_.PutAttr("/t", top, absl::Hours(1), cache_.epoch());
  PutDir("/t/d", 2);
  PutFile("/t/d/a", 3);
  Listing listing;
  listing.emplace("a", ListingEntry{S_IFREG, 3});
  cache_.PutListing("/t/d", listing, absl::Hours(1), cache_.epoch());

  Reply* unlink = Send(UnlinkOp("/t/d/a"));
  ASSERT_TRUE(unlink->answered());
  ASSERT_EQ(next_.calls(), 1u);  // in flight
  // What the layer above does with the unlink's answer.
  cache_.MarkRemoved("/t/d/a", absl::Hours(1));
  cache_.ListingRemove("/t/d", "a");

  v1::Attr want = Cached("/t");
  *want.mutable_mtime() = kNowTs;
  *want.mutable_ctime() = kNowTs;
  want.set_nlink(3);
  Reply* rmdir = Send(RmdirOp("/t/d"));
  ASSERT_TRUE(rmdir->answered());
  EXPECT_EQ(rmdir->posix_errno(), 0);
  EXPECT_EQ(rmdir->result.id(), rmdir->id);
  EXPECT_TRUE(rmdir->result.has_empty());
  EXPECT_ATTR_EQ(rmdir->result.parent_attr(), want);
  EXPECT_EQ(wb_->deferred(), 2u);

  // It goes to the backend after the unlink it depends on.
  EXPECT_EQ(next_.calls(), 1u);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"rmdir /t/d"});
  EXPECT_EQ(next_.op(1, 0).deadline_unix_ms(), 0);
  next_.Complete(1);
  EXPECT_EQ(rmdir->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);

  // A directory made through the daemon is known empty too; a parent that
  // does not count its subdirectories in its links keeps its count.
  PutDir("/t/new", 4);
  cache_.PutNewDirectory("/t/new", absl::Hours(1));
  PutDir("/flat", 5);
  v1::Attr flat = AttrOf(5, S_IFDIR | 0755);
  flat.set_nlink(1);
  cache_.PutAttr("/flat", flat, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/flat/sub", absl::Hours(1));
  Reply* made = Send(RmdirOp("/t/new"));
  Reply* in_flat = Send(RmdirOp("/flat/sub"));
  ASSERT_TRUE(made->answered());
  ASSERT_TRUE(in_flat->answered());
  EXPECT_EQ(in_flat->result.parent_attr().nlink(), 1u);
  EXPECT_EQ(wb_->deferred(), 4u);
}

TEST_F(WriteBehindTest, RmdirOfADirectoryNotKnownEmptyWaits) {
  Make();
  PutDir("/d", 1);
  // Attributes but no listing: what it holds is unknown.
  PutDir("/d/unlisted", 2);
  // A listing with a name left in it.
  PutDir("/d/full", 3);
  Listing full;
  full.emplace("x", ListingEntry{S_IFREG, 9});
  cache_.PutListing("/d/full", full, absl::Hours(1), cache_.epoch());
  // Known empty, but its directory's attributes are not cached.
  cache_.PutNewDirectory("/e/empty", absl::Hours(1));
  // Known empty only until its listing expired.
  cache_.PutNewDirectory("/d/expired", absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(5));

  Reply* unlisted = Send(RmdirOp("/d/unlisted"));
  Reply* nonempty = Send(RmdirOp("/d/full"));
  Reply* no_parent = Send(RmdirOp("/e/empty"));
  Reply* expired = Send(RmdirOp("/d/expired"));
  Reply* root = Send(RmdirOp("/"));
  for (Reply* r : {unlisted, nonempty, no_parent, expired, root}) {
    EXPECT_FALSE(r->answered());
  }
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_FALSE(next_.all(i));
    EXPECT_EQ(next_.op(i, 0).deadline_unix_ms(), kDeadlineMs);
  }
  next_.Complete(0, ENOTEMPTY);
  next_.Complete(1, ENOTEMPTY);
  EXPECT_EQ(unlisted->posix_errno(), ENOTEMPTY);
  EXPECT_EQ(nonempty->posix_errno(), ENOTEMPTY);
  EXPECT_EQ(wb_->failed(), 0u);
}

// A create in the directory waits behind a queued unlink there: the
// directory is not empty, whatever its listing said before.
TEST_F(WriteBehindTest, NoEarlyRmdirAboveARequestThatWaits) {
  Make();
  PutDir("/d", 1);
  PutDir("/d/sub", 2);
  PutFile("/d/sub/a", 3);
  cache_.PutNewDirectory("/d/sub", absl::Hours(1));
  Reply* unlink = Send(UnlinkOp("/d/sub/a"));
  ASSERT_TRUE(unlink->answered());
  v1::Op create;
  create.mutable_create()->set_path("/d/sub/a");
  Reply* created = Send(create);
  EXPECT_FALSE(created->answered());
  Reply* rmdir = Send(RmdirOp("/d/sub"));
  EXPECT_FALSE(rmdir->answered());
  EXPECT_EQ(wb_->deferred(), 1u);
}

TEST_F(WriteBehindTest, ARefusedRmdirIsReportedWithItsDirectory) {
  Make();
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d/sub", absl::Hours(1));
  Reply* rmdir = Send(RmdirOp("/d/sub"));
  ASSERT_TRUE(rmdir->answered());
  next_.Complete(0, ENOTEMPTY);
  EXPECT_EQ(rmdir->calls, 1);
  EXPECT_EQ(rmdir->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(), std::vector<Strings>{(Strings{"/d/sub", "/d"})});
  Reply* sync = Send(FsyncdirOp("/d", 4));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ENOTEMPTY);
}

// Each name of a hard-linked file is a path of its own: a change queued
// under one would not hold back ops under the others.
TEST_F(WriteBehindTest, NoChangeOfAFileWithSeveralNamesIsAnsweredEarly) {
  Make();
  PutDir("/d", 2);
  v1::Attr linked = AttrOf(5, S_IFREG | 0644);
  linked.set_nlink(2);
  cache_.PutAttr("/d/a", linked, absl::Hours(1), cache_.epoch());
  Reply* chmod = Send(ChmodOp("/d/a", 0600));
  Reply* chown = Send(ChownOp("/d/a", 1, 1));
  Reply* utimens = Send(UtimensOp("/d/a", Now(), Now()));
  Reply* unlink = Send(UnlinkOp("/d/a"));
  for (Reply* r : {chmod, chown, utimens, unlink}) {
    EXPECT_FALSE(r->answered());
  }
  EXPECT_EQ(wb_->deferred(), 0u);
}

// A rename of /d waits behind a queued change below it. A change of
// another name below /d, answered early now, would be answered as if the
// rename had not happened and reach the backend after it (at a path that
// is gone): it waits for its answer too.
TEST_F(WriteBehindTest, NoEarlyAnswerUnderARequestThatWaits) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);
  PutFile("/g", 5);
  Reply* first = Send(ChmodOp("/d/a", 0600));
  ASSERT_TRUE(first->answered());
  v1::Op rename;
  rename.mutable_rename()->set_old_path("/d");
  rename.mutable_rename()->set_new_path("/e");
  Reply* moved = Send(rename);
  EXPECT_FALSE(moved->answered());
  Reply* below = Send(ChmodOp("/d/b", 0600));
  EXPECT_FALSE(below->answered());
  Reply* elsewhere = Send(ChmodOp("/g", 0600));
  EXPECT_TRUE(elsewhere->answered());
  EXPECT_EQ(wb_->deferred(), 2u);
  EXPECT_EQ(wb_->queued(), 4u);
}

// --- order ---------------------------------------------------------------

TEST_F(WriteBehindTest, ChangesOfOnePathGoInSeparateMessagesInOrder) {
  Make();
  PutFile("/x", 1);
  PutFile("/f", 5);

  Send(ChmodOp("/x", 0600));  // in flight: what follows queues
  Send(ChmodOp("/f", 0600));
  Send(UtimensOp("/f", Now(), Now()));
  Send(ChmodOp("/f", 0640));
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(wb_->queued(), 4u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0600u);
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"utimens /f"});
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_TRUE(next_.all(3));
  EXPECT_EQ(next_.ops(3), Strings{"chmod /f"});
  EXPECT_EQ(next_.op(3, 0).chmod().mode(), 0640u);
  next_.Complete(3);
  EXPECT_EQ(next_.calls(), 4u);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, SecondChangeOfAPathWaitsForTheFirstsMessage) {
  Make();
  PutFile("/f", 5);
  Reply* first = Send(ChmodOp("/f", 0600));
  Reply* second = Send(ChmodOp("/f", 0640));
  EXPECT_TRUE(first->answered());
  EXPECT_TRUE(second->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.op(0, 0).chmod().mode(), 0600u);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0640u);
}

TEST_F(WriteBehindTest, UnrelatedChangesShareAMessageAndDependentsWait) {
  Make();
  PutFile("/x", 1);
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);

  Send(ChmodOp("/x", 0600));  // in flight
  Reply* a = Send(UnlinkOp("/d/a"));
  Reply* b = Send(UnlinkOp("/d/b"));
  EXPECT_TRUE(a->answered());
  EXPECT_TRUE(b->answered());
  // The directory's attributes wait for the unlinks that change them.
  Reply* dir = Send(GetattrOp("/d"));
  EXPECT_FALSE(dir->answered());
  // What is unrelated goes on at once.
  Reply* e = Send(GetattrOp("/e"));
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"getattr /e"});
  EXPECT_EQ(next_.op(1, 0).deadline_unix_ms(), kDeadlineMs);
  next_.Complete(1);
  EXPECT_TRUE(e->answered());

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_TRUE(next_.all(2));
  EXPECT_EQ(next_.ops(2), (Strings{"unlink /d/a", "unlink /d/b"}));
  EXPECT_FALSE(dir->answered());

  // The unlinks may finish in either order; the getattr goes after both.
  next_.CompleteOp(2, 1, v1::OpResult());
  EXPECT_EQ(next_.calls(), 3u);
  next_.CompleteOp(2, 0, v1::OpResult());
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /d"});
  EXPECT_EQ(next_.op(3, 0).id(), dir->id);
  EXPECT_FALSE(dir->answered());

  v1::OpResult backend;
  *backend.mutable_getattr()->mutable_attr() = AttrOf(42, S_IFDIR | 0700);
  next_.CompleteOp(3, 0, backend);
  ASSERT_TRUE(dir->answered());
  EXPECT_EQ(dir->result.id(), dir->id);
  EXPECT_EQ(dir->result.getattr().attr().ino(), 42u);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AnOpAboveAnUnlinkInFlightWaitsForIt) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  Send(UnlinkOp("/d/a"));
  ASSERT_EQ(next_.calls(), 1u);  // in flight

  Reply* dir = Send(GetattrOp("/d"));
  // A sibling name, not below /d (sent before the getattr of "/", which
  // it would have to wait for once that is queued).
  Reply* other = Send(GetattrOp("/da"));
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"getattr /da"});
  Reply* root = Send(GetattrOp("/"));
  Reply* self = Send(GetattrOp("/d/a"));
  EXPECT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(dir->answered());

  next_.Complete(0);
  // The three touch one another (and /d/a), so one message each.
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_TRUE(next_.all(2));
  EXPECT_EQ(next_.ops(2), Strings{"getattr /d"});
  next_.Complete(2, EIO);
  EXPECT_EQ(dir->posix_errno(), EIO);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /"});
  next_.Complete(3);
  ASSERT_EQ(next_.calls(), 5u);
  EXPECT_EQ(next_.ops(4), Strings{"getattr /d/a"});
  next_.Complete(4, ENOENT);
  EXPECT_TRUE(root->answered());
  EXPECT_EQ(self->posix_errno(), ENOENT);
  EXPECT_FALSE(other->answered());
  next_.Complete(1);
  EXPECT_TRUE(other->answered());
}

TEST_F(WriteBehindTest, SendAllHoldsBackOnlyWhatTouchesTheQueue) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  PutFile("/g", 4);
  Send(UnlinkOp("/d/a"));
  ASSERT_EQ(next_.calls(), 1u);

  std::vector<Reply*> r = SendAll(
      {GetattrOp("/d"), GetattrOp("/e"), ChmodOp("/g", 0600), GetattrOp("/f")});
  EXPECT_FALSE(r[0]->answered());
  EXPECT_TRUE(r[2]->answered());  // deferred, queued
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.all(1));
  EXPECT_EQ(next_.ops(1), (Strings{"getattr /e", "getattr /f"}));

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  // The chmod of /g touches nothing of the getattr of /d, but goes in a
  // message of its own: one with a kernel request has that request's
  // deadline.
  EXPECT_EQ(next_.ops(2), (Strings{"getattr /d"}));
  next_.Complete(2);
  EXPECT_TRUE(r[0]->answered());
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), (Strings{"chmod /g"}));
  next_.Complete(3);
  EXPECT_EQ(wb_->queued(), 0u);
}

TEST_F(WriteBehindTest, AMessagePassesOverWhatWaitsButNothingOvertakesIt) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  PutFile("/b", 3);
  Send(ChmodOp("/x", 0600));  // in flight
  Send(ChmodOp("/a", 0600));
  Send(ChmodOp("/a", 0640, /*fh=*/7));  // waits for the first
  Send(ChmodOp("/b", 0600));            // touches neither
  Reply* release = Send(ReleaseOp("/c", 7));  // waits for the second
  ASSERT_EQ(next_.calls(), 1u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"chmod /a", "chmod /b"}));
  EXPECT_EQ(next_.op(1, 0).chmod().mode(), 0600u);
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /a"});
  EXPECT_EQ(next_.op(2, 0).chmod().mode(), 0640u);
  EXPECT_FALSE(release->answered());
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"release /c"});
  next_.Complete(3);
  EXPECT_TRUE(release->answered());
  EXPECT_EQ(wb_->queued(), 0u);
}

// --- handles -------------------------------------------------------------

TEST_F(WriteBehindTest, AnOpOnAHandleWaitsBehindAChangeThroughIt) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  Send(ChmodOp("/x", 0600));  // in flight
  Reply* chmod = Send(ChmodOp("/a", 0600, /*fh=*/7));
  EXPECT_TRUE(chmod->answered());
  // Another path, but the same open file.
  Reply* release = Send(ReleaseOp("/b", 7));
  Reply* other = Send(ReleaseOp("/c", 8));
  EXPECT_FALSE(release->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"release /c"});
  next_.Complete(1);
  EXPECT_TRUE(other->answered());

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /a"});  // not with the release
  EXPECT_EQ(next_.op(2, 0).chmod().fh(), 7u);
  EXPECT_FALSE(release->answered());
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"release /b"});
  next_.Complete(3);
  EXPECT_TRUE(release->answered());
  EXPECT_EQ(release->result.id(), release->id);
}

// --- fsync and errors ----------------------------------------------------

TEST_F(WriteBehindTest, FsyncWaitsForEverythingQueuedAndGoesAlone) {
  Make();
  PutFile("/a", 1);
  PutFile("/b", 2);
  PutFile("/c", 3);
  Send(ChmodOp("/a", 0600));  // in flight
  Send(ChmodOp("/b", 0600));
  Reply* sync = Send(FsyncOp("/z", 9));  // touches nothing queued, yet waits
  Send(ChmodOp("/c", 0600));
  EXPECT_FALSE(sync->answered());
  ASSERT_EQ(next_.calls(), 1u);

  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"chmod /b"});
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"fsync /z"});
  EXPECT_FALSE(sync->answered());
  next_.Complete(2);
  ASSERT_TRUE(sync->answered());
  EXPECT_EQ(sync->posix_errno(), 0);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"chmod /c"});

  // With nothing queued, an fsync goes on at once.
  next_.Complete(3);
  Reply* idle = Send(FsyncdirOp("/", 10));
  ASSERT_EQ(next_.calls(), 5u);
  EXPECT_FALSE(next_.all(4));
  next_.Complete(4);
  EXPECT_EQ(idle->posix_errno(), 0);
}

TEST_F(WriteBehindTest, AFailedChangeIsReportedOnceByTheNextFsync) {
  Make();
  PutDir("/d", 2);
  PutFile("/d/a", 3);
  Reply* unlink = Send(UnlinkOp("/d/a"));
  ASSERT_TRUE(unlink->answered());
  next_.Complete(0, EACCES);
  EXPECT_EQ(unlink->calls, 1);  // told success already; not again
  EXPECT_EQ(unlink->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  // The caches are told what the early answer made them believe.
  EXPECT_EQ(failures(), std::vector<Strings>{(Strings{"/d/a", "/d"})});

  Reply* sync = Send(FsyncOp("/elsewhere", 4));
  ASSERT_EQ(next_.calls(), 2u);
  next_.Complete(1);  // the backend says 0
  EXPECT_EQ(sync->posix_errno(), EACCES);
  EXPECT_EQ(sync->result.id(), sync->id);

  Reply* again = Send(FsyncOp("/elsewhere", 4));
  ASSERT_EQ(next_.calls(), 3u);
  next_.Complete(2);
  EXPECT_EQ(again->posix_errno(), 0);
}

TEST_F(WriteBehindTest, AnFsyncQueuedBehindAFailingChangeReportsIt) {
  Make();
  PutFile("/f", 5);
  Send(ChmodOp("/f", 0600, /*fh=*/3));
  Reply* sync = Send(FsyncdirOp("/", 4));
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0, EPERM);
  EXPECT_EQ(failures(), std::vector<Strings>{Strings{"/f"}});
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"fsyncdir /"});
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), EPERM);
}

TEST_F(WriteBehindTest, AnFsyncsOwnErrorComesFirstAndKeepsTheOther) {
  Make();
  PutFile("/f", 5);
  PutFile("/g", 6);
  Send(ChmodOp("/f", 0600));
  next_.Complete(0, EACCES);
  Send(ChmodOp("/g", 0600));
  next_.Complete(1, EROFS);  // the first failure is the one reported
  EXPECT_EQ(wb_->failed(), 2u);
  EXPECT_EQ(failures(), (std::vector<Strings>{Strings{"/f"}, Strings{"/g"}}));

  Reply* sync = Send(FsyncOp("/f", 1));
  next_.Complete(2, EIO);
  EXPECT_EQ(sync->posix_errno(), EIO);
  Reply* again = Send(FsyncOp("/f", 1));
  next_.Complete(3);
  EXPECT_EQ(again->posix_errno(), EACCES);
  Reply* clean = Send(FsyncOp("/f", 1));
  next_.Complete(4);
  EXPECT_EQ(clean->posix_errno(), 0);
}

// --- bounds, draining, cancelling ----------------------------------------

TEST_F(WriteBehindTest, BeyondMaxQueuedChangesWaitForTheirAnswer) {
  Make(/*max_queued=*/2);
  PutFile("/a", 1);
  PutFile("/b", 2);
  PutFile("/c", 3);
  PutFile("/e", 4);
  Reply* a = Send(ChmodOp("/a", 0600));  // in flight, still counted
  Reply* b = Send(ChmodOp("/b", 0600));  // queued
  Reply* c = Send(ChmodOp("/c", 0600));
  EXPECT_TRUE(a->answered());
  EXPECT_TRUE(b->answered());
  EXPECT_FALSE(c->answered());
  EXPECT_EQ(wb_->deferred(), 2u);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_FALSE(next_.all(1));
  EXPECT_EQ(next_.ops(1), Strings{"chmod /c"});
  next_.Complete(1);
  ASSERT_TRUE(c->answered());
  EXPECT_EQ(c->posix_errno(), 0);

  // A finished message makes room again.
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /b"});
  Reply* e = Send(ChmodOp("/e", 0600));
  EXPECT_TRUE(e->answered());
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, DrainWaitsForWhatIsInFlight) {
  Make();
  PutFile("/f", 5);
  EXPECT_TRUE(wb_->Drain(absl::Now()));  // nothing to wait for
  Send(ChmodOp("/f", 0600));
  EXPECT_FALSE(wb_->Drain(absl::Now() + absl::Milliseconds(20)));
  EXPECT_EQ(wb_->queued(), 1u);

  // A completion on another thread wakes a waiting Drain.
  std::thread backend([this] {
    absl::SleepFor(absl::Milliseconds(30));
    next_.Complete(0);
  });
  EXPECT_TRUE(wb_->Drain(absl::Now() + absl::Seconds(30)));
  backend.join();
  EXPECT_EQ(wb_->queued(), 0u);

  wb_->WaitIdle();
  EXPECT_EQ(next_.waits(), 1);
}

TEST_F(WriteBehindTest, CancelAllFailsWhatIsQueued) {
  Make();
  PutFile("/x", 1);
  PutFile("/a", 2);
  Send(ChmodOp("/x", 0600));  // in flight
  Reply* chmod = Send(ChmodOp("/a", 0600));
  Reply* waiting = Send(GetattrOp("/x"));
  EXPECT_TRUE(chmod->answered());
  EXPECT_FALSE(waiting->answered());
  EXPECT_EQ(wb_->queued(), 3u);

  wb_->CancelAll();
  EXPECT_EQ(next_.cancels(), 1);
  ASSERT_TRUE(waiting->answered());
  EXPECT_EQ(waiting->posix_errno(), ECANCELED);
  EXPECT_EQ(waiting->result.id(), waiting->id);
  EXPECT_EQ(chmod->calls, 1);  // answered once, early
  // The dropped change never reached the backend: a failure like any.
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(), std::vector<Strings>{Strings{"/a"}});
  EXPECT_EQ(wb_->queued(), 1u);  // the message in flight is the next layer's
  EXPECT_FALSE(wb_->Drain(absl::Now()));

  next_.Complete(0, ECANCELED);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(next_.calls(), 1u);  // nothing left to send
  EXPECT_EQ(wb_->failed(), 2u);

  Reply* sync = Send(FsyncOp("/a", 1));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ECANCELED);
}

TEST_F(WriteBehindTest, ANextLayerThatAnswersInsideSendAllIsFine) {
  Make();
  next_.AnswerAtOnce();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  PutFile("/d/b", 3);
  Reply* chmod = Send(ChmodOp("/d/a", 0600));
  Reply* again = Send(ChmodOp("/d/a", 0640));
  Reply* unlink = Send(UnlinkOp("/d/b"));
  Reply* sync = Send(FsyncOp("/d/a", 1));
  for (Reply* r : {chmod, again, unlink, sync}) {
    ASSERT_TRUE(r->answered());
    EXPECT_EQ(r->calls, 1);
    EXPECT_EQ(r->posix_errno(), 0);
  }
  EXPECT_EQ(next_.calls(), 4u);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(wb_->deferred(), 3u);
}

TEST_F(WriteBehindTest, DeferredCountsEarlyAnswersOnly) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  PutFile("/d/b", 3);
  PutFile("/s", 4, S_IFREG | 04755);
  EXPECT_EQ(wb_->deferred(), 0u);
  Send(ChmodOp("/d/a", 0600));
  Send(UtimensOp("/d/b", Now(), Now()));
  Send(ChownOp("/s", 1, 1));        // set-uid: not early
  Send(ChmodOp("/uncached", 0600));  // not cached: not early
  Send(GetattrOp("/d"));             // not a change at all
  Send(UnlinkOp("/d/b"));
  EXPECT_EQ(wb_->deferred(), 3u);
  // Answering each call in turn sends the rest.
  for (size_t i = 0; i < next_.calls(); ++i) next_.Complete(i);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->deferred(), 3u);
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ABackendThatKeepsOrderGetsTheQueueAsItStands) {
  Make(1024, /*in_order=*/true);
  PutFile("/f", 2);
  PutFile("/g", 3);
  Reply* first = Send(ChmodOp("/f", 0600));
  ASSERT_TRUE(first->answered());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.in_order(0));
  // Changes of one file, and a read of it, behind the one in flight.
  Reply* chown = Send(ChownOp("/f", 7, std::nullopt));
  Reply* times = Send(UtimensOp("/f", Omit(), Set(5, 6)));
  Reply* other = Send(ChmodOp("/g", 0640));
  Reply* read = Send(GetattrOp("/f"));
  EXPECT_TRUE(chown->answered() && times->answered() && other->answered());
  EXPECT_FALSE(read->answered());
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0);
  // One message of the changes, in the order they came (the backend runs
  // it so), then the read that waited for them, in one of its own (its
  // deadline is not theirs).
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.in_order(1));
  EXPECT_EQ(next_.ops(1), (Strings{"chown /f", "utimens /f", "chmod /g"}));
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), (Strings{"getattr /f"}));
  next_.Complete(2);
  EXPECT_TRUE(read->answered());
  EXPECT_TRUE(wb_->Drain(absl::Now()));
}

TEST_F(WriteBehindTest, SettleWaitsForTheQueueAndReportsItsError) {
  Make();
  PutFile("/a", 2);
  int settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, 0);  // nothing queued
  Send(ChmodOp("/a", 0600));
  ASSERT_EQ(next_.calls(), 1u);
  Reply* later = Send(ChmodOp("/a", 0640));
  settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, -1);
  next_.Complete(0, EACCES);
  // The second chmod went on; the Settle waits for it too, sends nothing.
  EXPECT_EQ(settled, -1);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"chmod /a"}));
  next_.Complete(1);
  EXPECT_EQ(settled, EACCES);
  EXPECT_TRUE(later->answered());
  settled = -1;
  wb_->Settle([&](int err) { settled = err; });
  EXPECT_EQ(settled, 0);  // reported once
  EXPECT_EQ(next_.calls(), 2u);
}

TEST_F(WriteBehindTest, ABackendWithoutFsyncHasItAnsweredOnceTheQueueIsThrough) {
  Make();
  PutFile("/a", 2);
  Reply* first = Send(FsyncOp("/a", 9));
  ASSERT_EQ(next_.calls(), 1u);
  next_.Complete(0, ENOSYS);
  // Not ENOSYS: the kernel would stop sending fsync, and errors of changes
  // answered early would never be reported.
  EXPECT_EQ(first->posix_errno(), 0);
  Send(ChmodOp("/a", 0600));
  ASSERT_EQ(next_.calls(), 2u);
  Reply* second = Send(FsyncOp("/a", 9));
  EXPECT_FALSE(second->answered());
  next_.Complete(1, EPERM);
  EXPECT_EQ(second->posix_errno(), EPERM);
  // No fsync ever went to the backend again.
  EXPECT_EQ(next_.calls(), 2u);
  Reply* third = Send(FsyncOp("/a", 9));
  EXPECT_EQ(third->posix_errno(), 0);
  EXPECT_EQ(next_.calls(), 2u);
  // An fsyncdir is asked of the backend as before.
  Send(FsyncdirOp("/", 4));
  EXPECT_EQ(next_.calls(), 3u);
}

// --- creates answered early ------------------------------------------------

// The backend's answer to a create: its handle `fh`, made a token as the
// channel does (HandleMap::IssueTokens).
v1::OpResult Created(HandleMap* handles, const v1::Op& create, uint64_t fh) {
  v1::OpResult result;
  result.mutable_create()->mutable_open()->set_fh(fh);
  handles->IssueTokens(create, /*instance=*/0, &result);
  return result;
}

// The handle `op` would carry to the backend, or the errno it is answered.
uint64_t Resolved(HandleMap* handles, v1::Op op, int* posix_errno) {
  HandleRoute route = handles->Resolve(&op);
  *posix_errno = route.kind == HandleRoute::kAnswer ? route.posix_errno : 0;
  if (route.kind == HandleRoute::kReopen) *posix_errno = -1;
  return op.has_write() ? op.write().fh() : 0;
}

TEST_F(WriteBehindTest, ACreateOfANameKnownAbsentIsAnsweredAtOnce) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1, S_IFDIR | 02775);  // set-gid: new files get its group
  cache_.PutNewDirectory("/d", absl::Hours(1));
  v1::Attr dir = Cached("/d");

  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0640));
  ASSERT_TRUE(create->answered());
  EXPECT_EQ(create->posix_errno(), 0);
  EXPECT_EQ(create->result.id(), create->id);
  const v1::Attr& attr = create->result.create().attr();
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(attr.uid(), 1001u);
  EXPECT_EQ(attr.gid(), dir.gid());
  EXPECT_EQ(attr.nlink(), 1u);
  EXPECT_EQ(attr.size(), 0u);
  EXPECT_EQ(attr.ino(), 0u);  // the kernel's node id stands for it
  EXPECT_ATTR_EQ(attr.mtime(), kNowTs);
  EXPECT_ATTR_EQ(attr.ctime(), kNowTs);
  EXPECT_ATTR_EQ(create->result.parent_attr().mtime(), kNowTs);
  const uint64_t token = create->result.create().open().fh();
  ASSERT_NE(token, 0u);
  EXPECT_FALSE(create->result.create().open().noflush());
  EXPECT_TRUE(handles_.FlushesHere(token));  // the backend has no handle yet
  // Sent at once, as the kernel asked, without a descriptor to hand over.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"create /d/f"});
  EXPECT_EQ(next_.op(0, 0).create().flags(),
            static_cast<uint32_t>(O_WRONLY | O_CREAT | O_EXCL));
  EXPECT_EQ(next_.op(0, 0).create().passthrough_tag(), 0u);

  // What the layer above keeps of the answer; then the file's writes,
  // flush and release are answered at once too, the write with the size
  // it leaves.
  cache_.PutAttr("/d/f", attr, absl::Hours(1), cache_.epoch());
  cache_.ListingAdd("/d", "f", ListingEntry{S_IFREG, 0});
  Reply* write = Send(WriteOp("/d/f", token, 3, "hello"));
  Reply* times = Send(UtimensOp("/d/f", Omit(), Set(5, 6)));
  Reply* flush = Send(FlushOp("/d/f", token));
  Reply* release = Send(ReleaseOp("/d/f", token));
  ASSERT_TRUE(write->answered() && times->answered() && flush->answered() &&
              release->answered());
  EXPECT_EQ(write->result.write().size(), 5u);
  EXPECT_EQ(write->result.write().attr().size(), 8u);
  EXPECT_EQ(wb_->deferred(), 5u);
  EXPECT_EQ(next_.calls(), 1u);  // all behind the create

  // The backend's handle is bound to the token before the next message.
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 77));
  int err = 0;
  EXPECT_EQ(Resolved(&handles_, WriteOp("/d/f", token, 0, "x"), &err), 77u);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(handles_.size(), 1u);  // the backend's token was retired
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), (Strings{"write /d/f", "utimens /d/f", "flush /d/f",
                                   "release /d/f"}));
  EXPECT_EQ(next_.op(1, 0).write().data(), "hello");
  next_.Complete(1);
  EXPECT_TRUE(wb_->Drain(absl::Now()));
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ACreateEndsItsMessage) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* a = Send(CreateOp("/d/a", S_IFREG | 0644));
  Reply* b = Send(CreateOp("/d/b", S_IFREG | 0644));
  Reply* c = Send(CreateOp("/d/c", S_IFREG | 0644));
  ASSERT_TRUE(a->answered() && b->answered() && c->answered());
  ASSERT_EQ(next_.calls(), 1u);
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 1));
  // The ops after a create that carry its token need its handle.
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(1), Strings{"create /d/b"});
  next_.CompleteOp(1, 0, Created(&handles_, next_.op(1, 0), 2));
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/c"});
}

// A backend that fills in the handle of an earlier op gets a file's create,
// writes and release in one message, and the next file's with them; the
// creates say which token their handle becomes.
TEST_F(WriteBehindTest, CreatesShareAMessageWhenTheBackendTakesTheirHandles) {
  Make(1024, /*in_order=*/true, /*creates=*/true, /*posix_acl=*/false,
       /*takes_handles=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  PutFile("/d/old", 5);
  // In flight while the files are made: they queue behind it.
  Reply* chmod = Send(ChmodOp("/d/old", 0600));
  ASSERT_TRUE(chmod->answered());
  ASSERT_EQ(next_.calls(), 1u);
  std::vector<uint64_t> tokens;
  for (const char* name : {"/d/a", "/d/b"}) {
    Reply* create = Send(CreateOp(name, S_IFREG | 0644));
    ASSERT_TRUE(create->answered());
    const uint64_t token = create->result.create().open().fh();
    tokens.push_back(token);
    cache_.PutAttr(name, create->result.create().attr(), absl::Hours(1),
                   cache_.epoch());
    cache_.ListingAdd("/d", std::string(name).substr(3),
                      ListingEntry{S_IFREG, 0});
    ASSERT_TRUE(Send(WriteOp(name, token, 0, "data"))->answered());
    ASSERT_TRUE(Send(ReleaseOp(name, token))->answered());
  }
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_TRUE(next_.in_order(1));
  EXPECT_EQ(next_.ops(1),
            (Strings{"create /d/a", "write /d/a", "release /d/a", "create /d/b",
                     "write /d/b", "release /d/b"}));
  EXPECT_EQ(next_.creates_token(1, 0), tokens[0]);
  EXPECT_EQ(next_.creates_token(1, 1), 0u);
  EXPECT_EQ(next_.creates_token(1, 3), tokens[1]);

  // Said otherwise (a restarted backend), a create ends its message again.
  takes_handles_ = false;
  Reply* c = Send(CreateOp("/d/c", S_IFREG | 0644));
  ASSERT_TRUE(c->answered());
  const uint64_t token = c->result.create().open().fh();
  cache_.PutAttr("/d/c", c->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  cache_.ListingAdd("/d", "c", ListingEntry{S_IFREG, 0});
  ASSERT_TRUE(Send(ReleaseOp("/d/c", token))->answered());
  next_.CompleteOp(1, 0, Created(&handles_, next_.op(1, 0), 1));
  for (size_t j = 1; j < 6; ++j) {
    v1::OpResult done;
    if (j == 3) {
      done = Created(&handles_, next_.op(1, j), 2);
    } else {
      done.mutable_empty();
    }
    next_.CompleteOp(1, j, done);
  }
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/c"});
  EXPECT_EQ(next_.creates_token(2, 0), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
}

TEST_F(WriteBehindTest, ACreateWaitsUnlessTheNameIsKnownAbsent) {
  Make(1024, /*in_order=*/false, /*creates=*/true);
  PutDir("/unlisted", 1);
  PutDir("/listed", 2);
  Listing listing;
  listing.emplace("there", ListingEntry{S_IFREG, 3});
  cache_.PutListing("/listed", listing, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/uncached", absl::Hours(1));

  Reply* unlisted = Send(CreateOp("/unlisted/f", S_IFREG | 0644));
  Reply* there = Send(CreateOp("/listed/there", S_IFREG | 0644));
  Reply* setid = Send(CreateOp("/listed/s", S_IFREG | 02755));
  Reply* no_dir = Send(CreateOp("/uncached/f", S_IFREG | 0644));
  EXPECT_FALSE(unlisted->answered() || there->answered() || setid->answered() ||
               no_dir->answered());
  EXPECT_EQ(wb_->deferred(), 0u);
  EXPECT_EQ(next_.calls(), 4u);  // forwarded, as without write-behind

  // Without a handle map, no create is answered early.
  Make(1024, false, /*creates=*/false);
  Reply* plain = Send(CreateOp("/listed/new", S_IFREG | 0644));
  EXPECT_FALSE(plain->answered());
}

TEST_F(WriteBehindTest, ARefusedCreateIsReportedAndFailsItsHandle) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0644));
  ASSERT_TRUE(create->answered());
  const uint64_t token = create->result.create().open().fh();
  cache_.PutAttr("/d/f", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  Reply* write = Send(WriteOp("/d/f", token, 0, "data"));
  ASSERT_TRUE(write->answered());

  v1::OpResult refused;
  refused.set_posix_errno(EEXIST);  // another client made the name
  next_.CompleteOp(0, 0, refused);
  EXPECT_EQ(failures(), (std::vector<Strings>{Strings{"/d/f", "/d"}}));
  int err = 0;
  Resolved(&handles_, WriteOp("/d/f", token, 0, "x"), &err);
  EXPECT_EQ(err, EEXIST);
  // The write behind it fails so too; the next fsync reports the first.
  ASSERT_EQ(next_.calls(), 2u);
  next_.Complete(1, EEXIST);
  EXPECT_EQ(wb_->failed(), 2u);
  int reported = -1;
  wb_->Settle([&](int e) { reported = e; });
  EXPECT_EQ(reported, EEXIST);
}

TEST_F(WriteBehindTest, WritesBeyondTheByteBoundWaitBehindTheCreate) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/f", S_IFREG | 0644));
  const uint64_t token = create->result.create().open().fh();
  cache_.PutAttr("/d/f", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  const std::string big((64 << 20) - 1, 'x');
  Reply* first = Send(WriteOp("/d/f", token, 0, big));
  Reply* second = Send(WriteOp("/d/f", token, big.size(), "yz"));
  EXPECT_TRUE(first->answered());
  EXPECT_FALSE(second->answered());
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 5));
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"write /d/f"});
  next_.Complete(2);
  EXPECT_TRUE(second->answered());
}

TEST_F(WriteBehindTest, WithAclsACreateWaitsUntilTheDirectoryHasNoDefaultAcl) {
  Make(1024, /*in_order=*/true, /*creates=*/true, /*posix_acl=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  // Its default ACL unknown: the create goes on, after a question.
  Reply* first = Send(CreateOp("/d/a", S_IFREG | 0644, 1001, 50));
  EXPECT_FALSE(first->answered());
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(next_.ops(0), Strings{"getxattr /d"});
  EXPECT_EQ(next_.op(0, 0).getxattr().name(), "system.posix_acl_default");
  EXPECT_EQ(next_.op(0, 0).caller().uid(), 1001u);
  EXPECT_EQ(next_.ops(1), Strings{"create /d/a"});
  // Asked once while the answer is on its way.
  Reply* second = Send(CreateOp("/d/b", S_IFREG | 0644));
  EXPECT_FALSE(second->answered());
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"create /d/b"});
  v1::OpResult none;
  none.set_posix_errno(ENODATA);
  next_.CompleteOp(0, 0, none);
  Reply* third = Send(CreateOp("/d/c", S_IFREG | 0644));
  EXPECT_TRUE(third->answered());

  // A directory with a default ACL: its creates go on.
  PutDir("/acl", 2);
  cache_.PutNewDirectory("/acl", absl::Hours(1));
  const std::string acl = "some ACL";
  cache_.PutXattr("/acl", "system.posix_acl_default", &acl, absl::Hours(1),
                  cache_.epoch());
  const size_t calls = next_.calls();
  Reply* in_acl = Send(CreateOp("/acl/f", S_IFREG | 0644));
  EXPECT_FALSE(in_acl->answered());
  EXPECT_EQ(next_.calls(), calls + 1);  // the create alone
}

// --- renames -------------------------------------------------------------

// A rename, described: "rename /a /b".
std::string RenameOf(const v1::Op& op) {
  return "rename " + op.rename().old_path() + " " + op.rename().new_path();
}

TEST_F(WriteBehindTest, ARenameToANameKnownAbsentIsAnsweredAtOnce) {
  Make();
  PutDir("/d", 1);
  PutDir("/e", 2);
  PutFile("/d/a", 3);
  PutFile("/d/b", 4);
  Listing d;
  d.emplace("a", ListingEntry{S_IFREG, 3});
  d.emplace("b", ListingEntry{S_IFREG, 4});
  cache_.PutListing("/d", d, absl::Hours(1), cache_.epoch());
  cache_.PutNewDirectory("/e", absl::Hours(1));
  v1::Attr d_after = Cached("/d");
  *d_after.mutable_mtime() = kNowTs;
  *d_after.mutable_ctime() = kNowTs;
  v1::Attr e_after = Cached("/e");
  *e_after.mutable_mtime() = kNowTs;
  *e_after.mutable_ctime() = kNowTs;

  // Within one directory: its attributes only.
  Reply* within = Send(RenameOp("/d/a", "/d/c"));
  ASSERT_TRUE(within->answered());
  EXPECT_EQ(within->posix_errno(), 0);
  EXPECT_EQ(within->result.id(), within->id);
  EXPECT_TRUE(within->result.has_empty());
  EXPECT_ATTR_EQ(within->result.parent_attr(), d_after);
  EXPECT_FALSE(within->result.has_old_parent_attr());
  // Into another (RENAME_NOREPLACE: the name is known absent): both, no
  // link count changed.
  Reply* across = Send(RenameOp("/d/b", "/e/b", RENAME_NOREPLACE));
  ASSERT_TRUE(across->answered());
  EXPECT_EQ(across->posix_errno(), 0);
  EXPECT_ATTR_EQ(across->result.parent_attr(), e_after);
  EXPECT_ATTR_EQ(across->result.old_parent_attr(), d_after);
  EXPECT_EQ(wb_->deferred(), 2u);

  // Both go to the backend as asked, with no deadline; the second after
  // the first, whose directory it shares.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_TRUE(next_.all(0));
  EXPECT_EQ(RenameOf(next_.op(0, 0)), "rename /d/a /d/c");
  EXPECT_EQ(next_.op(0, 0).deadline_unix_ms(), 0);
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(RenameOf(next_.op(1, 0)), "rename /d/b /e/b");
  EXPECT_EQ(next_.op(1, 0).rename().flags(),
            static_cast<uint32_t>(RENAME_NOREPLACE));
  next_.Complete(1);
  EXPECT_EQ(within->calls, 1);
  EXPECT_EQ(across->calls, 1);
  EXPECT_EQ(wb_->queued(), 0u);
  EXPECT_EQ(wb_->failed(), 0u);
}

// The editor's save: a new file renamed over the old one, whose attributes
// are cached (no listing needed: either way the rename succeeds).
TEST_F(WriteBehindTest, ARenameOverACachedFileOfOneNameIsAnsweredAtOnce) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/new", 3);
  PutFile("/d/old", 4);
  Reply* r = Send(RenameOp("/d/new", "/d/old"));
  ASSERT_TRUE(r->answered());
  EXPECT_EQ(r->posix_errno(), 0);
  EXPECT_TRUE(r->result.has_empty());
  EXPECT_EQ(r->result.parent_attr().mtime().DebugString(),
            kNowTs.DebugString());
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(RenameOf(next_.op(0, 0)), "rename /d/new /d/old");
}

TEST_F(WriteBehindTest, ARenameWaitsUnlessItsOutcomeIsKnown) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/f", 2);
  PutFile("/d/g", 3);
  PutDir("/d/sub", 4);
  PutDir("/d/sub2", 5);
  v1::Attr linked = AttrOf(6, S_IFREG | 0644);
  linked.set_nlink(2);
  cache_.PutAttr("/d/linked", linked, absl::Hours(1), cache_.epoch());
  PutFile("/e/f", 7);  // its directory is not cached
  Listing d;
  for (const char* name : {"f", "g", "sub", "sub2", "linked", "unlisted"}) {
    d.emplace(name, ListingEntry{S_IFREG, 0});
  }
  cache_.PutListing("/d", d, absl::Hours(1), cache_.epoch());
  PutDir("/nolist", 8);  // attributes, but no listing

  std::vector<Reply*> waiting = {
      // A directory moves a subtree.
      Send(RenameOp("/d/sub", "/d/moved")),
      // A file of several names.
      Send(RenameOp("/d/linked", "/d/moved")),
      // A source the daemon has no attributes of.
      Send(RenameOp("/d/unknown", "/d/moved")),
      // A target that may be anything: listed, but not cached.
      Send(RenameOp("/d/f", "/d/unlisted")),
      // Nor known absent: its directory's listing is not cached.
      Send(RenameOp("/d/f", "/nolist/x")),
      // A directory as the target (EISDIR), or a file of several names.
      Send(RenameOp("/d/f", "/d/sub2")),
      Send(RenameOp("/d/f", "/d/linked")),
      // RENAME_NOREPLACE over a name that is there (EEXIST).
      Send(RenameOp("/d/f", "/d/g", RENAME_NOREPLACE)),
      // RENAME_EXCHANGE, RENAME_WHITEOUT.
      Send(RenameOp("/d/f", "/d/g", RENAME_EXCHANGE)),
      Send(RenameOp("/d/f", "/d/new", RENAME_WHITEOUT)),
      // A directory whose attributes are not cached.
      Send(RenameOp("/e/f", "/d/new")),
  };
  for (size_t i = 0; i < waiting.size(); ++i) {
    EXPECT_FALSE(waiting[i]->answered()) << i;
  }
  EXPECT_EQ(wb_->deferred(), 0u);
  ASSERT_EQ(next_.calls(), waiting.size());
  for (size_t i = 0; i < waiting.size(); ++i) {
    EXPECT_FALSE(next_.all(i)) << i;
    EXPECT_EQ(next_.op(i, 0).deadline_unix_ms(), kDeadlineMs) << i;
  }
}

TEST_F(WriteBehindTest, ARefusedRenameIsReportedWithBothNamesAndDirectories) {
  Make();
  PutDir("/d", 1);
  PutDir("/e", 2);
  PutFile("/d/a", 3);
  cache_.PutNewDirectory("/e", absl::Hours(1));
  Reply* rename = Send(RenameOp("/d/a", "/e/b"));
  ASSERT_TRUE(rename->answered());
  next_.Complete(0, ENOENT);  // another client removed it meanwhile
  EXPECT_EQ(rename->calls, 1);
  EXPECT_EQ(rename->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 1u);
  EXPECT_EQ(failures(),
            std::vector<Strings>{(Strings{"/d/a", "/e/b", "/d", "/e"})});
  Reply* sync = Send(FsyncdirOp("/d", 4));
  next_.Complete(1);
  EXPECT_EQ(sync->posix_errno(), ENOENT);
  Reply* again = Send(FsyncdirOp("/d", 4));
  next_.Complete(2);
  EXPECT_EQ(again->posix_errno(), 0);
}

// What was queued before the rename reaches the backend under the old
// name, what comes after under the new one (the layer above names it so),
// and none overtakes the rename.
TEST_F(WriteBehindTest, ChangesBeforeAndAfterARenameKeepTheirNamesAndOrder) {
  Make();
  PutDir("/d", 1);
  PutFile("/d/a", 2);
  Listing listing;
  listing.emplace("a", ListingEntry{S_IFREG, 2});
  cache_.PutListing("/d", listing, absl::Hours(1), cache_.epoch());
  ASSERT_TRUE(Send(ChmodOp("/d/a", 0600))->answered());
  ASSERT_TRUE(Send(RenameOp("/d/a", "/d/b"))->answered());
  // What the layer above does with the rename's answer.
  cache_.Rename("/d/a", "/d/b", /*exchange=*/false);
  cache_.MarkRemoved("/d/a", absl::Hours(1));
  cache_.DropListing("/d");
  ASSERT_TRUE(Send(ChmodOp("/d/b", 0640))->answered());
  Reply* stat = Send(GetattrOp("/d/b"));
  EXPECT_FALSE(stat->answered());
  EXPECT_EQ(wb_->deferred(), 3u);

  // One at a time: each touches what the one before touches.
  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"chmod /d/a"});
  next_.Complete(0);
  ASSERT_EQ(next_.calls(), 2u);
  EXPECT_EQ(RenameOf(next_.op(1, 0)), "rename /d/a /d/b");
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"chmod /d/b"});
  next_.Complete(2);
  ASSERT_EQ(next_.calls(), 4u);
  EXPECT_EQ(next_.ops(3), Strings{"getattr /d/b"});
  next_.Complete(3);
  EXPECT_TRUE(stat->answered());
  EXPECT_EQ(wb_->failed(), 0u);
}

// A file created early, written, renamed and written again: the backend
// gets the create and the first write under the old name, then the
// rename, then the last write under the new one, through the handle.
TEST_F(WriteBehindTest, AFileCreatedEarlyIsRenamedBehindItsCreateAndWrites) {
  Make(1024, /*in_order=*/true, /*creates=*/true);
  PutDir("/d", 1);
  cache_.PutNewDirectory("/d", absl::Hours(1));
  Reply* create = Send(CreateOp("/d/tmp", S_IFREG | 0644));
  ASSERT_TRUE(create->answered());
  const uint64_t token = create->result.create().open().fh();
  // What the layer above keeps of the create's answer.
  cache_.PutAttr("/d/tmp", create->result.create().attr(), absl::Hours(1),
                 cache_.epoch());
  cache_.ListingAdd("/d", "tmp", ListingEntry{S_IFREG, 0});
  ASSERT_TRUE(Send(WriteOp("/d/tmp", token, 0, "first;"))->answered());
  Reply* rename = Send(RenameOp("/d/tmp", "/d/file"));
  ASSERT_TRUE(rename->answered());
  cache_.Rename("/d/tmp", "/d/file", /*exchange=*/false);
  cache_.DropAttr("/d/file");
  cache_.DropListing("/d");
  // The moved file's attributes were dropped: this write waits.
  Reply* last = Send(WriteOp("/d/file", token, 6, "last"));
  EXPECT_FALSE(last->answered());
  EXPECT_EQ(wb_->deferred(), 3u);

  ASSERT_EQ(next_.calls(), 1u);
  EXPECT_EQ(next_.ops(0), Strings{"create /d/tmp"});
  next_.CompleteOp(0, 0, Created(&handles_, next_.op(0, 0), 77));
  ASSERT_EQ(next_.calls(), 2u);
  ASSERT_EQ(next_.ops(1).size(), 2u);
  EXPECT_EQ(next_.ops(1)[0], "write /d/tmp");
  EXPECT_EQ(RenameOf(next_.op(1, 1)), "rename /d/tmp /d/file");
  next_.Complete(1);
  ASSERT_EQ(next_.calls(), 3u);
  EXPECT_EQ(next_.ops(2), Strings{"write /d/file"});
  EXPECT_EQ(next_.op(2, 0).write().fh(), token);
  int err = 0;
  EXPECT_EQ(Resolved(&handles_, next_.op(2, 0), &err), 77u);
  EXPECT_EQ(err, 0);
  v1::OpResult written;
  written.mutable_write()->set_size(4);
  next_.CompleteOp(2, 0, written);
  EXPECT_EQ(last->posix_errno(), 0);
  EXPECT_EQ(wb_->failed(), 0u);
}

}  // namespace
}  // namespace fusehost
