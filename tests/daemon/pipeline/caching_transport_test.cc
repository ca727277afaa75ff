// CachingTransport over a real MetadataCache and a fake backend that records
// ops and lets each test answer them (or not yet).

#include "daemon/pipeline/caching_transport.h"

#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"
#include "tests/daemon/testing/counting_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

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
v1::Op MakeOp(Fill fill) {
  v1::Op op;
  op.set_id(kOpId);
  op.mutable_caller()->set_uid(1000);
  fill(op);
  return op;
}
v1::Op GetattrOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_getattr()->set_path(path); });
}
v1::Op ReadlinkOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_readlink()->set_path(path); });
}
v1::Op ReaddirOp(const std::string& path, uint64_t offset = 0) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_readdir()->set_path(path);
    op.mutable_readdir()->set_offset(offset);
  });
}
v1::Op GetxattrOp(const std::string& path, const std::string& name) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_getxattr()->set_path(path);
    op.mutable_getxattr()->set_name(name);
  });
}
v1::Op ListxattrOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_listxattr()->set_path(path); });
}
v1::Op CreateOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_create()->set_path(path);
    op.mutable_create()->set_mode(S_IFREG | 0644);
  });
}
v1::Op MkdirOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_mkdir()->set_path(path);
    op.mutable_mkdir()->set_mode(0755);
  });
}
v1::Op UnlinkOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) { op.mutable_unlink()->set_path(path); });
}
v1::Op RenameOp(const std::string& from, const std::string& to,
                uint32_t flags = 0) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_rename()->set_old_path(from);
    op.mutable_rename()->set_new_path(to);
    op.mutable_rename()->set_flags(flags);
  });
}
v1::Op ChmodOp(const std::string& path, uint32_t mode) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_chmod()->set_path(path);
    op.mutable_chmod()->set_mode(mode);
  });
}
v1::Op WriteOp(const std::string& path) {
  return MakeOp([&](v1::Op& op) {
    op.mutable_write()->set_path(path);
    op.mutable_write()->set_fh(3);
    op.mutable_write()->set_data("data");
  });
}

// --- results -----------------------------------------------------------------

v1::Attr AttrOf(uint64_t ino, uint32_t mode = S_IFREG | 0644,
                uint32_t nlink = 1, uint32_t ttl_ms = 0) {
  v1::Attr attr;
  attr.set_ino(ino);
  attr.set_mode(mode);
  attr.set_nlink(nlink);
  attr.set_size(ino * 100);
  attr.set_ttl_ms(ttl_ms);
  return attr;
}
v1::OpResult Errno(int posix_errno) { return ErrorResult(0, posix_errno); }
v1::OpResult Ok() {
  v1::OpResult r;
  r.mutable_empty();
  return r;
}
v1::OpResult GetattrReply(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_getattr()->mutable_attr() = attr;
  return r;
}
v1::OpResult EntryReply(const v1::Attr& attr) {
  v1::OpResult r;
  *r.mutable_entry()->mutable_attr() = attr;
  return r;
}
v1::OpResult CreateReply(const v1::Attr& attr) {
  v1::OpResult r;
  r.mutable_create()->mutable_open()->set_fh(9);
  *r.mutable_create()->mutable_attr() = attr;
  return r;
}
v1::OpResult XattrReply(const std::string& data) {
  v1::OpResult r;
  r.mutable_xattr()->set_data(data);
  return r;
}
v1::OpResult ReadlinkReply(const std::string& target, uint32_t ttl_ms = 0) {
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
v1::OpResult ReaddirReply(const std::vector<Dirent>& entries, bool eof = true) {
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

CachePolicy DefaultPolicy() {
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
  std::vector<std::string> paths, subtrees, directories;
};

class CachingTransportTest : public ::testing::Test {
 protected:
  using Slot = std::shared_ptr<std::optional<v1::OpResult>>;

  CachingTransportTest() { Init(DefaultPolicy()); }

  void Init(const CachePolicy& policy) {
    transport_.reset();
    cache_ = std::make_unique<MetadataCache>(MetadataCache::Options{});
    CachingTransport::Options options;
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
    for (const auto& [name, entry] : *listing) names.push_back(name);
    return names;
  }

  FakeBackend backend_;
  std::unique_ptr<MetadataCache> cache_;
  std::unique_ptr<CachingTransport> transport_;
  RecordingKernel kernel_;
};

using Names = std::vector<std::string>;

// --- getattr -----------------------------------------------------------------

TEST_F(CachingTransportTest, GetattrMissGoesToTheBackendAndIsCached) {
  v1::OpResult first = Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5)));
  EXPECT_EQ(first.posix_errno(), 0);
  EXPECT_EQ(first.id(), kOpId);
  EXPECT_EQ(first.getattr().attr().ino(), 5u);
  // The backend sent no lifetime: the policy's is filled in.
  EXPECT_EQ(first.getattr().attr().ttl_ms(), kAttrTtlMs);
  EXPECT_EQ(backend_.op(0).getattr().path(), "/f");

  v1::OpResult second = Local(GetattrOp("/f"));
  EXPECT_EQ(second.posix_errno(), 0);
  EXPECT_EQ(second.getattr().attr().ino(), 5u);
  EXPECT_EQ(second.getattr().attr().size(), 500u);
  EXPECT_GT(second.getattr().attr().ttl_ms(), 0u);
  EXPECT_LE(second.getattr().attr().ttl_ms(), kAttrTtlMs);
}

