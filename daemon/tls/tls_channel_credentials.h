// gRPC credentials for the daemon's side of a TLS backend connection: the
// backend's certificate must chain to the mount's CA (tls_ca=), carry the
// expected name (tls_server_name=, checked against its subjectAltNames)
// and, after the first connection, the pinned identity (peer_identity.h).
// With a client certificate and key (tls_cert=, tls_key=) the daemon
// presents them for mutual TLS.
//
// The material is given as PEM text, read by tls_files.h as the mount's
// user; a channel is built again from freshly read files whenever its
// connection is lost (backend_channel.h), which is how renewed
// certificates and keys are taken up.
//
// Thread-safe: the credentials and the verifier may be used from any of
// gRPC's threads.

#ifndef FUSE_HOSTD_DAEMON_TLS_TLS_CHANNEL_CREDENTIALS_H_
#define FUSE_HOSTD_DAEMON_TLS_TLS_CHANNEL_CREDENTIALS_H_

#include <memory>

#include <grpcpp/security/credentials.h>

#include "absl/status/status.h"
#include "daemon/tls/peer_identity.h"
#include "daemon/tls/tls_files.h"

namespace fusehost {

// Whether the PEM text is usable: the CA file holds at least one
// certificate, the client certificate parses and its key matches it.
// Errors say which part is wrong, for the user who mounts.
absl::Status CheckTlsMaterial(const TlsMaterial& material);

std::shared_ptr<grpc::ChannelCredentials> MakeTlsChannelCredentials(
    const TlsMaterial& material, std::shared_ptr<PeerIdentity> identity);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_TLS_TLS_CHANNEL_CREDENTIALS_H_
