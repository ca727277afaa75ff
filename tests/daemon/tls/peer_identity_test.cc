#include "daemon/tls/peer_identity.h"

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

using ::testing::HasSubstr;

// A certificate made with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
//     -nodes -subj "/O=Example/CN=fs.example" -days 3650
// whose SHA-256 fingerprint `openssl x509 -fingerprint -sha256` printed as
// kFingerprint (without colons, lower case).
#include "tests/daemon/tls/test_certificate.inc"

TEST(DescribeCertificateTest, SubjectAndFingerprint) {
  absl::StatusOr<CertificateFacts> facts = DescribeCertificate(kCertificate);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->subject, "CN=fs.example,O=Example");
  EXPECT_EQ(facts->sha256, kFingerprint);
  EXPECT_FALSE(DescribeCertificate("not a certificate").ok());
  EXPECT_FALSE(DescribeCertificate("").ok());
}

TEST(PeerIdentityTest, PinsTheFirstSubject) {
  PeerIdentity id("127.0.0.1:1");
  EXPECT_EQ(id.Describe(), "");
  ASSERT_TRUE(id.Check({"CN=a", "11"}).ok());
  EXPECT_EQ(id.Describe(), "subject=CN=a; sha256=11");
  // A renewal: same subject, another certificate.
  ASSERT_TRUE(id.Check({"CN=a", "22"}).ok());
  EXPECT_EQ(id.Describe(), "subject=CN=a; sha256=22");
  // Another subject is refused, and the pinned identity stays.
  absl::Status st = id.Check({"CN=b", "33"});
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(st.message()), HasSubstr("CN=b"));
  EXPECT_EQ(id.Describe(), "subject=CN=a; sha256=22");
  EXPECT_TRUE(id.Check({"CN=a", "22"}).ok());
}

}  // namespace
}  // namespace fusehost
