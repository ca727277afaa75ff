#include "tests/examples/loopback/temp_dir.h"

#include <ftw.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>

namespace fusehost {
namespace examples {

std::string DefaultTempParent() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

TempDir::TempDir(const std::string& prefix, const std::string& parent) {
  std::string pattern = parent + "/" + prefix + ".XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  if (!path_.empty()) RemoveTree(path_);
}

void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* file, const struct stat*, int, struct FTW*) {
        return std::remove(file) == 0 ? 0 : -1;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace examples
}  // namespace fusehost
