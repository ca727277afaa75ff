// CachingTransport's coherence: what the rest of the daemon tells it
// (notices from the backend, lost notices, other names of a file changed)
// and asks of it (cached listings, shared, and attributes), with and
// without a cache.

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/pipeline/caching_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/caching_transport_fixture.h"

namespace fusehost {
namespace {

v1::Invalidation Notice(v1::Invalidation::Kind kind, const std::string& path) {
  v1::Invalidation notice;
  notice.set_kind(kind);
  notice.set_path(path);
  return notice;
}

// --- coherence: what the rest of the daemon asks and tells ----------------------

TEST_F(CachingTransportTest, ChangedNoticeDropsThePathAndItsParent) {
  Seed("/d", AttrOf(1, S_IFDIR | 0755, 2));
  SeedListing("/d", {"f"});
  Seed("/d/f", AttrOf(5));
  Seed("/other", AttrOf(6));
  transport_->ApplyNotice(Notice(v1::Invalidation::CHANGED, "/d/f"));
  EXPECT_EQ(Cached("/d/f"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d"), AttrLookup::kMiss);
  EXPECT_EQ(ListingNames("/d"), std::nullopt);
  EXPECT_EQ(Cached("/other"), AttrLookup::kHit);
  EXPECT_EQ(kernel_.paths, Names{"/d/f"});
  EXPECT_EQ(kernel_.directories, Names{"/d"});
  EXPECT_TRUE(kernel_.subtrees.empty());
}

// Another client changed, or unlinked, one name of a hard-linked file: the
// file's other names show the same inode (its link count, its times, its
// extended attributes).
TEST_F(CachingTransportTest, ANoticeOnAHardLinkReachesTheFilesOtherNames) {
  for (auto kind : {v1::Invalidation::CHANGED, v1::Invalidation::REMOVED}) {
    SCOPED_TRACE(v1::Invalidation::Kind_Name(kind));
    Init(DefaultPolicy());  // an empty cache
    kernel_ = RecordingKernel();
    Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
    Seed("/d/b", AttrOf(7, S_IFREG | 0644, 2));
    Seed("/other", AttrOf(8, S_IFREG | 0644, 2));
    Roundtrip(GetxattrOp("/d/b", "user.x"), XattrReply("old"));
    transport_->ApplyNotice(Notice(kind, "/a"));
    EXPECT_EQ(Cached("/d/b"), AttrLookup::kMiss);
    EXPECT_EQ(Cached("/other"), AttrLookup::kHit);
    Roundtrip(GetxattrOp("/d/b", "user.x"), XattrReply("new"));
    EXPECT_EQ(kernel_.paths, (Names{"/d/b", "/a"}));
    EXPECT_EQ(kernel_.hard_links, Names{"/a"});  // names the cache lacks
  }
}

// A link through /a drops /a's cached attributes (its link count changed),
// so the cache no longer knows which file /a is; the kernel still does.
TEST_F(CachingTransportTest, ANoticeOnANameTheCacheDroppedAsksTheKernel) {
  Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/other", AttrOf(8, S_IFREG | 0644, 2));
  kernel_.linked_files["/a"] = 7;
  transport_->ApplyNotice(Notice(v1::Invalidation::REMOVED, "/a"));
  EXPECT_EQ(Cached("/b"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/other"), AttrLookup::kHit);
  EXPECT_EQ(kernel_.paths, (Names{"/b", "/a"}));
}

TEST_F(CachingTransportTest, SubtreeNoticeDropsEverythingBelow) {
  Seed("/d/a", AttrOf(5));
  Seed("/d/a/b", AttrOf(6));
  Seed("/d/ab", AttrOf(7));
  transport_->ApplyNotice(Notice(v1::Invalidation::SUBTREE, "/d/a"));
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

// A writable passthrough open was released: the size and times its
// writes left come from the backing file; what else is cached of the file
// stays, but its extended attribute answers (a write drops
// security.capability) and, if a set-id bit went, everything.
TEST_F(CachingTransportTest, WritesAroundDoneKeepsTheAttributesWithNewSize) {
  v1::Attr attr = AttrOf(7, S_IFREG | 0640);
  attr.set_uid(1234);
  Seed("/f", attr);
  Roundtrip(GetxattrOp("/f", "user.x"), XattrReply("old"));
  struct stat backing = {};
  backing.st_mode = S_IFREG | 0600;  // a chmod still queued: not taken
  backing.st_size = 12345;
  backing.st_blocks = 32;
  backing.st_mtim = {1700000000, 5};
  backing.st_ctim = {1700000001, 6};
  transport_->WritesAroundDone("/f", &backing);
  v1::Attr got;
  ASSERT_EQ(Cached("/f", &got), AttrLookup::kHit);
  EXPECT_EQ(got.size(), 12345u);
  EXPECT_EQ(got.blocks(), 32u);
  EXPECT_EQ(got.mtime().sec(), 1700000000);
  EXPECT_EQ(got.mtime().nsec(), 5u);
  EXPECT_EQ(got.ctime().sec(), 1700000001);
  EXPECT_EQ(got.mode(), uint32_t{S_IFREG | 0640});
  EXPECT_EQ(got.uid(), 1234u);
  std::string value;
  EXPECT_EQ(cache_->GetXattr("/f", "user.x", &value), AttrLookup::kMiss);

  // Without the backing file's fstat, or with a set-id bit gone from it.
  Seed("/g", AttrOf(8, S_IFREG | 0644));
  transport_->WritesAroundDone("/g", nullptr);
  EXPECT_EQ(Cached("/g"), AttrLookup::kMiss);
  Seed("/suid", AttrOf(9, S_IFREG | 04755));
  backing.st_mode = S_IFREG | 0755;
  transport_->WritesAroundDone("/suid", &backing);
  EXPECT_EQ(Cached("/suid"), AttrLookup::kMiss);
  Seed("/kept", AttrOf(10, S_IFREG | 04755));
  backing.st_mode = S_IFREG | 04755;
  transport_->WritesAroundDone("/kept", &backing);
  EXPECT_EQ(Cached("/kept"), AttrLookup::kHit);
}

// The old name's attributes were dropped (a notice, a release): the new
// name's attributes say which file it is.
TEST_F(CachingTransportTest, ALinkUpdatesTheFilesOtherNamesWithoutTheOldOnes) {
  Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
  Roundtrip(LinkOp("/a", "/c"), EntryReply(AttrOf(7, S_IFREG | 0644, 3)));
  v1::Attr b;
  if (Cached("/b", &b) == AttrLookup::kHit) {
    EXPECT_EQ(b.nlink(), 3u) << "a name of the file kept the old link count";
  }
  EXPECT_EQ(kernel_.paths, Names{"/b"});
}

// The kernel layer knows the file an unlinked name was, where the daemon's
// cache may no longer hold it; names the kernel forgot are dropped too.
TEST_F(CachingTransportTest, NamesOfFileChangedDropsEveryCachedNameButOne) {
  Seed("/a", AttrOf(7, S_IFREG | 0644, 3));
  Seed("/b", AttrOf(7, S_IFREG | 0644, 3));
  Seed("/d/c", AttrOf(7, S_IFREG | 0644, 3));
  Seed("/other", AttrOf(8, S_IFREG | 0644, 2));
  transport_->NamesOfFileChanged(7, "/a");
  EXPECT_EQ(Cached("/a"), AttrLookup::kHit);
  EXPECT_EQ(Cached("/b"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/d/c"), AttrLookup::kMiss);
  EXPECT_EQ(Cached("/other"), AttrLookup::kHit);
  EXPECT_EQ(kernel_.paths, (Names{"/b", "/d/c"}));
  transport_->NamesOfFileChanged(0, "");  // no number: nothing to match
  EXPECT_EQ(Cached("/a"), AttrLookup::kHit);
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
