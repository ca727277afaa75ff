// One line in the log (stderr, which systemd's journal collects), safe
// against what users and backends put into it.
//
// Mountpoints, backend addresses, mount options and backend replies are
// chosen by users and backends; printed raw, a newline in one of them
// would let a user forge a whole log line ("fuse-hostd: audit: uid=0 ...
// allowed"), and terminal escape sequences could hide text. Every message
// is therefore escaped as a whole (EscapeControl in escape.h), so one call
// is always exactly one line.
//
// Thread-safe: each line goes out in one write(2).

#ifndef FUSE_HOSTD_COMMON_LOG_LINE_H_
#define FUSE_HOSTD_COMMON_LOG_LINE_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace fusehost {

// Writes "<program>: <escaped message>\n" to stderr.
void LogLine(absl::string_view message);

// The program name lines start with ("fuse-hostd" unless set); set once at
// start, before any thread logs.
void SetLogProgram(const char* name);

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(absl::StrFormat(format, args...));
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_LOG_LINE_H_
