// Escaping of strings that users and backends chose, before they are
// printed where they could pass for something else: a log line, a column
// of `fuse-hostctl list`.
//
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_COMMON_ESCAPE_H_
#define FUSE_HOSTD_COMMON_ESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fusehost {

// Control characters and DEL become \xNN, a backslash \\: the text stays on
// one line and cannot carry terminal escape sequences.
std::string EscapeControl(absl::string_view text);

// As EscapeControl, and a space becomes \x20 too: one column of a table.
std::string EscapeField(absl::string_view text);

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_ESCAPE_H_