TEST_F(CachingTransportTest, GetattrHitCarriesTheOpId) {
  Seed("/f", AttrOf(5));
  EXPECT_EQ(Local(GetattrOp("/f")).id(), kOpId);
}

TEST_F(CachingTransportTest, BackendLifetimeIsKept) {
  v1::OpResult r =
      Roundtrip(GetattrOp("/f"), GetattrReply(AttrOf(5, S_IFREG, 1, 3000)));
  EXPECT_EQ(r.getattr().attr().ttl_ms(), 3000u);
  EXPECT_LE(Local(GetattrOp("/f")).getattr().attr().ttl_ms(), 3000u);
}

TEST_F(CachingTransportTest, GetattrThroughAHandleAsksTheBackend) {
  Seed("/f", AttrOf(5));
  v1::Op op = GetattrOp("/f");
  op.mutable_getattr()->set_fh(3);
  EXPECT_EQ(Roundtrip(op, GetattrReply(AttrOf(6))).getattr().attr().ino(), 6u);
  // ... and its answer is the newest truth for the path.
  EXPECT_EQ(Local(GetattrOp("/f")).getattr().attr().ino(), 6u);
}

TEST_F(CachingTransportTest, EnoentIsCachedWhenNegativeCachingIsOn) {
  EXPECT_EQ(Roundtrip(GetattrOp("/n"), Errno(ENOENT)).posix_errno(), ENOENT);
  v1::OpResult again = Local(GetattrOp("/n"));
  EXPECT_EQ(again.posix_errno(), ENOENT);
  EXPECT_EQ(again.id(), kOpId);
}

