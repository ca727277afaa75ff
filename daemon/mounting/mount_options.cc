#include "daemon/mounting/mount_options.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fusehost {
namespace {

// A count of `what` in 0..4096 (how much is fetched ahead).
absl::Status ParseAheadCount(absl::string_view key, absl::string_view value,
                             absl::string_view what,
                             std::optional<size_t>* out) {
  size_t n = 0;
  if (!absl::SimpleAtoi(value, &n) || n > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "option ", key, "=", value, ": expected a number of ", what,
        " in 0..4096"));
  }
  *out = n;
  return absl::OkStatus();
}

// A timeout in (fractional) seconds, 0 .. one day.
absl::Status ParseSeconds(absl::string_view key, absl::string_view value,
                          absl::Duration* out) {
  double seconds;
  if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds) ||
      seconds < 0 || seconds > 86400) {
    return absl::InvalidArgumentError(absl::StrCat(
        "option ", key, "=", value, ": expected seconds between 0 and 86400"));
  }
  *out = absl::Seconds(seconds);
  return absl::OkStatus();
}

// Sets a boolean field for a bare flag; rejects "flag=value".
absl::Status SetFlag(absl::string_view key, bool has_value, bool* field,
                     bool value) {
  if (has_value) {
    return absl::InvalidArgumentError(
        absl::StrCat("option ", key, " takes no value"));
  }
  *field = value;
  return absl::OkStatus();
}

// "key=auto" (true) or "key=off" (false).
absl::Status SetAutoOrOff(absl::string_view key, absl::string_view value,
                          bool* field) {
  if (value != "auto" && value != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("option ", key, "=", value, ": expected auto or off"));
  }
  *field = value == "auto";
  return absl::OkStatus();
}

// Names must not smuggle separators into the kernel's option string or
// /proc/mounts.
bool IsCleanName(absl::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s) {
    if (c == ',' || c == '\n' || c == '\0' || c == ' ' || c == '\t') {
      return false;
    }
  }
  return true;
}

// A file named in an option: an absolute path without separators.
absl::Status SetFilePath(absl::string_view key, absl::string_view value,
                         std::string* out) {
  if (value.empty() || value[0] != '/' || !IsCleanName(value.substr(1)) ||
      value.size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "option ", key, "= needs an absolute path without commas or white "
        "space"));
  }
  *out = std::string(value);
  return absl::OkStatus();
}

