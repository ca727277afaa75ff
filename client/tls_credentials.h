// TLS server credentials from PEM files: a certificate and its private key,
// and, for mutual TLS, a CA that client certificates must be signed by.
//
// The files must exist and the key must be private (no access for group or
// others) now: a mistake is reported at once rather than as failed
// handshakes later. gRPC's file watcher reads them again every few
// seconds, so a renewed certificate is served from the next connection on
// without a restart.
//
// Shared by the C++ SDK's server (server_tls.h) and the Python SDK's C++
// server (client/python/native). Thread-safe: a pure function.

#ifndef FUSE_HOSTD_CLIENT_TLS_CREDENTIALS_H_
#define FUSE_HOSTD_CLIENT_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"

namespace fusehost {

// `client_ca` empty: server-side TLS only.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
TlsServerCredentialsFromFiles(const std::string& cert, const std::string& key,
                              const std::string& client_ca);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_TLS_CREDENTIALS_H_