TEST_F(CachingTransportTest, EnoentIsNotCachedWithoutNegativeLifetime) {
  CachePolicy policy = DefaultPolicy();
  policy.negative_ttl = absl::ZeroDuration();
  Init(policy);
  Roundtrip(GetattrOp("/n"), Errno(ENOENT));
  EXPECT_EQ(Roundtrip(GetattrOp("/n"), Errno(ENOENT)).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, OtherErrorsAreNotCached) {
  EXPECT_EQ(Roundtrip(GetattrOp("/f"), Errno(EACCES)).posix_errno(), EACCES);
  Roundtrip(GetattrOp("/f"), Errno(EACCES));
  EXPECT_EQ(Cached("/f"), AttrLookup::kMiss);
}

TEST_F(CachingTransportTest, NameAbsentFromACachedListingIsEnoentLocally) {
  CachePolicy policy = DefaultPolicy();
  policy.negative_ttl = absl::ZeroDuration();  // the listing alone answers
  Init(policy);
  SeedListing("/d", {"a"});
  EXPECT_EQ(Local(GetattrOp("/d/b")).posix_errno(), ENOENT);
  // A listed name without cached attributes still needs the backend.
  EXPECT_EQ(Roundtrip(GetattrOp("/d/a"), GetattrReply(AttrOf(3)))
                .getattr()
                .attr()
                .ino(),
            3u);
  // Without a listing of the parent the backend is asked.
  Roundtrip(GetattrOp("/e/b"), Errno(ENOENT));
}

// --- readdir -----------------------------------------------------------------

TEST_F(CachingTransportTest, WholeReaddirCachesTheListingAndChildAttrs) {
  v1::OpResult r = Roundtrip(
      ReaddirOp("/d"),
      ReaddirReply({{"a", AttrOf(2)}, {"b", AttrOf(3, S_IFDIR | 0755, 2)}}));
  ASSERT_EQ(r.readdir().entries_size(), 2);
  EXPECT_EQ(r.readdir().entries(0).attr().ttl_ms(), kAttrTtlMs);

  EXPECT_EQ(ListingNames("/d"), (Names{"a", "b"}));
  EXPECT_EQ(cache_->GetListing("/d")->at("b").type,
            static_cast<uint32_t>(S_IFDIR));
  EXPECT_EQ(cache_->GetListing("/d")->at("b").ino, 3u);
  EXPECT_EQ(Local(GetattrOp("/d/a")).getattr().attr().ino(), 2u);
  EXPECT_EQ(Local(GetattrOp("/d/b")).getattr().attr().ino(), 3u);
  EXPECT_EQ(Local(GetattrOp("/d/c")).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, PartialReaddirsCacheNoListing) {
  // Resumable cookies.
  Roundtrip(ReaddirOp("/d"),
            ReaddirReply({{"a", AttrOf(2), 1}, {"b", AttrOf(3), 2}}));
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  // Not the start of the directory.
  Roundtrip(ReaddirOp("/e", 5), ReaddirReply({{"a", AttrOf(2)}}));
  EXPECT_EQ(ListingNames("/e"), std::nullopt);
  // More follows.
  Roundtrip(ReaddirOp("/g"), ReaddirReply({{"a", AttrOf(2)}}, /*eof=*/false));
  EXPECT_EQ(ListingNames("/g"), std::nullopt);
  // A failure.
  Roundtrip(ReaddirOp("/h"), Errno(EACCES));
  EXPECT_EQ(ListingNames("/h"), std::nullopt);
}

TEST_F(CachingTransportTest, ReaddirAnsweredAfterAChangeIsNotCached) {
  Slot slot = Start(ReaddirOp("/d"));
  // "/d/new" is made while the listing is on its way.
  Roundtrip(CreateOp("/d/new"), CreateReply(AttrOf(9)));
  backend_.Answer(0, ReaddirReply({{"old", AttrOf(2)}}));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->readdir().entries_size(), 1);
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  EXPECT_EQ(Local(GetattrOp("/d/new")).getattr().attr().ino(), 9u);
}

// --- stale reads -------------------------------------------------------------

TEST_F(CachingTransportTest, GetattrAnsweredAfterAnUnlinkIsNotCached) {
  Slot slot = Start(GetattrOp("/f"));
  Roundtrip(UnlinkOp("/f"), Ok());
  backend_.Answer(0, GetattrReply(AttrOf(5)));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->getattr().attr().ino(), 5u);  // the caller still gets it
  EXPECT_EQ(Local(GetattrOp("/f")).posix_errno(), ENOENT);
}

// --- extended attributes and symlinks ----------------------------------------

TEST_F(CachingTransportTest, GetxattrValuesAndAbsenceAreCached) {
  EXPECT_EQ(
      Roundtrip(GetxattrOp("/f", "user.a"), XattrReply("v")).xattr().data(),
      "v");
  v1::OpResult hit = Local(GetxattrOp("/f", "user.a"));
  EXPECT_EQ(hit.posix_errno(), 0);
  EXPECT_EQ(hit.id(), kOpId);
  EXPECT_EQ(hit.xattr().data(), "v");

  EXPECT_EQ(Roundtrip(GetxattrOp("/f", "user.b"), Errno(ENODATA)).posix_errno(),
            ENODATA);
  EXPECT_EQ(Local(GetxattrOp("/f", "user.b")).posix_errno(), ENODATA);

  // Other errors are not remembered.
  Roundtrip(GetxattrOp("/f", "user.c"), Errno(EACCES));
  Roundtrip(GetxattrOp("/f", "user.c"), Errno(EACCES));
}

TEST_F(CachingTransportTest, ListxattrIsCached) {
  const std::string names("user.a\0user.b\0", 14);
  Roundtrip(ListxattrOp("/f"), XattrReply(names));
  EXPECT_EQ(Local(ListxattrOp("/f")).xattr().data(), names);
  // The list is not the value of some attribute.
  Roundtrip(GetxattrOp("/f", "user.a"), XattrReply("v"));
}