absl::Status CheckTlsOptions(const MountOptions& o) {
  const bool any_tls = !o.tls_ca.empty() || !o.tls_server_name.empty() ||
                       !o.tls_cert.empty() || !o.tls_key.empty();
  if (o.insecure && any_tls) {
    return absl::InvalidArgumentError(
        "option insecure (plain TCP) cannot go with tls_ options");
  }
  if (any_tls && o.tls_ca.empty()) {
    return absl::InvalidArgumentError(
        "TLS options need tls_ca= (the CA that signs the backend's "
        "certificate)");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "options tls_cert= and tls_key= go together (the client certificate "
        "and its private key)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MountOptions> ParseMountOptions(absl::string_view text) {
  MountOptions opts;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    size_t eq = item.find('=');
    bool has_value = eq != absl::string_view::npos;
    absl::string_view key = has_value ? item.substr(0, eq) : item;
    absl::string_view value = has_value ? item.substr(eq + 1) : "";
    absl::Status st;
    if (key == "ro") {
      st = SetFlag(key, has_value, &opts.read_only, true);
    } else if (key == "rw") {
      st = SetFlag(key, has_value, &opts.read_only, false);
    } else if (key == "allow_other") {
      st = SetFlag(key, has_value, &opts.allow_other, true);
    } else if (key == "default_permissions") {
      st = SetFlag(key, has_value, &opts.default_permissions, true);
    } else if (key == "no_default_permissions") {
      st = SetFlag(key, has_value, &opts.default_permissions, false);
    } else if (key == "nosuid") {
      st = SetFlag(key, has_value, &opts.nosuid, true);
    } else if (key == "suid") {
      st = SetFlag(key, has_value, &opts.nosuid, false);
    } else if (key == "nodev") {
      st = SetFlag(key, has_value, &opts.nodev, true);
    } else if (key == "dev") {
      st = SetFlag(key, has_value, &opts.nodev, false);
    } else if (key == "noexec") {
      st = SetFlag(key, has_value, &opts.noexec, true);
    } else if (key == "exec") {
      st = SetFlag(key, has_value, &opts.noexec, false);
    } else if (key == "noatime") {
      st = SetFlag(key, has_value, &opts.noatime, true);
    } else if (key == "atime" || key == "relatime") {
      st = SetFlag(key, has_value, &opts.noatime, false);
    } else if (key == "fsname" || key == "subtype") {
      if (!IsCleanName(value)) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "option ", key,
            "= needs a non-empty name without commas or white space"));
      } else {
        (key == "fsname" ? opts.fsname : opts.subtype) = std::string(value);
      }
    } else if (key == "entry_timeout" || key == "attr_timeout" ||
               key == "negative_timeout") {
      absl::Duration d;
      st = ParseSeconds(key, value, &d);
      (key == "entry_timeout"  ? opts.entry_timeout
       : key == "attr_timeout" ? opts.attr_timeout
                               : opts.negative_timeout) = d;
    } else if (key == "cache_entries") {
      if (!absl::SimpleAtoi(value, &opts.cache_entries) ||
          opts.cache_entries > 100000000) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "option cache_entries=", value, ": expected 0..100000000"));
      }
    } else if (key == "timeout") {
      st = ParseSeconds(key, value, &opts.call_timeout);
      if (st.ok() && opts.call_timeout < absl::Milliseconds(10)) {
        st = absl::InvalidArgumentError("option timeout= must be at least 0.01");
      }
    } else if (key == "keepalive") {
      st = ParseSeconds(key, value, &opts.keepalive);
      if (st.ok() && opts.keepalive != absl::ZeroDuration() &&
          opts.keepalive < absl::Seconds(1)) {
        st = absl::InvalidArgumentError(
            "option keepalive= must be 0 (off) or at least 1");
      }
    } else if (key == "prefetch_listings") {
      st = ParseAheadCount(key, value, "subdirectories",
                           &opts.prefetch_listings);
    } else if (key == "prefetch_contents") {
      st = ParseAheadCount(key, value, "files", &opts.prefetch_contents);
    } else if (key == "read_ahead_kb") {
      if (!absl::SimpleAtoi(value, &opts.read_ahead_kb) ||
          opts.read_ahead_kb > 65536) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "option read_ahead_kb=", value, ": expected KiB in 0..65536"));
      }
    } else if (key == "max_write") {
      if (!absl::SimpleAtoi(value, &opts.max_write) || opts.max_write < 4096 ||
          opts.max_write > (1u << 20)) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "option max_write=", value, ": expected bytes in 4096..1048576"));
      }
    } else if (key == "insecure") {
      st = SetFlag(key, has_value, &opts.insecure, true);
    } else if (key == "tls_ca") {
      st = SetFilePath(key, value, &opts.tls_ca);
    } else if (key == "tls_cert") {
      st = SetFilePath(key, value, &opts.tls_cert);
    } else if (key == "tls_key") {
      st = SetFilePath(key, value, &opts.tls_key);
    } else if (key == "tls_server_name") {
      if (!IsCleanName(value)) {
        st = absl::InvalidArgumentError(
            "option tls_server_name= needs a host name");
      } else {
        opts.tls_server_name = std::string(value);
      }
    } else if (key == "write_behind") {
      st = SetFlag(key, has_value, &opts.write_behind, true);
    } else if (key == "no_write_behind") {
      st = SetFlag(key, has_value, &opts.write_behind, false);
    } else if (key == "session") {
      st = SetFlag(key, has_value, &opts.session, true);
    } else if (key == "no_session") {
      st = SetFlag(key, has_value, &opts.session, false);
    } else if (key == "writeback_cache" || key == "no_writeback_cache") {
      bool on = false;
      st = SetFlag(key, has_value, &on, key == "writeback_cache");
      opts.writeback_cache = on;
    } else if (key == "uring") {
      st = SetFlag(key, has_value, &opts.uring, true);
    } else if (key == "no_uring") {
      st = SetFlag(key, has_value, &opts.uring, false);
    } else if (key == "daemon_opens") {
      st = SetAutoOrOff(key, value, &opts.daemon_opens);
    } else if (key == "daemon_changes") {
      st = SetAutoOrOff(key, value, &opts.daemon_changes);
    } else if (key == "passthrough") {
      st = SetAutoOrOff(key, value, &opts.passthrough);
    } else {
      opts.backend_options.emplace_back(item);
    }
    if (!st.ok()) return st;
  }
  if (opts.write_behind && !opts.default_permissions) {
    return absl::InvalidArgumentError(
        "option write_behind needs default_permissions: changes answered "
        "early skip the backend's own permission checks");
  }
  if (opts.write_behind && opts.cache_entries == 0) {
    return absl::InvalidArgumentError(
        "option write_behind needs the daemon's cache (cache_entries=0 "
        "turns it off)");
  }
  absl::Status tls = CheckTlsOptions(opts);
  if (!tls.ok()) return tls;
  // The kernel refuses passthrough together with the writeback cache.
  if (opts.writeback_cache.value_or(false)) opts.passthrough = false;
  return opts;
}

}  // namespace fusehost
