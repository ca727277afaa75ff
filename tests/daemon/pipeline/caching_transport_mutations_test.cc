// CachingTransport's changes: what creating, removing, renaming, chmod and
// writes do to the cache, also across hard links and when the reply is lost
// in transport.

#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "daemon/pipeline/caching_transport.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/caching_transport_fixture.h"

namespace fusehost {
namespace {

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

TEST_F(CachingTransportTest, ABackendWithoutXattrsHasNothingNotedOfANewFiles) {
  // The kernel never asks it (answered ENOSYS above): no cache entry per
  // created file.
  Init(DefaultPolicy(), /*no_xattrs=*/true);
  SeedListing("/d", {});
  Roundtrip(CreateOp("/d/new"), CreateReply(AttrOf(9)));
  EXPECT_EQ(
      Roundtrip(GetxattrOp("/d/new", "security.capability"), Errno(ENOSYS))
          .posix_errno(),
      ENOSYS);
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

// A new directory inherits its parent's default ACL (POSIX ACLs): where the
// parent has none, the directory has none either, and write-behind's creates
// in it need not ask. An inherited one is left to the backend to tell.
TEST_F(CachingTransportTest,
       ANewDirectoryHasNoDefaultAclWhereItsParentHasNone) {
  constexpr char kDefault[] = "system.posix_acl_default";
  SeedListing("/none", {});
  SeedListing("/acl", {});
  SeedListing("/unknown", {});
  Roundtrip(GetxattrOp("/none", kDefault), Errno(ENODATA));
  Roundtrip(GetxattrOp("/acl", kDefault), XattrReply("acl"));
  Roundtrip(MkdirOp("/none/sub"), EntryReply(AttrOf(4, S_IFDIR | 0755, 2)));
  Roundtrip(MkdirOp("/acl/sub"), EntryReply(AttrOf(5, S_IFDIR | 0755, 2)));
  Roundtrip(MkdirOp("/unknown/sub"), EntryReply(AttrOf(6, S_IFDIR | 0755, 2)));
  // A refused mkdir made nothing.
  Roundtrip(MkdirOp("/none/refused"), Errno(EACCES));

  EXPECT_EQ(Local(GetxattrOp("/none/sub", kDefault)).posix_errno(), ENODATA);
  EXPECT_EQ(Roundtrip(GetxattrOp("/acl/sub", kDefault), XattrReply("acl"))
                .xattr()
                .data(),
            "acl");
  EXPECT_EQ(Roundtrip(GetxattrOp("/unknown/sub", kDefault), Errno(ENODATA))
                .posix_errno(),
            ENODATA);
  EXPECT_EQ(Roundtrip(GetxattrOp("/none/refused", kDefault), Errno(ENOENT))
                .posix_errno(),
            ENOENT);
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

// A file known to have no access ACL has none after a chmod either: the
// kernel's request for it after the chmod, and the file's other attributes,
// are answered from the cache.
TEST_F(CachingTransportTest, ChmodKeepsAnAccessAclKnownAbsent) {
  Seed("/f", AttrOf(5));
  Roundtrip(GetxattrOp("/f", "system.posix_acl_access"), Errno(ENODATA));
  Roundtrip(GetxattrOp("/f", "user.k"), XattrReply("v"));
  Roundtrip(ChmodOp("/f", 0600), EntryReply(AttrOf(5, S_IFREG | 0600)));
  EXPECT_EQ(Local(GetxattrOp("/f", "system.posix_acl_access")).posix_errno(),
            ENODATA);
  EXPECT_EQ(Local(GetxattrOp("/f", "user.k")).xattr().data(), "v");
}

// A change of owner removes a file's capabilities: what is cached of its
// extended attributes stays only where it is known to have none.
TEST_F(CachingTransportTest, ChownDropsXattrsUnlessTheFileHasNoCapabilities) {
  auto chown = [](const std::string& path) {
    return MakeOp([path](v1::Op& op) {
      op.mutable_chown()->set_path(path);
      op.mutable_chown()->set_uid(1000);
    });
  };
  Seed("/with", AttrOf(5));
  Seed("/without", AttrOf(6));
  Roundtrip(GetxattrOp("/with", "security.capability"), XattrReply("cap"));
  Roundtrip(GetxattrOp("/without", "security.capability"), Errno(ENODATA));
  Roundtrip(chown("/with"), EntryReply(AttrOf(5)));
  Roundtrip(chown("/without"), EntryReply(AttrOf(6)));
  Roundtrip(GetxattrOp("/with", "security.capability"), Errno(ENODATA));
  EXPECT_EQ(
      Local(GetxattrOp("/without", "security.capability")).posix_errno(),
      ENODATA);
}

// Extended attributes are cached per name: a change through one name of a
// hard-linked file drops them for its other names too.
TEST_F(CachingTransportTest, AnXattrChangeThroughAHardLinkReachesTheOtherNames) {
  auto setxattr = MakeOp([](v1::Op& op) {
    op.mutable_setxattr()->set_path("/a");
    op.mutable_setxattr()->set_name("system.posix_acl_access");
    op.mutable_setxattr()->set_value("acl2");
  });
  auto removexattr = MakeOp([](v1::Op& op) {
    op.mutable_removexattr()->set_path("/a");
    op.mutable_removexattr()->set_name("system.posix_acl_access");
  });
  for (const v1::Op& change :
       {setxattr, removexattr, ChmodOp("/a", 0600)}) {
    SCOPED_TRACE(change.ShortDebugString());
    Init(DefaultPolicy());  // an empty cache
    Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
    Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
    Roundtrip(GetxattrOp("/b", "system.posix_acl_access"), XattrReply("acl"));
    Local(GetxattrOp("/b", "system.posix_acl_access"));  // cached
    Roundtrip(change, Ok());
    Roundtrip(GetxattrOp("/b", "system.posix_acl_access"), XattrReply("acl2"));
  }
}

// A name whose attributes a write dropped keeps its extended attribute
// answers (asked before every write), and a change through another name
// still reaches them.
TEST_F(CachingTransportTest, AnXattrChangeReachesANameWithoutCachedAttributes) {
  Seed("/a", AttrOf(7, S_IFREG | 0644, 2));
  Seed("/b", AttrOf(7, S_IFREG | 0644, 2));
  Roundtrip(GetxattrOp("/b", "user.k"), XattrReply("v"));
  Roundtrip(WriteOp("/b"), Ok());
  EXPECT_EQ(Cached("/b"), AttrLookup::kMiss);
  Local(GetxattrOp("/b", "user.k"));  // still cached
  auto setxattr = MakeOp([](v1::Op& op) {
    op.mutable_setxattr()->set_path("/a");
    op.mutable_setxattr()->set_name("user.k");
    op.mutable_setxattr()->set_value("w");
  });
  Roundtrip(setxattr, Ok());
  // As the kernel layer does after every change (StaleSiblings): the write
  // dropped /a's entry, so only the file's inode number finds /b.
  transport_->NamesOfFileChanged(7, "/a");
  Roundtrip(GetxattrOp("/b", "user.k"), XattrReply("w"));
}

// A file cached with one name is outside the index of hard links: a link
// drops its old name's extended attribute answers, which a change through
// the new name could not find.
TEST_F(CachingTransportTest, ALinkDropsTheOldNamesXattrAnswers) {
  Seed("/f", AttrOf(9));
  Roundtrip(GetxattrOp("/f", "user.k"), XattrReply("v"));
  Roundtrip(LinkOp("/f", "/g"), EntryReply(AttrOf(9, S_IFREG | 0644, 2)));
  auto setxattr = MakeOp([](v1::Op& op) {
    op.mutable_setxattr()->set_path("/g");
    op.mutable_setxattr()->set_name("user.k");
    op.mutable_setxattr()->set_value("w");
  });
  Roundtrip(setxattr, Ok());
  Roundtrip(GetxattrOp("/f", "user.k"), XattrReply("w"));
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
}  // namespace
}  // namespace fusehost