TEST_F(CachingTransportTest, XattrsOfANamelessFileAreNotCached) {
  Roundtrip(GetxattrOp("", "user.a"), XattrReply("v"));
  Roundtrip(GetxattrOp("", "user.a"), XattrReply("v"));
  EXPECT_EQ(cache_->size(), 0u);
}

TEST_F(CachingTransportTest, ReadlinkIsCached) {
  EXPECT_EQ(Roundtrip(ReadlinkOp("/l"), ReadlinkReply("../t")).readlink().target(),
            "../t");
  v1::OpResult hit = Local(ReadlinkOp("/l"));
  EXPECT_EQ(hit.posix_errno(), 0);
  EXPECT_EQ(hit.id(), kOpId);
  EXPECT_EQ(hit.readlink().target(), "../t");

  Roundtrip(ReadlinkOp("/bad"), Errno(EINVAL));
  Roundtrip(ReadlinkOp("/bad"), Errno(EINVAL));
}

// --- mutations ---------------------------------------------------------------

TEST_F(CachingTransportTest, CreateAddsToTheListingAndCachesTheNewFile) {
  SeedListing("/d", {"a"});
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));

  v1::OpResult r = Roundtrip(CreateOp("/d/new"), CreateReply(AttrOf(9)));
  EXPECT_EQ(r.create().open().fh(), 9u);
  EXPECT_EQ(r.create().attr().ttl_ms(), kAttrTtlMs);

  EXPECT_EQ(ListingNames("/d"), (Names{"a", "new"}));
  EXPECT_EQ(cache_->GetListing("/d")->at("new").ino, 9u);
  EXPECT_EQ(cache_->GetListing("/d")->at("new").type,
            static_cast<uint32_t>(S_IFREG));
  EXPECT_EQ(Local(GetattrOp("/d/new")).getattr().attr().ino(), 9u);
  // The parent's times changed.
  EXPECT_EQ(Cached("/d"), AttrLookup::kMiss);
  // A new file has no capabilities: the kernel's check before each write
  // is answered here.
  EXPECT_EQ(Local(GetxattrOp("/d/new", "security.capability")).posix_errno(),
            ENODATA);
}

TEST_F(CachingTransportTest, MkdirCachesAnEmptyListing) {
  SeedListing("/d", {});
  v1::OpResult r =
      Roundtrip(MkdirOp("/d/sub"), EntryReply(AttrOf(4, S_IFDIR | 0755, 2)));
  EXPECT_EQ(r.entry().attr().ttl_ms(), kAttrTtlMs);
  EXPECT_EQ(ListingNames("/d/sub"), Names{});
  EXPECT_EQ(ListingNames("/d"), Names{"sub"});
  EXPECT_EQ(cache_->GetListing("/d")->at("sub").type,
            static_cast<uint32_t>(S_IFDIR));
  EXPECT_EQ(Local(GetattrOp("/d/sub/x")).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, UnlinkRemovesFromTheListingAndMarksAbsent) {
  SeedListing("/d", {"f", "g"});
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));
  Seed("/d/f", AttrOf(5));
  Roundtrip(UnlinkOp("/d/f"), Ok());
  EXPECT_EQ(ListingNames("/d"), Names{"g"});
  EXPECT_EQ(Cached("/d/f"), AttrLookup::kNegative);
  EXPECT_EQ(Cached("/d"), AttrLookup::kMiss);
}

TEST_F(CachingTransportTest, FailedUnlinkChangesNothing) {
  SeedListing("/d", {"f"});
  Seed("/d/f", AttrOf(5));
  EXPECT_EQ(Roundtrip(UnlinkOp("/d/f"), Errno(EACCES)).posix_errno(), EACCES);
  EXPECT_EQ(ListingNames("/d"), Names{"f"});
  EXPECT_EQ(Cached("/d/f"), AttrLookup::kHit);
}

