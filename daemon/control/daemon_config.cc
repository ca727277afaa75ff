#include "daemon/control/daemon_config.h"

#include <grp.h>
#include <pwd.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/mounting/mount_options.h"
#include "proto/config.pb.h"

namespace fusehost {
namespace {

using config::v1::DaemonConfig;
using google::protobuf::FieldDescriptor;
using google::protobuf::TextFormat;

class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      line_ = line;
      column_ = column;
      message_ = message;
    }
  }
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

// Reports semantic errors at the field that holds the bad value.
class Locator {
 public:
  Locator(const std::string& filename, const TextFormat::ParseInfoTree* tree)
      : filename_(filename), tree_(tree) {}

  absl::Status Error(const google::protobuf::Message& msg,
                     const std::string& field, int index,
                     const std::string& reason) const {
    const FieldDescriptor* f = msg.GetDescriptor()->FindFieldByName(field);
    TextFormat::ParseLocation loc;
    if (tree_ != nullptr && f != nullptr) loc = tree_->GetLocation(f, index);
    return absl::InvalidArgumentError(absl::StrCat(
        filename_, ":", loc.line + 1, ":", loc.column + 1, ": ", field, ": ",
        reason));
  }

  std::string Where(const google::protobuf::Message& msg,
                    const std::string& field, int index) const {
    const FieldDescriptor* f = msg.GetDescriptor()->FindFieldByName(field);
    TextFormat::ParseLocation loc;
    if (tree_ != nullptr && f != nullptr) loc = tree_->GetLocation(f, index);
    return absl::StrCat(filename_, ":", loc.line + 1);
  }

  Locator Nested(const google::protobuf::Message& msg, const std::string& field,
                 int index) const {
    const FieldDescriptor* f = msg.GetDescriptor()->FindFieldByName(field);
    return Locator(filename_, tree_ == nullptr || f == nullptr
                                  ? nullptr
                                  : tree_->GetTreeForNested(f, index));
  }

 private:
  const std::string& filename_;
  const TextFormat::ParseInfoTree* tree_;
};

bool IsAbsolute(const std::string& path) {
  return !path.empty() && path[0] == '/';
}

// A user name or number -> uid and primary gid.
absl::Status ResolveUser(const std::string& name, uid_t* uid, gid_t* gid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  uint32_t number;
  if (absl::SimpleAtoi(name, &number)) {
    *uid = number;
    *gid = number;
    if (getpwuid_r(number, &pw, buf, sizeof(buf), &found) == 0 && found) {
      *gid = found->pw_gid;
    }
    return absl::OkStatus();
  }
  if (getpwnam_r(name.c_str(), &pw, buf, sizeof(buf), &found) != 0 ||
      found == nullptr) {
    return absl::NotFoundError(absl::StrCat("no user named '", name, "'"));
  }
  *uid = found->pw_uid;
  *gid = found->pw_gid;
  return absl::OkStatus();
}

absl::Status ResolveGroup(const std::string& name, gid_t* gid) {
  uint32_t number;
  if (absl::SimpleAtoi(name, &number)) {
    *gid = number;
    return absl::OkStatus();
  }
  struct group gr;
  struct group* found = nullptr;
  char buf[4096];
  if (getgrnam_r(name.c_str(), &gr, buf, sizeof(buf), &found) != 0 ||
      found == nullptr) {
    return absl::NotFoundError(absl::StrCat("no group named '", name, "'"));
  }
  *gid = found->gr_gid;
  return absl::OkStatus();
}

