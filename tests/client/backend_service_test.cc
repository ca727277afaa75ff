#include "client/backend_service.h"

#include <sys/stat.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

// Getattr fails for "/bad" and, for "/wait-N", waits until N such calls run
// at the same time (or gives up after a while), so a test can tell whether
// a batch's ops run concurrently.
class BatchFs : public FileSystem {
 public:
  std::string Name() const override { return "batch-fs"; }

  InitResult Init(const MountInfo& mount) override {
    absl::MutexLock lock(&mu_);
    last_mount_ = mount;
    InitResult result;
    result.posix_locks = true;
    result.posix_errno = mount.mount_id == 666 ? -1 : 0;
    return result;
  }

  void Destroy(uint64_t mount_id) override {
    absl::MutexLock lock(&mu_);
    destroyed_ = mount_id;
  }

  int Getattr(const Context& ctx, const std::string& path, const FileInfo*,
              struct stat* st) override {
    if (path == "/bad") return ENOENT;
    if (path == "/hostile") return -3;
    if (path.rfind("/wait-", 0) == 0) {
      const int wanted = std::stoi(path.substr(6));
      absl::MutexLock lock(&mu_);
      ++waiting_;
      auto all_here = [this, wanted]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return waiting_ >= wanted;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&all_here),
                                absl::Seconds(10))) {
        return ETIMEDOUT;
      }
    }
    *st = {};
    st->st_mode = S_IFREG | 0644;
    st->st_ino = ctx.uid;  // echo something op-specific
    return 0;
  }

  // Release waits until OpenReleaseGate(); counts releases done.
  int Release(const Context&, const std::string&, const FileInfo&) override {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&release_gate_open_),
                         absl::Seconds(30));
    ++released_;
    return 0;
  }
  void OpenReleaseGate() {
    absl::MutexLock lock(&mu_);
    release_gate_open_ = true;
  }
  // Waits (up to 10 s) until `n` releases are done; how many are.
  int AwaitReleased(int n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return released_ >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
    return released_;
  }
  int released() {
    absl::MutexLock lock(&mu_);
    return released_;
  }

  MountInfo last_mount() {
    absl::MutexLock lock(&mu_);
    return last_mount_;
  }
  uint64_t destroyed() {
    absl::MutexLock lock(&mu_);
    return destroyed_;
  }

 private:
  absl::Mutex mu_;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  MountInfo last_mount_ ABSL_GUARDED_BY(mu_);
  uint64_t destroyed_ ABSL_GUARDED_BY(mu_) = 0;
  bool release_gate_open_ ABSL_GUARDED_BY(mu_) = false;
  int released_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::Op GetattrOp(uint64_t id, const std::string& path) {
  v1::Op op;
  op.set_id(id);
  op.mutable_caller()->set_uid(static_cast<uint32_t>(id));
  op.mutable_getattr()->set_path(path);
  return op;
}

v1::Op ReleaseOp(uint64_t id) {
  v1::Op op;
  op.set_id(id);
  op.mutable_release()->set_path("/f");
  op.mutable_release()->set_fh(7);
  return op;
}

TEST(BackendServiceTest, InitPassesMountAndReportsFeatures) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  v1::InitRequest request;
  request.set_mount_id(5);
  request.set_mountpoint("/mnt/x");
  request.add_options("ro");
  request.add_options("k=v");
  request.set_protocol_version(1);
  v1::InitReply reply;
  ASSERT_TRUE(service.Init(nullptr, &request, &reply).ok());
  EXPECT_EQ(reply.posix_errno(), 0);
  EXPECT_EQ(reply.protocol_version(), 1u);
  EXPECT_TRUE(reply.posix_locks());
  EXPECT_FALSE(reply.flock_locks());
  EXPECT_EQ(reply.name(), "batch-fs");
  EXPECT_TRUE(reply.releases_after_reply());
  MountInfo mount = fs.last_mount();
  EXPECT_EQ(mount.mount_id, 5u);
  EXPECT_EQ(mount.mountpoint, "/mnt/x");
  EXPECT_EQ(mount.options, (std::vector<std::string>{"ro", "k=v"}));

  request.set_mount_id(666);  // refused with a hostile errno
  ASSERT_TRUE(service.Init(nullptr, &request, &reply).ok());
  EXPECT_EQ(reply.posix_errno(), EIO);
}

