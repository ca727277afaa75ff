// The fixture of WriteBehind's tests: WriteBehind over a real MetadataCache
// and a fake next layer that records each call (Send or SendAll, with the
// ops that came together) and lets the test answer the ops by hand; and the
// ops the tests send.

#ifndef FUSE_HOSTD_TESTS_DAEMON_PIPELINE_WRITE_BEHIND_FIXTURE_H_
#define FUSE_HOSTD_TESTS_DAEMON_PIPELINE_WRITE_BEHIND_FIXTURE_H_

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
#include "daemon/pipeline/write_behind.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {
namespace write_behind_testing {

using Strings = std::vector<std::string>;

// "chmod /a": the op's kind and path.
inline std::string Describe(const v1::Op& op) {
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
inline const absl::Time kNow =
    absl::FromUnixNanos(int64_t{1800000000} * 1000000000 + 456);

inline v1::Timespec Ts(int64_t sec, uint32_t nsec) {
  v1::Timespec ts;
  ts.set_sec(sec);
  ts.set_nsec(nsec);
  return ts;
}
inline const v1::Timespec kNowTs = Ts(1800000000, 456);

inline v1::Attr AttrOf(uint64_t ino, uint32_t mode) {
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

inline v1::Op ChmodOp(const std::string& path, uint32_t mode,
                      std::optional<uint64_t> fh = std::nullopt) {
  v1::Op op;
  op.mutable_chmod()->set_path(path);
  op.mutable_chmod()->set_mode(mode);
  if (fh) op.mutable_chmod()->set_fh(*fh);
  return op;
}
inline v1::Op ChownOp(const std::string& path, std::optional<uint32_t> uid,
                      std::optional<uint32_t> gid) {
  v1::Op op;
  op.mutable_chown()->set_path(path);
  if (uid) op.mutable_chown()->set_uid(*uid);
  if (gid) op.mutable_chown()->set_gid(*gid);
  return op;
}
inline v1::TimeSet Omit() { return v1::TimeSet(); }
inline v1::TimeSet Now() {
  v1::TimeSet set;
  set.set_kind(v1::TimeSet::NOW);
  return set;
}
inline v1::TimeSet Set(int64_t sec, uint32_t nsec) {
  v1::TimeSet set;
  set.set_kind(v1::TimeSet::SET);
  *set.mutable_time() = Ts(sec, nsec);
  return set;
}
inline v1::Op UtimensOp(const std::string& path, v1::TimeSet atime,
                        v1::TimeSet mtime) {
  v1::Op op;
  op.mutable_utimens()->set_path(path);
  *op.mutable_utimens()->mutable_atime() = std::move(atime);
  *op.mutable_utimens()->mutable_mtime() = std::move(mtime);
  return op;
}
inline v1::Op UnlinkOp(const std::string& path) {
  v1::Op op;
  op.mutable_unlink()->set_path(path);
  return op;
}
inline v1::Op RmdirOp(const std::string& path) {
  v1::Op op;
  op.mutable_rmdir()->set_path(path);
  return op;
}
inline v1::Op RenameOp(const std::string& from, const std::string& to,
                       uint32_t flags = 0) {
  v1::Op op;
  op.mutable_rename()->set_old_path(from);
  op.mutable_rename()->set_new_path(to);
  op.mutable_rename()->set_flags(flags);
  return op;
}
inline v1::Op GetattrOp(const std::string& path) {
  v1::Op op;
  op.mutable_getattr()->set_path(path);
  return op;
}
inline v1::Op ReleaseOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_release()->set_path(path);
  op.mutable_release()->set_fh(fh);
  return op;
}
inline v1::Op CreateOp(const std::string& path, uint32_t mode,
                       uint32_t uid = 1001, uint32_t gid = 50) {
  v1::Op op;
  op.mutable_create()->set_path(path);
  op.mutable_create()->set_mode(mode);
  op.mutable_create()->set_flags(O_WRONLY | O_CREAT | O_EXCL);
  op.mutable_create()->set_passthrough_tag(9);
  op.mutable_caller()->set_uid(uid);
  op.mutable_caller()->set_gid(gid);
  return op;
}
inline v1::Op WriteOp(const std::string& path, uint64_t fh, uint64_t offset,
                      const std::string& data) {
  v1::Op op;
  op.mutable_write()->set_path(path);
  op.mutable_write()->set_fh(fh);
  op.mutable_write()->set_offset(offset);
  op.mutable_write()->set_data(data);
  return op;
}
inline v1::Op FlushOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_flush()->set_path(path);
  op.mutable_flush()->set_fh(fh);
  return op;
}
inline v1::Op FsyncOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_fsync()->set_path(path);
  op.mutable_fsync()->set_fh(fh);
  return op;
}
inline v1::Op FsyncdirOp(const std::string& path, uint64_t fh) {
  v1::Op op;
  op.mutable_fsyncdir()->set_path(path);
  op.mutable_fsyncdir()->set_fh(fh);
  return op;
}

// The backend's answer to a create: its handle `fh`, made a token as the
// channel does (HandleMap::IssueTokens).
inline v1::OpResult Created(HandleMap* handles, const v1::Op& create,
                            uint64_t fh) {
  v1::OpResult result;
  result.mutable_create()->mutable_open()->set_fh(fh);
  handles->IssueTokens(create, /*instance=*/0, &result);
  return result;
}

// The handle `op` would carry to the backend, or the errno it is answered.
inline uint64_t Resolved(HandleMap* handles, v1::Op op, int* posix_errno) {
  HandleRoute route = handles->Resolve(&op);
  *posix_errno = route.kind == HandleRoute::kAnswer ? route.posix_errno : 0;
  if (route.kind == HandleRoute::kReopen) *posix_errno = -1;
  return op.has_write() ? op.write().fh() : 0;
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
    options.linger = linger_;
    wb_ = std::make_unique<WriteBehind>(std::move(options));
  }

  // How long changes answered early wait for others (set before Make).
  absl::Duration linger_ = absl::ZeroDuration();
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

}  // namespace write_behind_testing
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_PIPELINE_WRITE_BEHIND_FIXTURE_H_
