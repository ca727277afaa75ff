// Helpers around host syscalls for LoopbackFs's operations (see the header).

#include "examples/loopback/host_calls.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/str_split.h"
#include "examples/loopback/host_tree.h"

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

namespace {

// listxattrat(2)'s number, the same on every architecture (the generic
// table); bookworm's headers predate it.
constexpr long kListxattrat = 465;

// False once the kernel (or a seccomp filter) refused listxattrat.
std::atomic<bool> listxattrat_works{true};

}  // namespace

ssize_t ListxattrAt(int dir_fd, const char* name, char* list, size_t size) {
  if (listxattrat_works.load(std::memory_order_relaxed)) {
    long got =
        syscall(kListxattrat, dir_fd, name, AT_SYMLINK_NOFOLLOW, list, size);
    if (got >= 0 || (errno != ENOSYS && errno != EPERM)) return got;
    listxattrat_works.store(false, std::memory_order_relaxed);
  }
  return llistxattr(ProcFdPath(dir_fd, name).c_str(), list, size);
}

bool ListXattrNamesAt(int dir_fd, const char* name,
                      std::vector<std::string>* names) {
  auto list_into = [&](char* buffer, size_t size) {
    return ListxattrAt(dir_fd, name, buffer, size);
  };
  char small[1024];
  std::string list;
  ssize_t got = list_into(small, sizeof(small));
  if (got >= 0) {
    list.assign(small, static_cast<size_t>(got));
  } else if (errno != ERANGE || FetchSized(list_into, &list) != 0) {
    return false;
  }
  for (absl::string_view entry : absl::StrSplit(list, '\0', absl::SkipEmpty())) {
    names->emplace_back(entry);
  }
  return true;
}

}  // namespace examples
}  // namespace fusehost