TEST(BackendServiceTest, EveryReplyCarriesTheInstance) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  EXPECT_NE(service.instance(), 0u);
  v1::InitRequest request;
  request.set_mount_id(5);
  v1::InitReply init;
  ASSERT_TRUE(service.Init(nullptr, &request, &init).ok());
  EXPECT_EQ(init.instance(), service.instance());
  v1::Batch batch;
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  EXPECT_EQ(reply.instance(), service.instance());
  *batch.add_ops() = GetattrOp(1, "/a");
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  EXPECT_EQ(reply.instance(), service.instance());
}

TEST(BackendServiceTest, EachServicePicksItsOwnInstance) {
  // Two services of one FileSystem stand for a backend served, stopped and
  // served again: the second must not accept the first one's handles.
  BatchFs fs;
  BackendService first(fs, BackendService::Options());
  BackendService second(fs, BackendService::Options());
  EXPECT_NE(first.instance(), second.instance());
  BackendService::Options fixed;
  fixed.instance = 77;
  EXPECT_EQ(BackendService(fs, fixed).instance(), 77u);
}

TEST(BackendServiceTest, DestroyReachesFileSystem) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  v1::DestroyRequest request;
  request.set_mount_id(9);
  v1::DestroyReply reply;
  ASSERT_TRUE(service.Destroy(nullptr, &request, &reply).ok());
  EXPECT_EQ(fs.destroyed(), 9u);
}

TEST(BackendServiceTest, OneFailingOpDoesNotAffectTheOthers) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  v1::Batch batch;
  batch.set_mount_id(1);
  *batch.add_ops() = GetattrOp(10, "/a");
  *batch.add_ops() = GetattrOp(11, "/bad");
  *batch.add_ops() = GetattrOp(12, "/b");
  *batch.add_ops() = GetattrOp(13, "/hostile");
  *batch.add_ops() = GetattrOp(14, "/c");
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  ASSERT_EQ(reply.results_size(), 5);
  std::set<uint64_t> ids;
  for (const v1::OpResult& result : reply.results()) {
    ids.insert(result.id());
    switch (result.id()) {
      case 11:
        EXPECT_EQ(result.posix_errno(), ENOENT);
        break;
      case 13:
        EXPECT_EQ(result.posix_errno(), EIO);
        break;
      default:
        EXPECT_EQ(result.posix_errno(), 0) << result.id();
        EXPECT_EQ(result.getattr().attr().ino(), result.id());
    }
  }
  EXPECT_EQ(ids, (std::set<uint64_t>{10, 11, 12, 13, 14}));
}

TEST(BackendServiceTest, BatchOpsRunConcurrently) {
  BatchFs fs;
  BackendService::Options options;
  options.threads = 3;
  BackendService service(fs, options);
  v1::Batch batch;
  // Each op waits until all four run at once: the handler thread plus three
  // pool threads. Run one after another, they would time out.
  for (uint64_t id = 1; id <= 4; ++id)
    *batch.add_ops() = GetattrOp(id, "/wait-4");
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  ASSERT_EQ(reply.results_size(), 4);
  for (const v1::OpResult& result : reply.results()) {
    EXPECT_EQ(result.posix_errno(), 0) << result.id();
  }
}

TEST(BackendServiceTest, BatchFinishesWhenPoolIsBusy) {
  BatchFs fs;
  BackendService::Options options;
  options.threads = 1;
  BackendService service(fs, options);
  v1::Batch batch;
  for (uint64_t id = 1; id <= 50; ++id) *batch.add_ops() = GetattrOp(id, "/x");
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  EXPECT_EQ(reply.results_size(), 50);
}

TEST(BackendServiceTest, ReleasesAmongOtherOpsAreAnsweredBeforeTheyRun) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  v1::Batch batch;
  *batch.add_ops() = GetattrOp(1, "/a");
  *batch.add_ops() = ReleaseOp(2);
  v1::BatchResult reply;
  // The release cannot finish before the gate opens, yet the reply is
  // complete: the getattr's answer does not wait for it.
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  ASSERT_EQ(reply.results_size(), 2);
  std::set<uint64_t> ids;
  for (const v1::OpResult& result : reply.results()) {
    ids.insert(result.id());
    EXPECT_EQ(result.posix_errno(), 0) << result.id();
  }
  EXPECT_EQ(ids, (std::set<uint64_t>{1, 2}));
  EXPECT_EQ(fs.released(), 0);
  fs.OpenReleaseGate();
  EXPECT_EQ(fs.AwaitReleased(1), 1);

  // Alone, or in a batch to run in order, a release runs before the reply.
  v1::Batch alone;
  *alone.add_ops() = ReleaseOp(3);
  ASSERT_TRUE(service.Execute(nullptr, &alone, &reply).ok());
  EXPECT_EQ(fs.released(), 2);
  v1::Batch in_order;
  in_order.set_in_order(true);
  *in_order.add_ops() = ReleaseOp(4);
  *in_order.add_ops() = GetattrOp(5, "/a");
  ASSERT_TRUE(service.Execute(nullptr, &in_order, &reply).ok());
  EXPECT_EQ(fs.released(), 3);
}

