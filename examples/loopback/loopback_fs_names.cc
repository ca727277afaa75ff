// LoopbackFs's operations on names: making, removing, renaming and linking
// entries, and reading symlinks.

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

#include "common/paths.h"
#include "examples/loopback/host_calls.h"

namespace fusehost {
namespace examples {

int LoopbackFs::Readlink(const Context& ctx, const std::string& path,
                         std::string* target) {
  return AtPath(ctx, path, [&](int dir, const char* name) {
    char buffer[PATH_MAX];
    ssize_t n = readlinkat(dir, name, buffer, sizeof(buffer));
    if (n < 0) return errno;
    target->assign(buffer, static_cast<size_t>(n));
    return 0;
  });
}

int LoopbackFs::Mknod(const Context& ctx, const std::string& path, mode_t mode,
                      dev_t rdev) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      ClearThreadUmask();
      return ErrnoOf(mknodat(dir, name, mode, rdev));
    });
  });
}

int LoopbackFs::Mkdir(const Context& ctx, const std::string& path,
                      mode_t mode) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      ClearThreadUmask();
      return ErrnoOf(mkdirat(dir, name, mode));
    });
  });
}

int LoopbackFs::Unlink(const Context& ctx, const std::string& path) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(unlinkat(dir, name, 0));
    });
  });
}

int LoopbackFs::Rmdir(const Context& ctx, const std::string& path) {
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(unlinkat(dir, name, AT_REMOVEDIR));
    });
  });
}

int LoopbackFs::Symlink(const Context& ctx, const std::string& target,
                        const std::string& path) {
  if (HasNul(target)) return EINVAL;
  return Changed(ctx, {path, ParentPath(path)}, [&] {
    return AtPath(ctx, path, [&](int dir, const char* name) {
      return ErrnoOf(symlinkat(target.c_str(), dir, name));
    });
  });
}

int LoopbackFs::Rename(const Context& ctx, const std::string& from,
                       const std::string& to, unsigned int flags) {
  // Flags go to the kernel unchanged: it answers EINVAL for those the
  // underlying filesystem cannot honour, as the protocol asks.
  return Changed(ctx, {from, ParentPath(from), to, ParentPath(to)}, [&] {
    return AtPaths(ctx, from, to,
                   [&](int from_dir, const char* from_name, int to_dir,
                       const char* to_name) {
                     return ErrnoOf(syscall(SYS_renameat2, from_dir, from_name,
                                            to_dir, to_name, flags));
                   });
  });
}

int LoopbackFs::Link(const Context& ctx, const std::string& from,
                     const std::string& to) {
  // No AT_SYMLINK_FOLLOW: link(2) on Linux links a symlink itself.
  return Changed(ctx, {from, to, ParentPath(to)}, [&] {
    return AtPaths(
        ctx, from, to,
        [&](int from_dir, const char* from_name, int to_dir,
            const char* to_name) {
          return ErrnoOf(linkat(from_dir, from_name, to_dir, to_name, 0));
        });
  });
}

}  // namespace examples
}  // namespace fusehost
