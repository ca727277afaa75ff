// The daemon's configuration file (schema and defaults: proto/config.proto),
// read once at start and turned into settings the daemon uses directly.
// Every mistake is reported as one line "FILE:LINE:COLUMN: reason": syntax
// errors and unknown fields from the text-format parser, bad values (a
// relative path, an unknown user, a malformed option) from the checks here,
// located at the field that holds them.
//
// Thread-safe: pure functions and plain data.

#ifndef FUSE_HOSTD_DAEMON_CONTROL_DAEMON_CONFIG_H_
#define FUSE_HOSTD_DAEMON_CONTROL_DAEMON_CONFIG_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/authz/authorizer.h"

namespace fusehost {

constexpr char kDefaultConfigPath[] = "/etc/fuse-hostd/fuse-hostd.conf";
constexpr char kDefaultControlSocket[] = "/run/fuse-hostd/control.sock";

struct StaticMountSetting {
  std::string backend;
  std::string mountpoint;
  std::string options;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  std::string where;  // "FILE:LINE" of its entry, for log lines
};

struct DaemonSettings {
  std::string control_socket = kDefaultControlSocket;
  mode_t control_socket_mode = 0666;
  gid_t control_socket_gid = 0;
  // Empty: the control socket's directory.
  std::string runtime_dir;
  std::string metrics_address;  // empty: off
  std::string default_mount_options;
  UserPolicy users;
  std::vector<StaticMountSetting> static_mounts;
};

// Parses configuration text; `filename` names it in errors.
absl::StatusOr<DaemonSettings> ParseDaemonSettings(absl::string_view text,
                                                   const std::string& filename);

// Reads `path`. A missing file gives the defaults if `missing_ok`, else an
// error.
absl::StatusOr<DaemonSettings> LoadDaemonSettings(const std::string& path,
                                                  bool missing_ok);

// Checks "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "localhost:9464").
absl::Status CheckHostPort(absl::string_view address);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_DAEMON_CONFIG_H_
