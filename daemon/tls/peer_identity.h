// The identity of a TLS backend, fixed for the life of its mount.
//
// A mount is made with whichever backend answered first; the subject of
// that backend's certificate (its distinguished name, RFC 2253) is then
// pinned. Every later connection (a restarted backend, a network that came
// back) must present a certificate with the same subject, or the handshake
// is refused: its callers get ENOTCONN and the log says what was presented.
// The subject, not the certificate itself, is pinned so that a backend may
// renew its certificate (same subject, new key or dates); the SHA-256
// fingerprint of the certificate in use is shown beside it.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_TLS_PEER_IDENTITY_H_
#define FUSE_HOSTD_DAEMON_TLS_PEER_IDENTITY_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

struct CertificateFacts {
  std::string subject;  // RFC 2253 distinguished name
  std::string sha256;   // hex fingerprint of the DER certificate
};

// Facts of the first certificate in `pem`.
absl::StatusOr<CertificateFacts> DescribeCertificate(absl::string_view pem);

class PeerIdentity {
 public:
  // `backend` names the backend in log lines.
  explicit PeerIdentity(std::string backend) : backend_(std::move(backend)) {}

  // Pins `peer` if nothing is pinned yet; otherwise accepts it only with
  // the pinned subject (and logs a refusal, once per presented
  // certificate).
  absl::Status Check(const CertificateFacts& peer);

  // "subject=...; sha256=..." of the last accepted certificate, or "" before
  // the first handshake.
  std::string Describe() const;

 private:
  const std::string backend_;
  mutable absl::Mutex mu_;
  bool pinned_ ABSL_GUARDED_BY(mu_) = false;
  CertificateFacts current_ ABSL_GUARDED_BY(mu_);
  std::string last_refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_TLS_PEER_IDENTITY_H_
