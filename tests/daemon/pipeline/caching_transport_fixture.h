// The fixture of the CachingTransport tests (caching_transport*_test.cc):
// a CachingTransport over a real MetadataCache and a fake backend that
// records ops and lets each test answer them (or not yet), with builders of
// ops and replies and a kernel that records what it is told to drop.

#ifndef FUSE_HOSTD_TESTS_DAEMON_PIPELINE_CACHING_TRANSPORT_FIXTURE_H_
#define FUSE_HOSTD_TESTS_DAEMON_PIPELINE_CACHING_TRANSPORT_FIXTURE_H_

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/caching_transport.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/testing/counting_transport.h"

namespace fusehost {

using AttrLookup = MetadataCache::AttrLookup;

constexpr uint64_t kOpId = 7;
constexpr uint32_t kAttrTtlMs = 10000;

// Records every op; the test answers op i with Answer(i, ...).
class FakeBackend : public CountingTransport {
 public:
  void Send(v1::Op op, Done done) override {
    absl::MutexLock lock(&mu_);
    ops_.push_back(PendingOp{std::move(op), std::move(done)});
  }

  size_t sent() {
    absl::MutexLock lock(&mu_);
    return ops_.size();
  }
  v1::Op op(size_t i) {
    absl::MutexLock lock(&mu_);
    return ops_.at(i).op;
  }
  // Runs op i's completion with `result` (its id set to the op's).
  void Answer(size_t i, v1::OpResult result) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      ASSERT_LT(i, ops_.size());
      ASSERT_TRUE(ops_[i].done) << "op " << i << " answered twice";
      done = std::move(ops_[i].done);
      ops_[i].done = nullptr;
      result.set_id(ops_[i].op.id());
    }
    done(result);
  }

 private:
  absl::Mutex mu_;
  std::vector<PendingOp> ops_ ABSL_GUARDED_BY(mu_);
};

// --- ops ---------------------------------------------------------------------

// An op with id kOpId; `fill` sets its request.
template <typename Fill>
inline v1::Op MakeOp(Fill fill) {
  v1::Op op;
  op.set_id(kOpId);
  op.mutable_caller()->set_uid(1000);
  fill(op);
  return op;
}
inline v1::Op GetattrOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_getattr()->set_path(path); });
}
inline v1::Op ReadlinkOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_readlink()->set_path(path); });
}
inline v1::Op ReaddirOp(const std::string& path, uint64_t offset = 0) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_readdir()->set_path(path);
    op.mutable_readdir()->set_offset(offset);
  });
}
inline v1::Op GetxattrOp(const std::string& path, const std::string& name) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_getxattr()->set_path(path);
    op.mutable_getxattr()->set_name(name);
  });
}
inline v1::Op ListxattrOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_listxattr()->set_path(path); });
}
inline v1::Op CreateOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_create()->set_path(path);
    op.mutable_create()->set_mode(S_IFREG | 0644);
  });
}
inline v1::Op MkdirOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_mkdir()->set_path(path);
    op.mutable_mkdir()->set_mode(0755);
  });
}
inline v1::Op UnlinkOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_unlink()->set_path(path); });
}
inline v1::Op LinkOp(const std::string& from, const std::string& to) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_link()->set_old_path(from);
    op.mutable_link()->set_new_path(to);
  });
}
inline v1::Op RenameOp(const std::string& from, const std::string& to,
                       uint32_t flags = 0) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_rename()->set_old_path(from);
    op.mutable_rename()->set_new_path(to);
    op.mutable_rename()->set_flags(flags);
  });
}
inline v1::Op ChmodOp(const std::string& path, uint32_t mode) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_chmod()->set_path(path);
    op.mutable_chmod()->set_mode(mode);
  });
}
inline v1::Op WriteOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_write()->set_path(path);
    op.mutable_write()->set_fh(3);
    op.mutable_write()->set_data("data");
  });
}

// --- results -----------------------------------------------------------------

inline v1::Attr AttrOf(uint64_t ino, uint32_t mode = S_IFREG | 0644,
                       uint32_t nlink = 1, uint32_t ttl_ms = 0) {
  v1::Attr attr;
  attr.set_ino(ino);
  attr.set_mode(mode);
  attr.set_nlink(nlink);
  attr.set_size(ino * 100);
  attr.set_ttl_ms(ttl_ms);
  return attr;
}
inline v1::OpResult Errno(int posix_errno) {
  return ErrorResult(0, posix_errno);
}
inline v1::OpResult Ok() {
  v1::OpResult r;
  r.mutable_empty();
  return r;
}
inline v1::OpResult GetattrReply(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_getattr()->mutable_attr() = attr;
  return r;
}
inline v1::OpResult EntryReply(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_entry()->mutable_attr() = attr;
  return r;
}
inline v1::OpResult CreateReply(const v1::Attr& attr) {
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(9);
  *r.mutable_create()->mutable_attr() = attr;
  return r;
}
inline v1::OpResult XattrReply(const std::string& data) {
  v1::OpResult r;
  r.mutable_xattr()->set_data(data);
  return r;
}
inline v1::OpResult ReadlinkReply(const std::string& target,
                                  uint32_t ttl_ms = 0) {
  v1::OpResult r;
  r.mutable_readlink()->set_target(target);
  r.mutable_readlink()->set_ttl_ms(ttl_ms);
  return r;
}
struct Dirent {
  std::string name;
  std::optional<v1::Attr> attr;
  uint64_t offset = 0;
};
inline v1::OpResult ReaddirReply(const std::vector<Dirent>& entries,
                                 bool eof = true) {
  v1::OpResult r;
  for (const Dirent& d : entries) {
    v1::DirEntry* e = r.mutable_readdir()->add_entries();
    e->set_name(d.name);
    e->set_offset(d.offset);
    if (d.attr) {
      *e->mutable_attr() = *d.attr;
    } else {
      e->set_type(S_IFREG);
    }
  }
  r.mutable_readdir()->set_eof(eof);
  return r;
}

