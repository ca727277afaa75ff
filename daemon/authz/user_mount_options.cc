#include "daemon/authz/user_mount_options.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "daemon/mounting/mount_options.h"

namespace fusehost {
namespace {

// Why an option is refused, or "" if it is not one of these.
std::string RefusalFor(absl::string_view key) {
  if (key == "suid" || key == "dev") {
    return "mounts of users other than root are always nosuid,nodev";
  }
  if (key == "user_id" || key == "group_id" || key == "fd" ||
      key == "rootmode") {
    return "fuse-hostd sets it itself";
  }
  if (key == "allow_root" || key == "blkdev" || key == "max_read" ||
      key == "blksize" || key == "context" || key == "fscontext" ||
      key == "defcontext" || key == "rootcontext") {
    return "it is a kernel option fuse-hostd does not allow users to set";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> CheckUserMountOptions(
    absl::string_view options, const UserOptionRules& rules) {
  std::vector<std::string> out;
  bool cache_entries_given = false;
  for (absl::string_view item : absl::StrSplit(options, ',', absl::SkipEmpty())) {
    size_t eq = item.find('=');
    absl::string_view key = item.substr(0, eq);
    std::string refusal = RefusalFor(key);
    if (!refusal.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("option ", key, " is not allowed: ", refusal));
    }
    if (key == "allow_other" && !rules.allow_other_permitted) {
      return absl::PermissionDeniedError(absl::StrCat(
          "option allow_other is not allowed: ", rules.allow_other_refusal));
    }
    if (key == "cache_entries" && eq != absl::string_view::npos) {
      cache_entries_given = true;
      size_t n;
      if (absl::SimpleAtoi(item.substr(eq + 1), &n) &&
          n > rules.max_cache_entries) {
        return absl::PermissionDeniedError(
            absl::StrCat("option cache_entries=", n, " is not allowed: at most ",
                         rules.max_cache_entries, " for users other than root"));
      }
    }
    // Everything else is one of the safe daemon options or goes to the
    // backend (which runs as the user); ParseMountOptions checks values.
    out.emplace_back(item);
  }
  // The default is for root's mounts; a user's is held to the cap too,
  // visibly (it shows in the mount's options).
  if (!cache_entries_given &&
      rules.max_cache_entries < MountOptions::kDefaultCacheEntries) {
    out.emplace_back(absl::StrCat("cache_entries=", rules.max_cache_entries));
  }
  out.emplace_back("nosuid");
  out.emplace_back("nodev");
  return absl::StrJoin(out, ",");
}

}  // namespace fusehost
