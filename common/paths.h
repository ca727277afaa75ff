// Small helpers for backend paths ("/", "/a/b") and the names in them,
// shared by the daemon, the C++ SDK and the examples.
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_COMMON_PATHS_H_
#define FUSE_HOSTD_COMMON_PATHS_H_

#include <climits>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace fusehost {

// True if the kernel could have produced `name` as one path component: not
// empty, not "." or "..", no "/" or NUL, at most NAME_MAX bytes. Names from
// backends that fail this are dropped.
inline bool IsValidName(absl::string_view name) {
  return !name.empty() && name.size() <= NAME_MAX && name != "." &&
         name != ".." && name.find('/') == absl::string_view::npos &&
         name.find('\0') == absl::string_view::npos;
}

// "/a/b" -> "/a"; "/a" -> "/"; "/" -> "/": a view into `path` (or of "/").
inline absl::string_view ParentOf(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos || slash == 0) return "/";
  return path.substr(0, slash);
}

// ParentOf, as a string of its own.
inline std::string ParentPath(absl::string_view path) {
  return std::string(ParentOf(path));
}

// "/a/b" -> "b".
inline absl::string_view BaseName(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// ("/", "x") -> "/x"; ("/a", "x") -> "/a/x", into *out (its storage reused:
// a loop over a listing's names allocates once).
inline void ChildPathInto(absl::string_view dir, absl::string_view name,
                          std::string* out) {
  out->assign(dir.data(), dir.size());
  if (dir != "/") *out += '/';
  out->append(name.data(), name.size());
}

// ("/", "x") -> "/x"; ("/a", "x") -> "/a/x".
inline std::string ChildPathOf(absl::string_view dir, absl::string_view name) {
  std::string out;
  ChildPathInto(dir, name, &out);
  return out;
}

// Whether `path` lies strictly below directory `dir`: ("/a/b", "/a") and
// ("/a", "/") are, ("/ab", "/a") and ("/a", "/a") are not.
inline bool IsBelow(absl::string_view path, absl::string_view dir) {
  if (dir == "/") return path.size() > 1;
  return path.size() > dir.size() && path[dir.size()] == '/' &&
         path.substr(0, dir.size()) == dir;
}

// The keys strictly below directory `dir` in an ordered map of paths are
// those in [first, second): everything that starts with `dir` + "/" ("/"
// itself prefixes every key). '0' is the character after '/'.
inline std::pair<std::string, std::string> BelowKeyRange(
    absl::string_view dir) {
  std::string base(dir == "/" ? "" : dir);
  return {base + "/", base + "0"};
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_PATHS_H_
