// The credentials a backend serves with: plain for a Unix socket or a TCP
// address without a certificate, TLS when ServeOptions names a certificate
// and key, mutual TLS when it also names a CA for client certificates.
// The files are checked and watched as tls_credentials.h says.
//
// Internal to the SDK. Thread-safe: pure functions.

#ifndef FUSE_HOSTD_CLIENT_SERVER_TLS_H_
#define FUSE_HOSTD_CLIENT_SERVER_TLS_H_

#include <memory>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "client/filesystem.h"

namespace fusehost {

// `is_unix_socket`: TLS options are refused on a Unix socket, whose
// clients the kernel already names.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const ServeOptions& options, bool is_unix_socket);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_SERVER_TLS_H_
