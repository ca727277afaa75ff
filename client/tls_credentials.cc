#include "client/tls_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fusehost {
namespace {

namespace gx = grpc::experimental;

// How often gRPC looks at the files for a new certificate.
constexpr unsigned kRefreshSeconds = 2;

// The file must be readable now; a key must be its owner's alone.
absl::Status CheckFile(const std::string& what, const std::string& path,
                       bool is_private_key) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  int r = fstat(fd, &st);
  close(fd);
  if (r != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, " is not a regular file"));
  }
  if (is_private_key && (st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s %s is accessible to other users (mode %04o): make it readable by "
        "its owner only (chmod 600)",
        what, path, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
TlsServerCredentialsFromFiles(const std::string& cert, const std::string& key,
                              const std::string& client_ca) {
  absl::Status st = CheckFile("certificate", cert, false);
  if (st.ok()) st = CheckFile("private key", key, true);
  if (st.ok() && !client_ca.empty()) {
    st = CheckFile("client CA", client_ca, false);
  }
  if (!st.ok()) return st;
  std::shared_ptr<gx::CertificateProviderInterface> provider;
  if (client_ca.empty()) {
    provider = std::make_shared<gx::FileWatcherCertificateProvider>(
        key, cert, kRefreshSeconds);
  } else {
    provider = std::make_shared<gx::FileWatcherCertificateProvider>(
        key, cert,
        client_ca, kRefreshSeconds);
  }
  gx::TlsServerCredentialsOptions tls_options(provider);
  tls_options.watch_identity_key_cert_pairs();
  if (client_ca.empty()) {
    tls_options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls_options.watch_root_certs();
    tls_options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return gx::TlsServerCredentials(tls_options);
}

}  // namespace fusehost
