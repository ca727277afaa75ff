// Scratch directories for the loopback tests and benchmark.

#ifndef FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_TEMP_DIR_H_
#define FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_TEMP_DIR_H_

#include <string>

namespace fusehost {
namespace examples {

// Bazel's TEST_TMPDIR, or /tmp outside Bazel.
std::string DefaultTempParent();

// A fresh directory "<parent>/<prefix>.XXXXXX", removed with everything in
// it when the object goes away. path() is empty if it could not be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix,
                   const std::string& parent = DefaultTempParent());
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Removes `path` and everything below it, without following symlinks.
void RemoveTree(const std::string& path);

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_EXAMPLES_LOOPBACK_TEMP_DIR_H_