TEST_F(CachingTransportTest, RenameMovesCachedAttrs) {
  Seed("/src", AttrOf(1, S_IFDIR | 0755, 2));
  Seed("/src/dir", AttrOf(2, S_IFDIR | 0755, 2));
  Seed("/src/dir/x", AttrOf(3));
  Seed("/dst/old", AttrOf(4));
  SeedListing("/src", {"dir"});
  SeedListing("/dst", {});

  Roundtrip(RenameOp("/src/dir", "/dst/dir"), Ok());
  v1::Attr moved;
  ASSERT_EQ(Cached("/dst/dir/x", &moved), AttrLookup::kHit);
  EXPECT_EQ(moved.ino(), 3u);
  EXPECT_EQ(Cached("/src/dir/x"), AttrLookup::kMiss);
  // The renamed directory's ctime and both parents changed.
  EXPECT_NE(Cached("/dst/dir"), AttrLookup::kHit);
  EXPECT_EQ(Cached("/src"), AttrLookup::kMiss);
  EXPECT_EQ(ListingNames("/src"), std::nullopt);
  EXPECT_EQ(ListingNames("/dst"), std::nullopt);
  EXPECT_EQ(Cached("/dst/old"), AttrLookup::kHit);  // not involved
}

TEST_F(CachingTransportTest, RenameLeavesTheOldNameAbsent) {
  Seed("/a", AttrOf(2));
  Roundtrip(RenameOp("/a", "/b"), Ok());
  EXPECT_EQ(Cached("/a"), AttrLookup::kNegative);
  EXPECT_EQ(Local(GetattrOp("/a")).posix_errno(), ENOENT);
}

TEST_F(CachingTransportTest, RenameExchangeSwapsSubtrees) {
  Seed("/a/x", AttrOf(3));
  Seed("/b/y", AttrOf(4));
  Roundtrip(RenameOp("/a", "/b", RENAME_EXCHANGE), Ok());
  v1::Attr attr;
  ASSERT_EQ(Cached("/b/x", &attr), AttrLookup::kHit);
  EXPECT_EQ(attr.ino(), 3u);
  ASSERT_EQ(Cached("/a/y", &attr), AttrLookup::kHit);
  EXPECT_EQ(attr.ino(), 4u);
  EXPECT_NE(Cached("/a"), AttrLookup::kNegative);
}

TEST_F(CachingTransportTest, ChmodStoresReturnedAttrsAndDropsXattrs) {
  Seed("/f", AttrOf(5));
  Roundtrip(GetxattrOp("/f", "system.posix_acl_access"), XattrReply("acl"));

  v1::OpResult r = Roundtrip(ChmodOp("/f", 0600), EntryReply(AttrOf(5, S_IFREG | 0600)));
  EXPECT_EQ(r.entry().attr().ttl_ms(), kAttrTtlMs);
  EXPECT_EQ(Local(GetattrOp("/f")).getattr().attr().mode(),
            static_cast<uint32_t>(S_IFREG | 0600));
  // The access ACL mirrors the mode: asked again.
  Roundtrip(GetxattrOp("/f", "system.posix_acl_access"), XattrReply("acl2"));
}

TEST_F(CachingTransportTest, ChmodWithoutReturnedAttrsDropsThem) {
  Seed("/f", AttrOf(5));
  Roundtrip(ChmodOp("/f", 0600), Ok());
  EXPECT_EQ(Cached("/f"), AttrLookup::kMiss);
}

TEST_F(CachingTransportTest, WriteDropsAttrs) {
  Seed("/f", AttrOf(5));
  Roundtrip(WriteOp("/f"), Ok());
  EXPECT_EQ(Cached("/f"), AttrLookup::kMiss);
}

// --- hard links --------------------------------------------------------------

TEST_F(CachingTransportTest, UnlinkOfOneHardLinkDropsTheOtherName) {
  Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/d/b", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/c", AttrOf(8));
  Roundtrip(UnlinkOp("/a"), Ok());
  EXPECT_EQ(Cached("/a"), AttrLookup::kNegative);
  EXPECT_EQ(Cached("/d/b"), AttrLookup::kMiss);  // its nlink changed
  EXPECT_EQ(Cached("/c"), AttrLookup::kHit);
  EXPECT_EQ(kernel_.paths, Names{"/d/b"});
}

