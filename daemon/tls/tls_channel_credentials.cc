#include "daemon/tls/tls_channel_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

namespace gx = grpc::experimental;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Runs after the TLS layer has checked the chain against the CA: checks
// the name with gRPC's own host name verifier, then the pinned identity.
// Both checks are synchronous.
class PinningVerifier : public gx::ExternalCertificateVerifier {
 public:
  explicit PinningVerifier(std::shared_ptr<PeerIdentity> identity)
      : identity_(std::move(identity)),
        host_name_(std::make_shared<gx::HostNameCertificateVerifier>()) {}

  bool Verify(gx::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback,
              grpc::Status* sync_status) override {
    grpc::Status name_status;
    bool sync = host_name_->Verify(
        request, [](grpc::Status) {}, &name_status);
    if (!sync) {
      // The host name verifier has always answered at once; if it ever
      // does not, refuse rather than wait.
      host_name_->Cancel(request);
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "host name check did not finish");
      return true;
    }
    if (!name_status.ok()) {
      *sync_status = name_status;
      return true;
    }
    absl::StatusOr<CertificateFacts> facts = DescribeCertificate(
        std::string(request->peer_cert().data(), request->peer_cert().size()));
    if (!facts.ok()) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  std::string(facts.status().message()));
      return true;
    }
    absl::Status pinned = identity_->Check(*facts);
    *sync_status = pinned.ok()
                       ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                      std::string(pinned.message()));
    return true;
  }

  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::shared_ptr<PeerIdentity> identity_;
  const std::shared_ptr<gx::CertificateVerifier> host_name_;
};

}  // namespace

absl::Status CheckTlsMaterial(const TlsMaterial& material) {
  {
    std::unique_ptr<BIO, BioFree> in = Bio(material.ca_pem);
    std::unique_ptr<X509, X509Free> ca(
        PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (ca == nullptr) {
      return absl::InvalidArgumentError(
          "the tls_ca= file holds no PEM certificate");
    }
  }
  if (material.cert_pem.empty()) return absl::OkStatus();
  std::unique_ptr<BIO, BioFree> cert_in = Bio(material.cert_pem);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_in.get(), nullptr, nullptr, nullptr));
  std::unique_ptr<BIO, BioFree> key_in = Bio(material.key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_in.get(), nullptr, nullptr, nullptr));
  absl::Status st;
  if (cert == nullptr) {
    st = absl::InvalidArgumentError(
        "the tls_cert= file holds no PEM certificate");
  } else if (key == nullptr) {
    st = absl::InvalidArgumentError(
        "the tls_key= file holds no unencrypted PEM private key");
  } else if (X509_check_private_key(cert.get(), key.get()) != 1) {
    st = absl::InvalidArgumentError(
        "the tls_key= key does not belong to the tls_cert= certificate");
  }
  ERR_clear_error();
  return st;
}

std::shared_ptr<grpc::ChannelCredentials> MakeTlsChannelCredentials(
    const TlsMaterial& material, std::shared_ptr<PeerIdentity> identity) {
  std::vector<gx::IdentityKeyCertPair> pairs;
  if (!material.cert_pem.empty()) {
    pairs.push_back({material.key_pem, material.cert_pem});
  }
  auto provider =
      std::make_shared<gx::StaticDataCertificateProvider>(material.ca_pem, pairs);
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!pairs.empty()) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<PinningVerifier>(
          std::move(identity)));
  // The name is checked at the handshake, against tls_server_name= (or
  // the address's host); calls carry no other authority to check.
  options.set_check_call_host(false);
  return gx::TlsCredentials(options);
}

}  // namespace fusehost
