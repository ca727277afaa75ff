#include "daemon/tls/tls_files.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fusehost {

absl::StatusOr<std::string> ReadTlsFileAsUser(const UserIdentity& reader,
                                              const std::string& path,
                                              bool is_private_key,
                                              absl::Duration timeout) {
  absl::StatusOr<SmallFile> file =
      ReadSmallFileAsUser(reader, path, kMaxTlsFileBytes, timeout);
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat("TLS file ", file.status().message()));
  }
  if (is_private_key && (file->st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "private key %s is accessible to other users (mode %04o): make it "
        "readable by its owner only (chmod 600)",
        path, file->st.st_mode & 07777));
  }
  return std::move(file->data);
}

absl::StatusOr<TlsMaterial> ReadTlsMaterial(const UserIdentity& reader,
                                            const TlsFilePaths& paths,
                                            absl::Duration timeout) {
  TlsMaterial m;
  absl::StatusOr<std::string> ca =
      ReadTlsFileAsUser(reader, paths.ca, /*is_private_key=*/false, timeout);
  if (!ca.ok()) return ca.status();
  m.ca_pem = *std::move(ca);
  if (!paths.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadTlsFileAsUser(
        reader, paths.cert, /*is_private_key=*/false, timeout);
    if (!cert.ok()) return cert.status();
    m.cert_pem = *std::move(cert);
    absl::StatusOr<std::string> key = ReadTlsFileAsUser(
        reader, paths.key, /*is_private_key=*/true, timeout);
    if (!key.ok()) return key.status();
    m.key_pem = *std::move(key);
  }
  return m;
}

}  // namespace fusehost