absl::Status Convert(const DaemonConfig& c, const Locator& at,
                     DaemonSettings* s) {
  if (c.has_control_socket()) {
    if (!IsAbsolute(c.control_socket()) ||
        c.control_socket().size() >= sizeof(sockaddr_un::sun_path)) {
      return at.Error(c, "control_socket", -1,
                      absl::StrCat("must be an absolute path shorter than ",
                                   sizeof(sockaddr_un::sun_path), " bytes"));
    }
    s->control_socket = c.control_socket();
  }
  if (c.has_control_socket_mode()) {
    if (c.control_socket_mode() > 0777) {
      return at.Error(c, "control_socket_mode", -1,
                      "must be permission bits, e.g. 0666 or 0660");
    }
    s->control_socket_mode = c.control_socket_mode();
  }
  if (c.has_control_socket_group()) {
    absl::Status st = ResolveGroup(c.control_socket_group(),
                                   &s->control_socket_gid);
    if (!st.ok()) {
      return at.Error(c, "control_socket_group", -1,
                      std::string(st.message()));
    }
  }
  if (c.has_runtime_dir()) {
    if (!IsAbsolute(c.runtime_dir())) {
      return at.Error(c, "runtime_dir", -1, "must be an absolute path");
    }
    s->runtime_dir = c.runtime_dir();
  }
  if (c.has_metrics_address() && !c.metrics_address().empty()) {
    absl::Status st = CheckHostPort(c.metrics_address());
    if (!st.ok()) {
      return at.Error(c, "metrics_address", -1, std::string(st.message()));
    }
    s->metrics_address = c.metrics_address();
  }
  if (c.has_default_mount_options()) {
    absl::StatusOr<MountOptions> opts =
        ParseMountOptions(c.default_mount_options());
    if (!opts.ok()) {
      return at.Error(c, "default_mount_options", -1,
                      std::string(opts.status().message()));
    }
    s->default_mount_options = c.default_mount_options();
  }
  if (c.has_fuse_conf()) {
    if (!IsAbsolute(c.fuse_conf())) {
      return at.Error(c, "fuse_conf", -1, "must be an absolute path");
    }
    s->users.fuse_conf_path = c.fuse_conf();
  }
  const config::v1::UserPolicy& u = c.users();
  switch (u.allow_other()) {
    case config::v1::UserPolicy::ALWAYS:
      s->users.allow_other = UserPolicy::AllowOther::kAlways;
      break;
    case config::v1::UserPolicy::NEVER:
      s->users.allow_other = UserPolicy::AllowOther::kNever;
      break;
    default:
      s->users.allow_other = UserPolicy::AllowOther::kFromFuseConf;
      break;
  }
  if (u.has_max_mounts_per_user()) {
    s->users.max_mounts_per_user = u.max_mounts_per_user();
  }
  if (u.has_max_mounts()) s->users.max_mounts = u.max_mounts();
  if (u.has_allow_tcp_backends()) {
    s->users.allow_tcp_backends = u.allow_tcp_backends();
  }
  if (u.has_allow_insecure_tcp_backends()) {
    s->users.allow_insecure_tcp_backends = u.allow_insecure_tcp_backends();
  }
  if (u.has_require_mountpoint_owner()) {
    s->users.require_mountpoint_owner = u.require_mountpoint_owner();
  }
  if (u.has_max_control_connections()) {
    s->users.max_control_connections = u.max_control_connections();
  }
  if (u.has_max_requests_in_flight()) {
    s->users.max_requests_in_flight = u.max_requests_in_flight();
  }
  std::set<std::string> seen;
  for (int i = 0; i < c.mount_size(); ++i) {
    const config::v1::StaticMount& m = c.mount(i);
    Locator in = at.Nested(c, "mount", i);
    StaticMountSetting out;
    out.where = at.Where(c, "mount", i);
    if (m.backend().empty()) {
      return at.Error(c, "mount", i, "a mount needs a backend");
    }
    if (!IsAbsolute(m.mountpoint())) {
      return m.mountpoint().empty()
                 ? at.Error(c, "mount", i, "a mount needs a mountpoint")
                 : in.Error(m, "mountpoint", -1, "must be an absolute path");
    }
    if (!seen.insert(m.mountpoint()).second) {
      return in.Error(m, "mountpoint", -1,
                      absl::StrCat(m.mountpoint(), " is mounted twice"));
    }
    absl::StatusOr<MountOptions> opts = ParseMountOptions(m.options());
    if (!opts.ok()) {
      return in.Error(m, "options", -1, std::string(opts.status().message()));
    }
    if (!m.owner().empty()) {
      absl::Status st = ResolveUser(m.owner(), &out.owner_uid, &out.owner_gid);
      if (!st.ok()) return in.Error(m, "owner", -1, std::string(st.message()));
    }
    out.backend = m.backend();
    out.mountpoint = m.mountpoint();
    out.options = m.options();
    s->static_mounts.push_back(std::move(out));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckHostPort(absl::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", address, "' is not HOST:PORT (e.g. 127.0.0.1:9464)"));
  }
  int port;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "': the port must be 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DaemonSettings> ParseDaemonSettings(
    absl::string_view text, const std::string& filename) {
  DaemonConfig config;
  TextFormat::Parser parser;
  FirstError errors;
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ":", errors.line_ + 1, ":", errors.column_ + 1, ": ",
        errors.has_error_ ? errors.message_ : "cannot parse"));
  }
  DaemonSettings settings;
  absl::Status st = Convert(config, Locator(filename, &tree), &settings);
  if (!st.ok()) return st;
  return settings;
}

absl::StatusOr<DaemonSettings> LoadDaemonSettings(const std::string& path,
                                                  bool missing_ok) {
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    if (err == ENOENT && missing_ok) return DaemonSettings();
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read: ", std::strerror(err)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseDaemonSettings(text.str(), path);
}

}  // namespace fusehost