// Hands out handles from 40 on; Write and Release record the handle they
// get. A create of "/refused" fails.
class HandleFs : public FileSystem {
 public:
  std::string Name() const override { return "handle-fs"; }
  int Create(const Context&, const std::string& path, mode_t,
             FileInfo* fi) override {
    if (path == "/refused") return EEXIST;
    absl::MutexLock lock(&mu_);
    fi->fh = ++next_;
    calls_.push_back("create " + path + " " + std::to_string(fi->fh));
    return 0;
  }
  int Write(const Context&, const std::string& path, const std::string& data,
            off_t, const FileInfo& fi, size_t* written) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("write " + path + " " + std::to_string(fi.fh));
    *written = data.size();
    return 0;
  }
  int Release(const Context&, const std::string& path,
              const FileInfo& fi) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back("release " + path + " " + std::to_string(fi.fh));
    return 0;
  }
  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 40;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

// Appends a create of `path` and a write and release naming it.
void AddFileOps(v1::Batch* batch, const std::string& path) {
  v1::Op* create = batch->add_ops();
  create->set_id(batch->ops_size());
  create->mutable_create()->set_path(path);
  create->mutable_create()->set_mode(S_IFREG | 0644);
  v1::Op* write = batch->add_ops();
  write->set_id(batch->ops_size());
  write->set_fh_from_op(create->id());
  write->mutable_write()->set_path(path);
  write->mutable_write()->set_data("x");
  v1::Op* release = batch->add_ops();
  release->set_id(batch->ops_size());
  release->set_fh_from_op(create->id());
  release->mutable_release()->set_path(path);
}

TEST(BackendServiceTest, OpsInOrderActOnTheHandleOfTheCreateTheyName) {
  HandleFs fs;
  BackendService service(fs, BackendService::Options());
  v1::InitRequest init;
  init.set_mount_id(1);
  v1::InitReply init_reply;
  ASSERT_TRUE(service.Init(nullptr, &init, &init_reply).ok());
  EXPECT_TRUE(init_reply.takes_handles_from_earlier_ops());

  v1::Batch batch;
  batch.set_in_order(true);
  AddFileOps(&batch, "/a");
  AddFileOps(&batch, "/refused");
  AddFileOps(&batch, "/b");
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  ASSERT_EQ(reply.results_size(), 9);
  std::vector<int> errnos;
  for (const v1::OpResult& r : reply.results())
    errnos.push_back(r.posix_errno());
  EXPECT_EQ(errnos, (std::vector<int>{0, 0, 0, EEXIST, EBADF, EBADF, 0, 0, 0}));
  EXPECT_EQ(fs.calls(), (std::vector<std::string>{
                            "create /a 41", "write /a 41", "release /a 41",
                            "create /b 42", "write /b 42", "release /b 42"}));

  // Outside a batch run in order, or alone, nothing says which handle.
  v1::Batch unordered;
  AddFileOps(&unordered, "/c");
  unordered.mutable_ops()->DeleteSubrange(2, 1);  // no release to detach
  v1::BatchResult second;
  ASSERT_TRUE(service.Execute(nullptr, &unordered, &second).ok());
  ASSERT_EQ(second.results_size(), 2);
  for (const v1::OpResult& r : second.results()) {
    EXPECT_EQ(r.posix_errno(), r.id() == 2 ? EBADF : 0) << r.id();
  }
  EXPECT_EQ(fs.calls().size(), 7u);
}

TEST(BackendServiceTest, EmptyAndSingleBatches) {
  BatchFs fs;
  BackendService service(fs, BackendService::Options());
  v1::Batch batch;
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  EXPECT_EQ(reply.results_size(), 0);
  *batch.add_ops() = GetattrOp(3, "/bad");
  ASSERT_TRUE(service.Execute(nullptr, &batch, &reply).ok());
  ASSERT_EQ(reply.results_size(), 1);
  EXPECT_EQ(reply.results(0).id(), 3u);
  EXPECT_EQ(reply.results(0).posix_errno(), ENOENT);
}

}  // namespace
}  // namespace fusehost
