#include "daemon/tls/tls_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fusehost {

absl::StatusOr<std::string> ReadTlsFileAsUser(const UserIdentity& reader,
                                              const std::string& path,
                                              bool is_private_key,
                                              absl::Duration timeout) {
  absl::StatusOr<UniqueFd> fd = OpenFileAsUser(reader, path, timeout);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(),
                        absl::StrCat("TLS file ", fd.status().message()));
  }
  struct stat st;
  if (fstat(fd->get(), &st) != 0) {
    return absl::InternalError(
        absl::StrCat("TLS file ", path, ": fstat: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("TLS file ", path, " is not a regular file"));
  }
  if (st.st_size > static_cast<off_t>(kMaxTlsFileBytes)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS file ", path, " is larger than ", kMaxTlsFileBytes, " bytes"));
  }
  if (is_private_key && (st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "private key %s is accessible to other users (mode %04o): make it "
        "readable by its owner only (chmod 600)",
        path, st.st_mode & 07777));
  }
  std::string data;
  data.resize(kMaxTlsFileBytes + 1);
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = read(fd->get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("TLS file ", path, ": read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    got += n;
  }
  if (got > kMaxTlsFileBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("TLS file ", path, " grew while it was read"));
  }
  data.resize(got);
  return data;
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
