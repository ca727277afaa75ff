// LoopbackFs's operations on open directories: opendir, readdir (the whole
// listing with attributes and extended attribute names), releasedir and
// fsyncdir.

#include "examples/loopback/loopback_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "examples/loopback/host_calls.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {

int LoopbackFs::Opendir(const Context& ctx, const std::string& path,
                        FileInfo* fi) {
  // As opendir(3): read permission is checked now, as the caller, and the
  // handle stays readable even if the mode changes later.
  return AtPath(ctx, path, [&](int dir, const char* name) {
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno;
    fi->fh = handles_.Add(fd);
    return 0;
  });
}

int LoopbackFs::Readdir(const Context& ctx, const std::string& path,
                        off_t offset, const FileInfo& fi,
                        std::vector<DirEntry>* entries, bool* eof) {
  *eof = true;
  // Every entry is handed out with offset 0, so a non-zero cookie can only
  // mean "after the end".
  if (offset != 0) return 0;
  if (fi.fh == 0) {
    // Listed by path (InitResult::lists_by_path): opened here, as Opendir
    // would, for this one listing.
    FileInfo opened;
    if (int err = Opendir(ctx, path, &opened)) return err;
    int err = Readdir(ctx, path, offset, opened, entries, eof);
    Releasedir(ctx, path, opened);
    return err;
  }
  return AtFd(ctx, fi, [&](int fd) {
    std::vector<RawEntry> raw;
    {
      absl::MutexLock lock(&dir_read_mu_[fi.fh % dir_read_mu_.size()]);
      if (int err = ReadAllEntries(fd, &raw)) return err;
    }
    entries->reserve(entries->size() + raw.size());
    for (RawEntry& r : raw) {
      DirEntry entry;
      if (fstatat(fd, r.name.c_str(), &entry.st, AT_SYMLINK_NOFOLLOW) == 0) {
        entry.has_attr = true;
        entry.xattr_names_known =
            ListXattrNamesAt(fd, r.name.c_str(), &entry.xattr_names);
      } else if (errno == ENOENT) {
        continue;  // removed since the directory was read
      } else {
        // E.g. a directory the caller may read but not search: names and
        // types only, as ls shows them.
        entry.st = {};
        entry.st.st_mode = DTTOIF(r.type);
      }
      entry.name = std::move(r.name);
      entries->push_back(std::move(entry));
    }
    return 0;
  });
}

int LoopbackFs::Releasedir(const Context& ctx, const std::string& path,
                           const FileInfo& fi) {
  return Release(ctx, path, fi);
}

int LoopbackFs::Fsyncdir(const Context& ctx, const std::string& path,
                         bool datasync, const FileInfo& fi) {
  return Fsync(ctx, path, datasync, fi);
}

}  // namespace examples
}  // namespace fusehost
