#include "daemon/tls/peer_identity.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"

namespace fusehost {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

absl::StatusOr<CertificateFacts> DescribeCertificate(absl::string_view pem) {
  std::unique_ptr<BIO, BioFree> in(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (in == nullptr) return absl::ResourceExhaustedError("out of memory");
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  CertificateFacts facts;
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  if (out == nullptr ||
      X509_NAME_print_ex(out.get(), X509_get_subject_name(cert.get()), 0,
                         XN_FLAG_RFC2253) < 0) {
    return absl::InternalError("cannot print the certificate's subject");
  }
  char* text = nullptr;
  long len = BIO_get_mem_data(out.get(), &text);
  facts.subject.assign(text, len > 0 ? len : 0);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), digest, &digest_len) != 1) {
    return absl::InternalError("cannot hash the certificate");
  }
  facts.sha256 = absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest), digest_len));
  return facts;
}

absl::Status PeerIdentity::Check(const CertificateFacts& peer) {
  absl::MutexLock lock(&mu_);
  if (!pinned_ || peer.subject == current_.subject) {
    pinned_ = true;
    current_ = peer;
    last_refused_.clear();
    return absl::OkStatus();
  }
  if (peer.sha256 != last_refused_) {
    last_refused_ = peer.sha256;
    Log("audit: backend %s presented certificate subject=%s (sha256 %s), "
        "not subject=%s the mount was made with: connection refused",
        backend_, peer.subject, peer.sha256, current_.subject);
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "backend identity changed: subject=", peer.subject, ", expected ",
      current_.subject));
}

std::string PeerIdentity::Describe() const {
  absl::MutexLock lock(&mu_);
  if (!pinned_) return "";
  return absl::StrCat("subject=", current_.subject, "; sha256=",
                      current_.sha256);
}

}  // namespace fusehost
