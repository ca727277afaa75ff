// MetadataCache's extended attributes: values, absence and its errno, names
// known from the attributes, unsupported names, and size limits.

#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/pipeline/metadata_cache.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/pipeline/metadata_cache_fixture.h"

namespace fusehost {
namespace {

// --- extended attributes -----------------------------------------------------

TEST_F(MetadataCacheTest, Xattrs) {
  EXPECT_EQ(Xattr("/f", "user.a"), AttrLookup::kMiss);
  Put("/f", 3);
  PutX("/f", "user.a", "value");
  PutX("/f", "security.capability", std::nullopt);
  PutX("/f", "", std::string("user.a\0", 7));  // the listxattr answer

  std::string value;
  EXPECT_EQ(Xattr("/f", "user.a", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "value");
  EXPECT_EQ(Xattr("/f", "security.capability"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/f", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, std::string("user.a\0", 7));
  // The list answers for names never asked, except trusted.* ones, which
  // lists given to unprivileged callers leave out.
  EXPECT_EQ(Xattr("/f", "user.unasked"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/f", "trusted.unasked"), AttrLookup::kMiss);
  EXPECT_EQ(Xattr("/g", "user.a"), AttrLookup::kMiss);

  // An empty value is a value.
  PutX("/f", "user.empty", "");
  EXPECT_EQ(Xattr("/f", "user.empty", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "");
}

TEST_F(MetadataCacheTest, NameListInAttrAnswersAbsentNames) {
  v1::Attr none = AttrOf(7, S_IFREG | 0644, 1);
  none.set_xattr_names_known(true);
  cache_.PutAttr("/none", none, kLong, cache_.epoch());
  v1::Attr some = AttrOf(8, S_IFREG | 0644, 1);
  some.set_xattr_names_known(true);
  some.add_xattr_names("user.a");
  some.add_xattr_names("security.selinux");
  cache_.PutAttr("/some", some, kLong, cache_.epoch());
  Put("/unlisted", 9);  // names not known

  std::string value = "x";
  int err = 0;
  EXPECT_EQ(cache_.GetXattr("/none", "system.posix_acl_access", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, ENODATA);
  EXPECT_EQ(Xattr("/none", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, "");
  EXPECT_EQ(Xattr("/none", "trusted.t"), AttrLookup::kMiss);

  EXPECT_EQ(Xattr("/some", "system.posix_acl_access"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/some", "user.a"), AttrLookup::kMiss);  // value unknown
  EXPECT_EQ(Xattr("/some", "", &value), AttrLookup::kHit);
  EXPECT_EQ(value, std::string("user.a\0security.selinux\0", 24));

  EXPECT_EQ(Xattr("/unlisted", "user.a"), AttrLookup::kMiss);

  // A value fetched later joins the list's answers.
  PutX("/none", "trusted.t", std::nullopt);
  EXPECT_EQ(Xattr("/none", "trusted.t"), AttrLookup::kNegative);
  EXPECT_EQ(Xattr("/none", "user.b"), AttrLookup::kNegative);

  // setxattr through the daemon (or a CHANGED notice) forgets it all.
  cache_.DropXattrs("/none");
  EXPECT_EQ(Xattr("/none", "user.b"), AttrLookup::kMiss);
  EXPECT_EQ(InoOf("/none"), 7);

  // Attributes without a list leave earlier answers alone; a malformed list
  // is ignored.
  v1::Attr bad = AttrOf(8, S_IFREG | 0644, 1);
  bad.set_xattr_names_known(true);
  bad.add_xattr_names(std::string("a\0b", 3));
  cache_.PutAttr("/some", bad, kLong, cache_.epoch());
  EXPECT_EQ(Xattr("/some", "user.zzz"), AttrLookup::kMiss);
}

TEST_F(MetadataCacheTest, XattrAbsenceKeepsItsErrno) {
  Put("/f", 3);
  cache_.PutXattr("/f", "security.selinux", nullptr, absl::Seconds(10),
                  cache_.epoch(), EOPNOTSUPP);
  cache_.PutXattr("/f", "user.none", nullptr, absl::Seconds(10), cache_.epoch());
  std::string value;
  int err = 0;
  EXPECT_EQ(cache_.GetXattr("/f", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(cache_.GetXattr("/f", "user.none", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, ENODATA);
}

TEST_F(MetadataCacheTest, UnsupportedXattrNameIsAnsweredForEveryPath) {
  v1::Attr none = AttrOf(7, S_IFREG | 0644, 1);
  none.set_xattr_names_known(true);
  cache_.PutAttr("/f", none, kLong, cache_.epoch());
  cache_.PutUnsupportedXattr("security.selinux", absl::Milliseconds(50));
  std::string value;
  int err = 0;
  // Not ENODATA from the name list: the filesystem lacks the namespace.
  EXPECT_EQ(cache_.GetXattr("/f", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(cache_.GetXattr("/never/seen", "security.selinux", &value, &err),
            AttrLookup::kNegative);
  EXPECT_EQ(err, EOPNOTSUPP);
  EXPECT_EQ(Xattr("/never/seen", "security.other"), AttrLookup::kMiss);

  cache_.XattrSupported("security.selinux");  // a setxattr of it worked
  EXPECT_EQ(Xattr("/never/seen", "security.selinux"), AttrLookup::kMiss);

  cache_.PutUnsupportedXattr("security.selinux", absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(40));
  EXPECT_EQ(Xattr("/never/seen", "security.selinux"), AttrLookup::kMiss);
}

TEST_F(MetadataCacheTest, DropXattrsKeepsAttributes) {
  Put("/f", 3);
  PutX("/f", "user.a", "v");
  PutX("/f", "user.b", std::nullopt);
  cache_.DropXattrs("/f");
  EXPECT_EQ(Xattr("/f", "user.a"), AttrLookup::kMiss);
  EXPECT_EQ(Xattr("/f", "user.b"), AttrLookup::kMiss);
  EXPECT_EQ(InoOf("/f"), 3);
  // An entry that held only extended attributes goes away.
  PutX("/x", "user.a", "v");
  cache_.DropXattrs("/x");
  EXPECT_EQ(cache_.size(), 1u);
}

TEST_F(MetadataCacheTest, LargeXattrValuesAreNotKept) {
  Put("/f", 3);
  PutX("/f", "user.max", std::string(MetadataCache::kMaxCachedXattr, 'x'));
  PutX("/f", "user.big",
       std::string(MetadataCache::kMaxCachedXattr + 1, 'x'));
  std::string value;
  EXPECT_EQ(Xattr("/f", "user.max", &value), AttrLookup::kHit);
  EXPECT_EQ(value.size(), MetadataCache::kMaxCachedXattr);
  EXPECT_EQ(Xattr("/f", "user.big"), AttrLookup::kMiss);
}
// Other names of a hard-linked file are found by their inode number: a
// name whose attributes are dropped keeps its place in that index while its
// extended attribute answers live, so a change through another name still
// reaches them.
TEST_F(MetadataCacheTest, AHardLinkedNameStaysFoundWhenItsAttributesAreDropped) {
  Put("/a", 5, 2);
  Put("/b", 5, 2);
  PutX("/b", "user.k", "v");
  cache_.DropAttr("/b");
  EXPECT_EQ(Xattr("/b", "user.k"), AttrLookup::kHit);
  EXPECT_EQ(cache_.PathsWithIno(5, "/a"), std::vector<std::string>{"/b"});
  uint64_t ino = 0;
  uint32_t nlink = 0;
  ASSERT_TRUE(cache_.GetIno("/b", &ino, &nlink));
  EXPECT_EQ(ino, 5u);
  EXPECT_EQ(nlink, 2u);
  // Likewise when new attributes come with no lifetime, and after a rename.
  PutX("/a", "user.k", "v");
  cache_.UpdateAttr("/a", AttrOf(5, S_IFREG | 0644, 2), absl::ZeroDuration());
  cache_.Rename("/b", "/c", /*exchange=*/false);
  EXPECT_EQ(cache_.PathsWithIno(5, ""),
            (std::vector<std::string>{"/a", "/c"}));
  // Gone once nothing of the entry is left.
  cache_.DropXattrs("/c");
  EXPECT_EQ(cache_.PathsWithIno(5, ""), std::vector<std::string>{"/a"});
}

}  // namespace
}  // namespace fusehost
