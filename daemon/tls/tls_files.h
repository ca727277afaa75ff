// Reading the certificate and key files a TLS mount names, with the rights
// of the user who asked for the mount: the file is opened by a helper that
// runs as that user (authz/as_user.h), so a user can never make the daemon
// read what they could not read themselves (root's keys, other users'
// files). The helper reads the file too and hands over a copy: a file on a
// hung file system costs the helper its timeout, never a daemon thread.
// Only regular files of at most kMaxTlsFileBytes are taken.
//
// A private key must be private: a key file that anyone but its owner may
// read or write (mode & 077) is refused, as ssh refuses such a key.
//
// Thread-safe: each call forks its own helper.

#ifndef FUSE_HOSTD_DAEMON_TLS_TLS_FILES_H_
#define FUSE_HOSTD_DAEMON_TLS_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/authz/as_user.h"

namespace fusehost {

// Paths from the mount options (mounting/mount_options.h).
struct TlsFilePaths {
  std::string ca;    // required
  std::string cert;  // with key: the daemon's client certificate
  std::string key;
};

// What the files held, PEM text.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Certificates and keys are small; anything larger is not one.
inline constexpr size_t kMaxTlsFileBytes = 1 << 20;

// Reads one file as `reader`. With `is_private_key`, refuses a file whose
// mode lets others than its owner in. Errors name the file.
absl::StatusOr<std::string> ReadTlsFileAsUser(const UserIdentity& reader,
                                              const std::string& path,
                                              bool is_private_key,
                                              absl::Duration timeout);

// Reads all of them.
absl::StatusOr<TlsMaterial> ReadTlsMaterial(const UserIdentity& reader,
                                            const TlsFilePaths& paths,
                                            absl::Duration timeout);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_TLS_TLS_FILES_H_
