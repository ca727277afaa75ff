#include "daemon/tls/tls_files.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

using ::testing::HasSubstr;

UserIdentity Nobody() { return UserIdentity{kNobody, kNogroup, {kNogroup}}; }
UserIdentity Root() { return UserIdentity{0, 0, {}}; }

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to take another uid";
  }
  std::string Write(const std::string& name, const std::string& text,
                    mode_t mode, uid_t uid) {
    std::string p = dir_.Sub(name);
    FILE* f = fopen(p.c_str(), "w");
    fputs(text.c_str(), f);
    fclose(f);
    chmod(p.c_str(), mode);
    (void)!chown(p.c_str(), uid, kNogroup);
    return p;
  }
  ScratchDir dir_;
};

TEST_F(TlsFilesTest, ReadsAsTheUser) {
  chmod(dir_.path().c_str(), 0755);
  std::string mine = Write("mine.key", "KEY", 0600, kNobody);
  std::string roots = Write("root.key", "ROOT", 0600, 0);
  absl::StatusOr<std::string> got =
      ReadTlsFileAsUser(Nobody(), mine, /*is_private_key=*/true,
                        absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "KEY");
  // Root's key is not the user's to read, although the daemon could.
  got = ReadTlsFileAsUser(Nobody(), roots, true, absl::Seconds(5));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(roots));
  EXPECT_TRUE(ReadTlsFileAsUser(Root(), roots, true, absl::Seconds(5)).ok());
}

TEST_F(TlsFilesTest, RefusesKeysOthersMayRead) {
  chmod(dir_.path().c_str(), 0755);
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    std::string key = Write("exposed.key", "KEY", mode, 0);
    absl::StatusOr<std::string> got =
        ReadTlsFileAsUser(Root(), key, /*is_private_key=*/true,
                          absl::Seconds(5));
    ASSERT_FALSE(got.ok()) << mode;
    EXPECT_THAT(std::string(got.status().message()),
                HasSubstr("accessible to other users"));
    EXPECT_THAT(std::string(got.status().message()), HasSubstr("chmod 600"));
    // A certificate is public.
    EXPECT_TRUE(ReadTlsFileAsUser(Root(), key, false, absl::Seconds(5)).ok());
  }
}

TEST_F(TlsFilesTest, RefusesWhatIsNotAFile) {
  std::string fifo = dir_.Sub("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  absl::StatusOr<std::string> got =
      ReadTlsFileAsUser(Root(), fifo, false, absl::Seconds(5));
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("not a regular file"));
  got = ReadTlsFileAsUser(Root(), dir_.path(), false, absl::Seconds(5));
  EXPECT_FALSE(got.ok());
  std::string big = Write("big.pem", std::string(kMaxTlsFileBytes + 1, 'x'),
                          0644, 0);
  got = ReadTlsFileAsUser(Root(), big, false, absl::Seconds(5));
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("larger than"));
  std::string exact = Write("exact.pem", std::string(kMaxTlsFileBytes, 'y'),
                            0644, 0);
  got = ReadTlsFileAsUser(Root(), exact, false, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), kMaxTlsFileBytes);
  got = ReadTlsFileAsUser(Root(), dir_.Sub("missing"), false, absl::Seconds(5));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fusehost
