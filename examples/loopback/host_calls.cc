// Helpers around host syscalls for LoopbackFs's operations (see the header).

#include "examples/loopback/host_calls.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "absl/strings/str_split.h"

namespace fusehost {
namespace examples {

void ClearThreadUmask() {
  if (unshare(CLONE_FS) == 0) umask(0);
}

int FetchSized(absl::FunctionRef<ssize_t(char*, size_t)> fetch,
               std::string* out) {
  for (;;) {
    ssize_t size = fetch(nullptr, 0);
    if (size < 0) return errno;
    std::string buffer(static_cast<size_t>(size), '\0');
    ssize_t got = fetch(buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == ERANGE) continue;
      return errno;
    }
    out->append(buffer.data(), static_cast<size_t>(got));
    return 0;
  }
}

bool ListXattrNames(const std::string& path, std::vector<std::string>* names) {
  char small[1024];
  std::string list;
  ssize_t got = llistxattr(path.c_str(), small, sizeof(small));
  if (got >= 0) {
    list.assign(small, static_cast<size_t>(got));
  } else if (errno != ERANGE || FetchSized(
                                    [&](char* buffer, size_t size) {
                                      return llistxattr(path.c_str(), buffer,
                                                        size);
                                    },
                                    &list) != 0) {
    return false;
  }
  for (absl::string_view name : absl::StrSplit(list, '\0', absl::SkipEmpty())) {
    names->emplace_back(name);
  }
  return true;
}

}  // namespace examples
}  // namespace fusehost
