#include "client/server_tls.h"

#include "absl/status/status.h"
#include "client/tls_credentials.h"

namespace fusehost {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const ServeOptions& options, bool is_unix_socket) {
  const bool tls = !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty() ||
                   !options.tls_client_ca_file.empty();
  if (!tls) return grpc::InsecureServerCredentials();
  if (is_unix_socket) {
    return absl::InvalidArgumentError(
        "TLS is for TCP addresses; a Unix socket's clients are checked by "
        "the kernel");
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and its private key");
  }
  return TlsServerCredentialsFromFiles(options.tls_cert_file,
                                       options.tls_key_file,
                                       options.tls_client_ca_file);
}

}  // namespace fusehost
