#ifndef FUSE_HOSTD_DAEMON_FUSE_XATTR_EXCLUSIONS_H_
#define FUSE_HOSTD_DAEMON_FUSE_XATTR_EXCLUSIONS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fusehost {

// The extended attribute names a backend does not keep
// (InitReply.unsupported_xattr_prefixes): the daemon answers them
// EOPNOTSUPP itself and leaves them out of listxattr answers, so that a
// program learns at the first file that the mount has no such namespace.
class XattrExclusions {
 public:
  // At most this many prefixes are kept; the rest are ignored.
  static constexpr size_t kMaxPrefixes = 16;

  XattrExclusions() = default;
  // Keeps the well-formed prefixes (1 to 255 bytes, no NUL): they come from
  // the backend, and a malformed one must not exclude every name.
  explicit XattrExclusions(const std::vector<std::string>& prefixes);

  bool empty() const { return prefixes_.empty(); }
  bool Excludes(absl::string_view name) const;
  // Removes excluded names from a listxattr answer (names, each ending in
  // NUL).
  void Filter(std::string* list) const;

  const std::vector<std::string>& prefixes() const { return prefixes_; }

 private:
  std::vector<std::string> prefixes_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_XATTR_EXCLUSIONS_H_
