// A harness for the kernel layer's request handlers without a kernel:
// requests are FakeRequests that record their one reply, the pipeline is a
// FakePipeline that records ops and lets the test answer them, and the
// kernel's notifications are recorded too. The NodeTable is the real one.
//
// Thread use: one test thread.

#ifndef FUSE_HOSTD_TESTS_DAEMON_FUSE_HANDLER_HARNESS_H_
#define FUSE_HOSTD_TESTS_DAEMON_FUSE_HANDLER_HARNESS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/fuse/kernel_invalidator.h"
#include "daemon/fuse/kernel_request.h"
#include "daemon/fuse/node_table.h"
#include "daemon/fuse/request_handlers.h"
#include "daemon/pipeline/cache_coherence.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {

// A request that records its reply.
class FakeRequest : public KernelRequest {
 public:
  enum class Kind {
    kNone, kError, kForgotten, kEntry, kAttr, kReadlink, kOpen, kCreate,
    kData, kWritten, kStatfs, kXattrSize, kLock, kLseek, kIoctl
  };

  explicit FakeRequest(KernelOp op, MountStats* stats = nullptr)
      : KernelRequest(op, stats) {
    caller_.set_uid(1000);
    caller_.set_gid(1000);
    caller_.set_pid(42);
  }

  void FillCaller(v1::Caller* out) override { *out = caller_; }
  // Who the request comes from (uid and gid 1000 unless changed).
  v1::Caller& caller() { return caller_; }

  // What the reply was.
  Kind kind = Kind::kNone;
  int err = -1;
  KernelEntry entry;
  struct stat attr = {};
  double timeout = 0;
  std::string data;  // readlink target, data, dirent buffer, ioctl data
  KernelOpenReply open;
  size_t count = 0;  // written, xattr size
  off_t offset = 0;  // lseek's offset, ioctl's result
  struct flock lock = {};
  // The kernel does not take the next entry/open/create/data reply (as if
  // the request were interrupted).
  bool refuse = false;

 protected:
  int SendError(int e) override { return Set(Kind::kError, (err = e, 0)); }
  void SendNone() override { kind = Kind::kForgotten; }
  int SendEntry(const KernelEntry& e) override {
    entry = e;
    return Taken(Kind::kEntry);
  }
  int SendAttr(const struct stat& st, double t) override {
    attr = st;
    timeout = t;
    return Set(Kind::kAttr, 0);
  }
  int SendReadlink(const std::string& target) override {
    data = target;
    return Set(Kind::kReadlink, 0);
  }
  int SendOpen(const KernelOpenReply& o) override {
    open = o;
    return Taken(Kind::kOpen);
  }
  int SendCreate(const KernelEntry& e, const KernelOpenReply& o) override {
    entry = e;
    open = o;
    return Taken(Kind::kCreate);
  }
  int SendData(absl::string_view d) override {
    data = std::string(d);
    return Taken(Kind::kData);
  }
  int SendWritten(size_t n) override {
    count = n;
    return Set(Kind::kWritten, 0);
  }
  int SendStatfs(const struct statvfs&) override {
    return Set(Kind::kStatfs, 0);
  }
  int SendXattrSize(size_t n) override {
    count = n;
    return Set(Kind::kXattrSize, 0);
  }
  int SendLock(const struct flock& l) override {
    lock = l;
    return Set(Kind::kLock, 0);
  }
  int SendLseek(off_t o) override {
    offset = o;
    return Set(Kind::kLseek, 0);
  }
  int SendIoctl(int result, absl::string_view out) override {
    offset = result;
    data = std::string(out);
    return Set(Kind::kIoctl, 0);
  }

 private:
  int Set(Kind k, int rc) {
    kind = k;
    return rc;
  }
  int Taken(Kind k) {
    kind = k;
    return refuse ? -ENOENT : 0;
  }

  v1::Caller caller_;
};

// The pipeline below the handlers: records ops; the test answers them.
class FakePipeline : public CountingTransport, public CacheCoherence {
 public:
  void Send(v1::Op op, Done done) override {
    ops.push_back(PendingOp{std::move(op), std::move(done)});
  }
  // Records how many ops went together, then keeps each like Send.
  void SendAll(std::vector<PendingOp> group) override {
    groups.push_back(group.size());
    for (PendingOp& p : group) Send(std::move(p.op), std::move(p.done));
  }
  // Answers op `i` (each at most once).
  void Answer(size_t i, const v1::OpResult& result) {
    ASSERT_LT(i, ops.size());
    ASSERT_TRUE(ops[i].done) << "op " << i << " answered twice";
    OpTransport::Done done = std::move(ops[i].done);
    ops[i].done = nullptr;
    done(result);
  }
  const v1::Op& op(size_t i) const { return ops.at(i).op; }

  // CacheCoherence.
  std::shared_ptr<const Listing> CachedListing(
      const std::string& path) override {
    if (listings_expired) return nullptr;
    return LastListing(path);
  }
  std::shared_ptr<const Listing> LastListing(const std::string& path) override {
    auto it = more_listings.find(path);
    if (it != more_listings.end()) {
      return std::make_shared<const Listing>(it->second);
    }
    if (cached_path != path) return nullptr;
    return std::make_shared<const Listing>(cached_listing);
  }
  std::optional<v1::Attr> CachedAttr(const std::string& path) override {
    auto it = cached_attrs.find(path);
    if (it == cached_attrs.end()) return std::nullopt;
    return it->second;
  }
  // With ttl_ms as the cache sets it: 0 past the lifetime, else 1 at least.
  std::optional<v1::Attr> LastAttr(const std::string& path) override {
    std::optional<v1::Attr> attr;
    auto it = expired_attrs.find(path);
    if (it != expired_attrs.end()) {
      attr = it->second;
      attr->set_ttl_ms(0);
    } else if ((attr = CachedAttr(path)) && attr->ttl_ms() == 0) {
      attr->set_ttl_ms(1);
    }
    return attr;
  }
  void OtherNamesChanged(const std::vector<std::string>& paths) override {
    other_names.insert(other_names.end(), paths.begin(), paths.end());
  }
  void NamesOfFileChanged(uint64_t backend_ino,
                          const std::string& except) override {
    files_changed.emplace_back(backend_ino, except);
  }
  void ApplyNotice(const v1::Invalidation&) override {}
  void NoticesMayHaveBeenLost() override {}