inline CachePolicy DefaultPolicy() {
  CachePolicy policy;
  policy.attr_ttl = absl::Milliseconds(kAttrTtlMs);
  policy.negative_ttl = absl::Seconds(10);
  policy.listing_ttl = absl::Seconds(10);
  return policy;
}

// Records what the kernel is told to drop.
class RecordingKernel : public KernelCacheNotifier {
 public:
  void PathChanged(const std::string& path) override { paths.push_back(path); }
  void SubtreeChanged(const std::string& path) override {
    subtrees.push_back(path);
  }
  void DirectoryChanged(const std::string& path) override {
    directories.push_back(path);
  }
  uint64_t HardLinkedFileAt(const std::string& path) override {
    auto it = linked_files.find(path);
    return it == linked_files.end() ? 0 : it->second;
  }
  void HardLinksChanged(const std::string& path) override {
    hard_links.push_back(path);
  }
  std::vector<std::string> paths, subtrees, directories, hard_links;
  // What HardLinkedFileAt answers: path -> backend inode number.
  std::map<std::string, uint64_t> linked_files;
};

class CachingTransportTest : public ::testing::Test {
 protected:
  using Slot = std::shared_ptr<std::optional<v1::OpResult>>;

  CachingTransportTest() { Init(DefaultPolicy()); }

  void Init(const CachePolicy& policy, bool no_xattrs = false) {
    transport_.reset();
    cache_ = std::make_unique<MetadataCache>(MetadataCache::Options{});
    CachingTransport::Options options;
    options.no_xattrs = no_xattrs;
    options.policy = policy;
    options.cache = cache_.get();
    options.next = &backend_;
    transport_ = std::make_unique<CachingTransport>(std::move(options));
    transport_->AttachKernel(&kernel_);
  }

  // Sends `op`; the slot is filled when its completion runs (once).
  Slot Start(v1::Op op) {
    Slot slot = std::make_shared<std::optional<v1::OpResult>>();
    transport_->Send(std::move(op), [slot](const v1::OpResult& result) {
      EXPECT_FALSE(slot->has_value()) << "completion ran twice";
      *slot = result;
    });
    return slot;
  }
  // Sends `op`, expects it at the backend, answers it with `reply` and
  // returns what the caller got.
  v1::OpResult Roundtrip(v1::Op op, v1::OpResult reply) {
    size_t before = backend_.sent();
    Slot slot = Start(std::move(op));
    EXPECT_EQ(backend_.sent(), before + 1) << "not sent to the backend";
    EXPECT_FALSE(slot->has_value()) << "answered before the backend";
    if (backend_.sent() != before + 1 || slot->has_value()) return Errno(-1);
    backend_.Answer(before, std::move(reply));
    EXPECT_TRUE(slot->has_value()) << "no completion";
    return slot->value_or(Errno(-1));
  }
  // Sends `op` and expects it answered at once, without the backend.
  v1::OpResult Local(v1::Op op) {
    size_t before = backend_.sent();
    Slot slot = Start(std::move(op));
    EXPECT_EQ(backend_.sent(), before) << "went to the backend";
    EXPECT_TRUE(slot->has_value()) << "not answered from the cache";
    return slot->value_or(Errno(-1));
  }

  // Cache contents.
  void Seed(const std::string& path, const v1::Attr& attr) {
    cache_->PutAttr(path, attr, absl::Seconds(60), cache_->epoch());
  }
  void SeedListing(const std::string& dir,
                   const std::vector<std::string>& names) {
    Listing listing;
    for (const std::string& name : names) listing[name] = {S_IFREG, 0};
    cache_->PutListing(dir, std::move(listing), absl::Seconds(60),
                       cache_->epoch());
  }
  AttrLookup Cached(const std::string& path, v1::Attr* attr = nullptr) {
    v1::Attr ignored;
    return cache_->GetAttr(path, attr ? attr : &ignored);
  }
  // Names in the fresh listing of `dir`; nullopt if none.
  std::optional<std::vector<std::string>> ListingNames(const std::string& dir) {
    std::optional<Listing> listing = cache_->GetListing(dir);
    if (!listing) return std::nullopt;
    std::vector<std::string> names;
    for (const auto& [name, entry] : *listing) names.push_back(name.str());
    return names;
  }

  FakeBackend backend_;
  std::unique_ptr<MetadataCache> cache_;
  std::unique_ptr<CachingTransport> transport_;
  RecordingKernel kernel_;
};

using Names = std::vector<std::string>;

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_PIPELINE_CACHING_TRANSPORT_FIXTURE_H_
