// The changes to a file that clear its set-user-ID and set-group-ID bits
// when a caller without CAP_FSETID makes them, for unit tests that drive an
// example FileSystem directly.

#ifndef FUSE_HOSTD_TESTS_EXAMPLES_SET_ID_CHANGES_H_
#define FUSE_HOSTD_TESTS_EXAMPLES_SET_ID_CHANGES_H_

#include <fcntl.h>

#include <functional>
#include <string>
#include <vector>

#include "client/filesystem.h"

namespace fusehost {
namespace examples {

struct SetIdChange {
  const char* name;
  // Changes `path`, which `fi` has open for reading and writing, in the
  // name of `ctx`; returns the errno.
  std::function<int(FileSystem& fs, const Context& ctx, const std::string& path,
                    const FileInfo& fi)>
      run;
};

// A write, ftruncate, truncate by path, fallocate, O_TRUNC open and
// copy_file_range into the file.
inline std::vector<SetIdChange> SetIdChanges() {
  return {
      {"write",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo& fi) {
         size_t written = 0;
         return fs.Write(ctx, path, "w", 0, fi, &written);
       }},
      {"ftruncate",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo& fi) { return fs.Truncate(ctx, path, 1, &fi); }},
      {"truncate",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo&) { return fs.Truncate(ctx, path, 1, nullptr); }},
      {"fallocate",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo& fi) {
         return fs.Fallocate(ctx, path, 0, 0, 8192, fi);
       }},
      {"o_trunc",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo&) {
         FileInfo trunc;
         trunc.flags = O_WRONLY | O_TRUNC;
         const int rc = fs.Open(ctx, path, &trunc);
         if (rc == 0) fs.Release(ctx, path, trunc);
         return rc;
       }},
      {"copy_file_range",
       [](FileSystem& fs, const Context& ctx, const std::string& path,
          const FileInfo& fi) {
         size_t copied = 0;
         return fs.CopyFileRange(ctx, path, fi, 0, path, fi, 10, 2, 0, &copied);
       }},
  };
}

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_EXAMPLES_SET_ID_CHANGES_H_