  std::vector<PendingOp> ops;
  std::vector<size_t> groups;  // sizes of SendAll calls, in order
  std::string cached_path;  // the one directory with a cached listing
  Listing cached_listing;
  std::map<std::string, Listing> more_listings;  // other cached directories
  std::vector<std::string> other_names;
  // NamesOfFileChanged calls: (backend inode number, name kept).
  std::vector<std::pair<uint64_t, std::string>> files_changed;
  std::map<std::string, v1::Attr> cached_attrs;  // what CachedAttr knows
  // Past their lifetime: only LastListing and LastAttr know these.
  bool listings_expired = false;
  std::map<std::string, v1::Attr> expired_attrs;
};

class RecordingNotify : public KernelNotify {
 public:
  void InvalidateNode(uint64_t node, bool data) override {
    nodes.emplace_back(node, data);
  }
  void InvalidateEntry(uint64_t parent, const std::string& name) override {
    entries.emplace_back(parent, name);
  }
  std::vector<std::pair<uint64_t, bool>> nodes;
  std::vector<std::pair<uint64_t, std::string>> entries;
};

// Builders of backend results.
inline v1::Attr FileAttr(uint64_t ino, uint32_t mode = S_IFREG | 0644,
                         uint32_t nlink = 1) {
  v1::Attr a;
  a.set_ino(ino);
  a.set_mode(mode);
  a.set_nlink(nlink);
  a.set_size(100);
  return a;
}
inline v1::OpResult Errno(int e) {
  v1::OpResult r;
  r.set_posix_errno(e);
  return r;
}
inline v1::OpResult Ok() { return v1::OpResult(); }
inline v1::OpResult GetattrResult(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_getattr()->mutable_attr() = attr;
  return r;
}
inline v1::OpResult EntryResult(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_entry()->mutable_attr() = attr;
  return r;
}

class HandlerTest : public ::testing::Test {
 protected:
  HandlerTest() : invalidator_(&nodes_, &notify_) {
    KernelTimeouts timeouts;
    timeouts.attr = absl::Seconds(2);
    Rebuild(timeouts, /*backend_ioctl=*/false);
  }
  // Rebuilds the handlers with other timeouts.
  void SetTimeouts(const KernelTimeouts& timeouts) {
    Rebuild(timeouts, /*backend_ioctl=*/false);
  }
  // Rebuilds the handlers for a backend that implements ioctl, or not.
  void SetBackendIoctl(bool backend_ioctl) {
    KernelTimeouts timeouts;
    timeouts.attr = absl::Seconds(2);
    Rebuild(timeouts, backend_ioctl);
  }
  void Rebuild(const KernelTimeouts& timeouts, bool backend_ioctl) {
    RequestHandlers::Options options;
    options.nodes = &nodes_;
    options.transport = &pipeline_;
    options.coherence = &pipeline_;
    options.invalidator = &invalidator_;
    options.timeouts = timeouts;
    options.backend_ioctl = backend_ioctl;
    options.listing_budget = listing_budget_;
    options.lists_by_path = &lists_by_path_;
    options.unsupported_xattrs = unsupported_xattrs_;
    options.no_xattrs = no_xattrs_;
    options.handles = handles_;
    options.contents_ahead_files = contents_ahead_files_;
    handlers_ = std::make_unique<RequestHandlers>(options);
  }

  std::shared_ptr<FakeRequest> Req(KernelOp op) {
    return std::make_shared<FakeRequest>(op, &stats_);
  }
  // Looks `name` up in `parent` and answers with `attr`: the node id.
  uint64_t Known(uint64_t parent, const std::string& name,
                 const v1::Attr& attr) {
    auto req = Req(KernelOp::kLookup);
    handlers_->Lookup(req, parent, name);
    pipeline_.Answer(pipeline_.ops.size() - 1, GetattrResult(attr));
    EXPECT_EQ(req->kind, FakeRequest::Kind::kEntry);
    return req->entry.node;
  }
  size_t sent() const { return pipeline_.ops.size(); }

  // What open directories may hold (none by default: unbounded); set before
  // Rebuild.
  MemoryBudget* listing_budget_ = nullptr;
  // Extended attribute names the backend does not keep; set before Rebuild.
  XattrExclusions unsupported_xattrs_;
  // The backend keeps no extended attributes; set before Rebuild.
  bool no_xattrs_ = false;
  // Handle tokens (null: none), and small files fetched ahead per fetch;
  // set before Rebuild.
  HandleMap* handles_ = nullptr;
  size_t contents_ahead_files_ = 0;
  // The backend lists directories by path (may change at any time).
  std::atomic<bool> lists_by_path_{false};

  NodeTable nodes_;
  FakePipeline pipeline_;
  RecordingNotify notify_;
  KernelInvalidator invalidator_;  // never started: queued items stay queued
  MountStats stats_;
  std::unique_ptr<RequestHandlers> handlers_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_FUSE_HANDLER_HARNESS_H_
