// LoopbackFs's operations on extended attributes.

#include "examples/loopback/loopback_fs.h"

#include <sys/xattr.h>

#include <cerrno>
#include <string>

#include "examples/loopback/host_calls.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {

// Extended attributes have no *at() syscalls; the l*xattr calls on the
// directory descriptor's /proc path act on the last component itself, so a
// symlink's own attributes (trusted.*, security.*) are reachable and nothing
// is followed.
int LoopbackFs::Setxattr(const Context& ctx, const std::string& path,
                         const std::string& name, const std::string& value,
                         int flags) {
  if (HasNul(name)) return EINVAL;
  return Changed(ctx, {path}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* file) {
      return ErrnoOf(lsetxattr(ProcFdPath(dir, file).c_str(), name.c_str(),
                               value.data(), value.size(), flags));
    });
  });
}

int LoopbackFs::Getxattr(const Context& ctx, const std::string& path,
                         const std::string& name, std::string* value) {
  if (HasNul(name)) return EINVAL;
  return AtPath(ctx, path, [&](int dir, const char* file) {
    const std::string at = ProcFdPath(dir, file);
    value->clear();
    return FetchSized(
        [&](char* buffer, size_t size) {
          return lgetxattr(at.c_str(), name.c_str(), buffer, size);
        },
        value);
  });
}

int LoopbackFs::Listxattr(const Context& ctx, const std::string& path,
                          std::string* list) {
  return AtPath(ctx, path, [&](int dir, const char* file) {
    return FetchSized(
        [&](char* buffer, size_t size) {
          return ListxattrAt(dir, file, buffer, size);
        },
        list);
  });
}

int LoopbackFs::Removexattr(const Context& ctx, const std::string& path,
                            const std::string& name) {
  if (HasNul(name)) return EINVAL;
  return Changed(ctx, {path}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* file) {
      return ErrnoOf(lremovexattr(ProcFdPath(dir, file).c_str(), name.c_str()));
    });
  });
}

}  // namespace examples
}  // namespace fusehost
