#include "daemon/mounting/mount_options.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Parses text that must be valid.
MountOptions Parse(const std::string& text) {
  absl::StatusOr<MountOptions> opts = ParseMountOptions(text);
  EXPECT_TRUE(opts.ok()) << text << ": " << opts.status();
  return opts.ok() ? *opts : MountOptions();
}

// Expects text to be rejected with a message naming `option`.
void ExpectRejected(const std::string& text, const std::string& option) {
  absl::StatusOr<MountOptions> opts = ParseMountOptions(text);
  ASSERT_FALSE(opts.ok()) << text << " was accepted";
  EXPECT_EQ(opts.status().code(), absl::StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(std::string(opts.status().message()), HasSubstr(option)) << text;
}

TEST(MountOptionsTest, Defaults) {
  for (const char* text : {"", ",", ",,,"}) {
    MountOptions opts = Parse(text);
    EXPECT_FALSE(opts.read_only);
    EXPECT_FALSE(opts.allow_other);
    EXPECT_TRUE(opts.default_permissions);
    EXPECT_TRUE(opts.nosuid);
    EXPECT_TRUE(opts.nodev);
    EXPECT_FALSE(opts.noexec);
    EXPECT_FALSE(opts.noatime);
    EXPECT_EQ(opts.fsname, "");
    EXPECT_EQ(opts.subtype, "hostd");
    // Unset: the backend's wish (or the daemon's default) applies.
    EXPECT_EQ(opts.entry_timeout, std::nullopt);
    EXPECT_EQ(opts.attr_timeout, std::nullopt);
    EXPECT_EQ(opts.negative_timeout, std::nullopt);
    EXPECT_EQ(opts.cache_entries, 1000000u);
    EXPECT_EQ(opts.call_timeout, absl::Seconds(30));
    EXPECT_EQ(opts.max_write, 0u);
    EXPECT_THAT(opts.backend_options, IsEmpty());
  }
}

// One boolean option: the text that sets it and the value it should get.
struct FlagCase {
  const char* text;
  bool MountOptions::*field;
  bool expected;
};

class MountOptionsFlagTest : public ::testing::TestWithParam<FlagCase> {};

TEST_P(MountOptionsFlagTest, SetsField) {
  const FlagCase& c = GetParam();
  MountOptions opts = Parse(c.text);
  EXPECT_EQ(opts.*(c.field), c.expected) << c.text;
  EXPECT_THAT(opts.backend_options, IsEmpty()) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    FlagsAndNegations, MountOptionsFlagTest,
    ::testing::Values(
        FlagCase{"ro", &MountOptions::read_only, true},
        FlagCase{"ro,rw", &MountOptions::read_only, false},
        FlagCase{"allow_other", &MountOptions::allow_other, true},
        FlagCase{"no_default_permissions", &MountOptions::default_permissions,
                 false},
        FlagCase{"no_default_permissions,default_permissions",
                 &MountOptions::default_permissions, true},
        FlagCase{"suid", &MountOptions::nosuid, false},
        FlagCase{"suid,nosuid", &MountOptions::nosuid, true},
        FlagCase{"dev", &MountOptions::nodev, false},
        FlagCase{"dev,nodev", &MountOptions::nodev, true},
        FlagCase{"noexec", &MountOptions::noexec, true},
        FlagCase{"noexec,exec", &MountOptions::noexec, false},
        FlagCase{"noatime", &MountOptions::noatime, true},
        FlagCase{"noatime,atime", &MountOptions::noatime, false},
        FlagCase{"noatime,relatime", &MountOptions::noatime, false}));

TEST(MountOptionsTest, FlagWithValueIsRejected) {
  for (const char* flag :
       {"ro", "rw", "allow_other", "default_permissions",
        "no_default_permissions", "nosuid", "suid", "nodev", "dev", "noexec",
        "exec", "noatime", "atime", "relatime"}) {
    std::string text = std::string(flag) + "=1";
    ExpectRejected(text, std::string("option ") + flag + " takes no value");
    ExpectRejected(std::string(flag) + "=", flag);
  }
}

TEST(MountOptionsTest, FsnameAndSubtype) {
  MountOptions opts = Parse("fsname=mybackend:/export,subtype=memfs");
  EXPECT_EQ(opts.fsname, "mybackend:/export");
  EXPECT_EQ(opts.subtype, "memfs");
  EXPECT_THAT(opts.backend_options, IsEmpty());
  EXPECT_EQ(Parse("fsname=a=b").fsname, "a=b");  // only the first '=' splits
  EXPECT_EQ(Parse(std::string("fsname=") + std::string(255, 'x')).fsname,
            std::string(255, 'x'));
}

TEST(MountOptionsTest, BadFsnameOrSubtypeIsRejected) {
  for (const char* key : {"fsname", "subtype"}) {
    std::string prefix = std::string(key) + "=";
    ExpectRejected(prefix, key);  // empty
    ExpectRejected(prefix + "a b", key);
    ExpectRejected(prefix + "a\tb", key);
    ExpectRejected(prefix + "a\nb", key);
    ExpectRejected(prefix + std::string("a\0b", 3), key);
    ExpectRejected(prefix + std::string(256, 'x'), key);
  }
}

TEST(MountOptionsTest, CommaAlwaysEndsAnItem) {
  // A comma cannot reach a name: it separates options (there is no escape),
  // so what follows it is an option of its own.
  MountOptions opts = Parse("fsname=a,b");
  EXPECT_EQ(opts.fsname, "a");
  EXPECT_THAT(opts.backend_options, ElementsAre("b"));
  ExpectRejected("subtype=,x", "subtype");
}

TEST(MountOptionsTest, Timeouts) {
  MountOptions opts =
      Parse("entry_timeout=2.5,attr_timeout=0,negative_timeout=86400,"
            "timeout=5");
  EXPECT_EQ(opts.entry_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(opts.attr_timeout, absl::ZeroDuration());
  EXPECT_EQ(opts.negative_timeout, absl::Hours(24));
  EXPECT_EQ(opts.call_timeout, absl::Seconds(5));
  EXPECT_EQ(Parse("attr_timeout=1e2").attr_timeout, absl::Seconds(100));
  EXPECT_EQ(Parse("cache_entries=0").cache_entries, 0u);
  EXPECT_FALSE(ParseMountOptions("cache_entries=-1").ok());
  EXPECT_FALSE(ParseMountOptions("cache_entries=lots").ok());
  EXPECT_EQ(Parse("timeout=0.25").call_timeout, absl::Milliseconds(250));
  EXPECT_EQ(Parse("").keepalive, absl::Seconds(10));
  EXPECT_EQ(Parse("keepalive=3").keepalive, absl::Seconds(3));
  EXPECT_EQ(Parse("keepalive=0").keepalive, absl::ZeroDuration());
  EXPECT_FALSE(ParseMountOptions("keepalive=0.5").ok());
  EXPECT_FALSE(ParseMountOptions("keepalive=soon").ok());
}

TEST(MountOptionsTest, BadTimeoutsAreRejected) {
  for (const char* key :
       {"entry_timeout", "attr_timeout", "negative_timeout", "timeout"}) {
    for (const char* value :
         {"-1", "-0.5", "nan", "NaN", "inf", "abc", "1s", "", "86400.5",
          "100000"}) {
      ExpectRejected(std::string(key) + "=" + value,
                     std::string("option ") + key + "=");
    }
  }
}

TEST(MountOptionsTest, CallTimeoutMinimum) {
  EXPECT_EQ(Parse("timeout=0.01").call_timeout, absl::Milliseconds(10));
  ExpectRejected("timeout=0.005", "timeout=");
  ExpectRejected("timeout=0", "timeout=");
  // The other timeouts may be 0.
  EXPECT_EQ(Parse("entry_timeout=0").entry_timeout, absl::ZeroDuration());
}

TEST(MountOptionsTest, MaxWrite) {
  EXPECT_EQ(Parse("max_write=4096").max_write, 4096u);
  EXPECT_EQ(Parse("max_write=131072").max_write, 131072u);
  EXPECT_EQ(Parse("max_write=1048576").max_write, 1048576u);
  for (const char* value :
       {"4095", "1048577", "0", "-1", "abc", "", "1.5", "99999999999999"}) {
    ExpectRejected(std::string("max_write=") + value, "max_write");
  }
}

TEST(MountOptionsTest, ReadAhead) {
  EXPECT_EQ(Parse("").read_ahead_kb, 4096u);
  EXPECT_EQ(Parse("read_ahead_kb=0").read_ahead_kb, 0u);
  EXPECT_EQ(Parse("read_ahead_kb=65536").read_ahead_kb, 65536u);
  for (const char* value : {"65537", "-1", "abc", "", "1.5"}) {
    ExpectRejected(std::string("read_ahead_kb=") + value, "read_ahead_kb");
  }
}

TEST(MountOptionsTest, FetchedAhead) {
  // Unset: the mount picks by where the backend is.
  EXPECT_FALSE(Parse("").prefetch_listings.has_value());
  EXPECT_FALSE(Parse("").prefetch_contents.has_value());
  EXPECT_EQ(Parse("prefetch_listings=0").prefetch_listings, 0u);
  EXPECT_EQ(Parse("prefetch_contents=4096").prefetch_contents, 4096u);
  for (const char* key : {"prefetch_listings", "prefetch_contents"}) {
    for (const char* value : {"4097", "-1", "abc", ""}) {
      ExpectRejected(std::string(key) + "=" + value, key);
    }
  }
}

TEST(MountOptionsTest, Session) {
  EXPECT_FALSE(Parse("").session);
  EXPECT_TRUE(Parse("session").session);
  EXPECT_FALSE(Parse("session,no_session").session);
  ExpectRejected("session=1", "session");
}

TEST(MountOptionsTest, WriteBehind) {
  EXPECT_FALSE(Parse("").write_behind);
  EXPECT_TRUE(Parse("write_behind").write_behind);
  EXPECT_FALSE(Parse("write_behind,no_write_behind").write_behind);
  ExpectRejected("write_behind=1", "write_behind");
  // Early answers skip the backend's permission checks and come from the
  // cache: both must be there.
  ExpectRejected("write_behind,no_default_permissions", "default_permissions");
  ExpectRejected("write_behind,cache_entries=0", "cache_entries=0");
}

TEST(MountOptionsTest, WritebackCache) {
  // Unset: the mount decides by its transport (on over TCP).
  EXPECT_FALSE(Parse("").writeback_cache.has_value());
  EXPECT_TRUE(Parse("").passthrough);
  MountOptions on = Parse("writeback_cache");
  EXPECT_EQ(on.writeback_cache, std::optional<bool>(true));
  // The kernel offers the writeback cache only without passthrough.
  EXPECT_FALSE(on.passthrough);
  EXPECT_FALSE(Parse("passthrough=auto,writeback_cache").passthrough);
  MountOptions off = Parse("writeback_cache,no_writeback_cache");
  EXPECT_EQ(off.writeback_cache, std::optional<bool>(false));
  EXPECT_TRUE(off.passthrough);
  ExpectRejected("writeback_cache=1", "writeback_cache");
  ExpectRejected("no_writeback_cache=0", "no_writeback_cache");
}

TEST(MountOptionsTest, UnknownOptionsAreKeptInOrderForBackend) {
  MountOptions opts =
      Parse("zeta,ro,cache=none,,alpha=1=2,fsname=x,user=bob,zeta");
  EXPECT_TRUE(opts.read_only);
  EXPECT_EQ(opts.fsname, "x");
  EXPECT_THAT(opts.backend_options,
              ElementsAre("zeta", "cache=none", "alpha=1=2", "user=bob",
                          "zeta"));
}

TEST(MountOptionsTest, EmptyItemsAreIgnored) {
  MountOptions opts = Parse(",,ro,,,foo,");
  EXPECT_TRUE(opts.read_only);
  EXPECT_THAT(opts.backend_options, ElementsAre("foo"));
}

TEST(MountOptionsTest, LaterOptionWins) {
  MountOptions opts = Parse("entry_timeout=3,entry_timeout=4,subtype=a,subtype=b");
  EXPECT_EQ(opts.entry_timeout, absl::Seconds(4));
  EXPECT_EQ(opts.subtype, "b");
}

TEST(MountOptionsTest, FirstErrorIsReported) {
  absl::StatusOr<MountOptions> opts =
      ParseMountOptions("ro,max_write=1,entry_timeout=-1");
  ASSERT_FALSE(opts.ok());
  EXPECT_THAT(std::string(opts.status().message()), HasSubstr("max_write"));
}

TEST(MountOptionsTest, TlsOptions) {
  MountOptions opts = Parse(
      "tls_ca=/etc/ca.pem,tls_server_name=fs.example,tls_cert=/c.pem,"
      "tls_key=/c.key");
  EXPECT_TRUE(opts.uses_tls());
  EXPECT_FALSE(opts.insecure);
  EXPECT_EQ(opts.tls_ca, "/etc/ca.pem");
  EXPECT_EQ(opts.tls_server_name, "fs.example");
  EXPECT_EQ(opts.tls_cert, "/c.pem");
  EXPECT_EQ(opts.tls_key, "/c.key");
  EXPECT_THAT(opts.backend_options, IsEmpty());
  opts = Parse("insecure");
  EXPECT_TRUE(opts.insecure);
  EXPECT_FALSE(opts.uses_tls());
  EXPECT_FALSE(Parse("").uses_tls());
}

TEST(MountOptionsTest, TlsOptionsMustGoTogether) {
  ExpectRejected("insecure,tls_ca=/ca.pem", "insecure");
  ExpectRejected("tls_server_name=x", "tls_ca=");
  ExpectRejected("tls_ca=/ca.pem,tls_cert=/c.pem", "tls_key=");
  ExpectRejected("tls_ca=/ca.pem,tls_key=/c.key", "tls_cert=");
  ExpectRejected("tls_ca=relative.pem", "tls_ca=");
  ExpectRejected("tls_ca=", "tls_ca=");
  ExpectRejected("insecure=yes", "insecure");
}

}  // namespace
}  // namespace fusehost