TEST_F(CachingTransportTest, ChmodOfOneHardLinkUpdatesTheOtherName) {
  Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
  Roundtrip(ChmodOp("/a", 0600), EntryReply(AttrOf(7, S_IFREG | 0600, 2)));
  v1::Attr other;
  ASSERT_EQ(Cached("/b", &other), AttrLookup::kHit);
  EXPECT_EQ(other.mode(), static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(kernel_.paths, Names{"/b"});
}

TEST_F(CachingTransportTest, SingleLinkFilesTellNobody) {
  Seed("/a", AttrOf(7));
  Roundtrip(UnlinkOp("/a"), Ok());
  Seed("/b", AttrOf(8));
  Roundtrip(ChmodOp("/b", 0600), EntryReply(AttrOf(8, S_IFREG | 0600)));
  EXPECT_TRUE(kernel_.paths.empty());
}

// --- transport failures ------------------------------------------------------

TEST_F(CachingTransportTest, UnlinkLostInTransportDropsWhatItCouldTouch) {
  SeedListing("/d", {"f"});
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));
  Seed("/d/f", AttrOf(5));
  Seed("/d/f2", AttrOf(6));
  EXPECT_EQ(Roundtrip(UnlinkOp("/d/f"), Errno(ETIMEDOUT)).posix_errno(),
            ETIMEDOUT);
  EXPECT_EQ(Cached("/d/f"), AttrLookup::kMiss);  // may exist: not negative
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  EXPECT_EQ(Cached("/d"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d/f2"), AttrLookup::kHit);
}

TEST_F(CachingTransportTest, ParentAndWriteAttributesFromRepliesAreCached) {
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));
  v1::OpResult created = CreateReply(AttrOf(9));
  *created.mutable_parent_attr() = AttrOf(1, S_IFDIR | 0755, 3);
  Roundtrip(CreateOp("/d/new"), created);
  // The directory's attributes after the create, not a miss.
  EXPECT_EQ(Local(GetattrOp("/d")).getattr().attr().nlink(), 3u);

  v1::OpResult written = Ok();
  v1::Attr after = AttrOf(9);
  after.set_size(4096);
  *written.mutable_write()->mutable_attr() = after;
  Roundtrip(WriteOp("/d/new"), written);
  EXPECT_EQ(Local(GetattrOp("/d/new")).getattr().attr().size(), 4096u);

  // A rename between directories: both directories' attributes.
  Seed("/e", AttrOf(2, S_IFDIR | 0755, 2));
  v1::OpResult renamed = Ok();
  *renamed.mutable_parent_attr() = AttrOf(2, S_IFDIR | 0755, 7);
  *renamed.mutable_old_parent_attr() = AttrOf(1, S_IFDIR | 0755, 8);
  Roundtrip(RenameOp("/d/new", "/e/new"), renamed);
  EXPECT_EQ(Local(GetattrOp("/e")).getattr().attr().nlink(), 7u);
  EXPECT_EQ(Local(GetattrOp("/d")).getattr().attr().nlink(), 8u);
}

TEST_F(CachingTransportTest, CreateLostInTransportDropsTheParentListing) {
  SeedListing("/d", {});
  Roundtrip(CreateOp("/d/new"), Errno(ETIMEDOUT));
  // Otherwise "/d/new" would be answered ENOENT, though it may exist.
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  Roundtrip(GetattrOp("/d/new"), GetattrReply(AttrOf(9)));
}

