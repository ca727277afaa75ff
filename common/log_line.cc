#include "common/log_line.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/escape.h"

namespace fusehost {
namespace {

const char* program = "fuse-hostd";

}  // namespace

void SetLogProgram(const char* name) { program = name; }

void LogLine(absl::string_view message) {
  std::string line = absl::StrCat(program, ": ", EscapeControl(message), "\n");
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to
    p += n;
    left -= n;
  }
}

}  // namespace fusehost