TEST_F(CachingTransportTest, RenameLostInTransportDropsBothNames) {
  Seed("/a", AttrOf(2));
  Seed("/a/x", AttrOf(3));
  Seed("/b", AttrOf(4));
  Roundtrip(RenameOp("/a", "/b"), Errno(ETIMEDOUT));
  EXPECT_EQ(Cached("/a"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/a/x"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/b"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/b/x"), AttrLookup::kMiss);
}

TEST_F(CachingTransportTest, ChmodLostInTransportDropsTheAttrs) {
  Seed("/f", AttrOf(5));
  Roundtrip(ChmodOp("/f", 0600), Errno(ETIMEDOUT));
  EXPECT_EQ(Cached("/f"), AttrLookup::kMiss);
}

// --- passing through ---------------------------------------------------------

TEST_F(CachingTransportTest, OtherOpsAndControlCallsPassThrough) {
  v1::Op read = MakeOp([](v1::Op& op) {
    op.mutable_read()->set_path("/f");
    op.mutable_read()->set_size(10);
  });
  v1::OpResult reply;
  reply.mutable_read()->set_data("0123");
  EXPECT_EQ(Roundtrip(read, reply).read().data(), "0123");
  EXPECT_EQ(backend_.op(0).SerializeAsString(), read.SerializeAsString());
  transport_->CancelAll();
  transport_->WaitIdle();
  EXPECT_EQ(backend_.cancels(), 1);
  EXPECT_EQ(backend_.waits(), 1);
}

// --- coherence: what the rest of the daemon asks and tells ----------------------

TEST_F(CachingTransportTest, ChangedNoticeDropsThePathAndItsParent) {
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));
  SeedListing("/d", {"f"});
  Seed("/d/f", AttrOf(5));
  Seed("/other", AttrOf(6));
  v1::Invalidation notice;
  notice.set_kind(v1::Invalidation::CHANGED);
  notice.set_path("/d/f");
  transport_->ApplyNotice(notice);
  EXPECT_EQ(Cached("/d/f"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d"), AttrLookup::kMiss);
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  EXPECT_EQ(Cached("/other"), AttrLookup::kHit);
  EXPECT_EQ(kernel_.paths, Names{"/d/f"});
  EXPECT_EQ(kernel_.directories, Names{"/d"});
  EXPECT_TRUE(kernel_.subtrees.empty());
}

TEST_F(CachingTransportTest, SubtreeNoticeDropsEverythingBelow) {
  Seed("/d/a", AttrOf(5));
  Seed("/d/a/b", AttrOf(6));
  Seed("/d/ab", AttrOf(7));
  v1::Invalidation notice;
  notice.set_kind(v1::Invalidation::SUBTREE);
  notice.set_path("/d/a");
  transport_->ApplyNotice(notice);
  EXPECT_EQ(Cached("/d/a"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d/a/b"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d/ab"), AttrLookup::kHit);  // a sibling, not below
  EXPECT_EQ(kernel_.subtrees, Names{"/d/a"});
  EXPECT_EQ(kernel_.directories, Names{"/d"});
}

TEST_F(CachingTransportTest, LostNoticesDropEverything) {
  Seed("/a", AttrOf(5));
  SeedListing("/", {"a"});
  transport_->NoticesMayHaveBeenLost();
  EXPECT_EQ(cache_->size(), 0u);
  EXPECT_EQ(kernel_.subtrees, Names{"/"});
}

TEST_F(CachingTransportTest, CachedListingIsSharedNotCopied) {
  EXPECT_EQ(transport_->CachedListing("/d"), nullptr);
  SeedListing("/d", {"a", "b"});
  Seed("/d/a", AttrOf(5));
  std::shared_ptr<const Listing> one = transport_->CachedListing("/d");
  std::shared_ptr<const Listing> two = transport_->CachedListing("/d");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one.get(), two.get()) << "each open copied the listing";
  EXPECT_EQ(one->size(), 2u);
  EXPECT_EQ(transport_->CachedAttr("/d/a")->ino(), 5u);
  EXPECT_EQ(transport_->CachedAttr("/d/b"), std::nullopt);
  // A change through the daemon copies it first: holders keep their view.
  Roundtrip(CreateOp("/d/c"), Ok());
  EXPECT_EQ(one->size(), 2u);
  EXPECT_EQ(transport_->CachedListing("/d")->size(), 3u);
}

TEST_F(CachingTransportTest, OtherNamesChangedForgetsTheirAttributes) {
  Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
  transport_->OtherNamesChanged({"/b"});
  EXPECT_EQ(Cached("/a"), AttrLookup::kHit);
  EXPECT_EQ(Cached("/b"), AttrLookup::kMiss);
}

TEST(CachingTransportWithoutCache, ForwardsEverythingAndPassesNoticesOn) {
  FakeBackend backend;
  CachingTransport::Options options;
  options.next = &backend;
  CachingTransport transport(std::move(options));
  RecordingKernel kernel;
  transport.AttachKernel(&kernel);
  bool done = false;
  transport.Send(GetattrOp("/f"), [&](const v1::OpResult&) { done = true; });
  EXPECT_EQ(backend.sent(), 1u);
  backend.Answer(0, GetattrReply(AttrOf(5)));
  EXPECT_TRUE(done);
  EXPECT_EQ(transport.CachedListing("/"), nullptr);
  v1::Invalidation notice;
  notice.set_path("/f");
  transport.ApplyNotice(notice);
  EXPECT_EQ(kernel.paths, std::vector<std::string>{"/f"});
  EXPECT_EQ(kernel.directories, std::vector<std::string>{"/"});
}

}  // namespace
}  // namespace fusehost
