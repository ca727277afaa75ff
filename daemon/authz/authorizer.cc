#include "daemon/authz/authorizer.h"

#include <limits.h>
#include <stdlib.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/authz/fuse_conf.h"
#include "daemon/authz/mountpoint_policy.h"
#include "daemon/authz/user_mount_options.h"
#include "daemon/mounting/mount_options.h"

namespace fusehost {
namespace {

UserIdentity IdentityOf(const PeerCredentials& caller) {
  UserIdentity id;
  id.uid = caller.uid;
  id.gid = caller.gid;
  id.groups = caller.groups;
  return id;
}

}  // namespace

std::string UnixSocketPathOf(const std::string& backend) {
  absl::string_view rest = backend;
  if (!absl::ConsumePrefix(&rest, "unix:")) return "";
  // "unix:///abs" is gRPC's URI form of "unix:/abs".
  if (absl::StartsWith(rest, "//")) rest.remove_prefix(2);
  return std::string(rest);
}

absl::Status CheckBackendPeer(int fd, uid_t uid, const std::string& backend) {
  absl::StatusOr<PeerCredentials> peer = GetPeerCredentials(fd);
  if (!peer.ok()) return peer.status();
  if (peer->uid != uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        "backend ", backend, " does not run as you (it runs as ",
        DescribePeer(*peer), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MountGrant> Authorizer::AuthorizeMount(
    const PeerCredentials& caller, const std::string& backend,
    const std::string& mountpoint, const std::string& options) const {
  MountGrant grant;
  grant.owner_uid = caller.uid;
  grant.owner_gid = caller.gid;
  grant.tls_reader = IdentityOf(caller);
  if (caller.is_root()) {
    grant.mountpoint = mountpoint;
    grant.options = options;
    return grant;
  }
  if (policy_.max_mounts_per_user == 0) {
    return absl::PermissionDeniedError(
        "the fuse-hostd configuration allows no mounts by users other than "
        "root (users.max_mounts_per_user is 0)");
  }
  if (mountpoint.empty() || mountpoint[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("mountpoint ", mountpoint, " is not an absolute path"));
  }
  // fuse.conf is read for every request, as fusermount3 does.
  FuseConf fuse_conf = ReadFuseConf(policy_.fuse_conf_path);

  // Options first: refusing them costs nothing.
  UserOptionRules rules;
  rules.max_cache_entries = policy_.max_cache_entries;
  switch (policy_.allow_other) {
    case UserPolicy::AllowOther::kAlways:
      rules.allow_other_permitted = true;
      break;
    case UserPolicy::AllowOther::kNever:
      rules.allow_other_refusal = "the fuse-hostd configuration forbids it";
      break;
    case UserPolicy::AllowOther::kFromFuseConf:
      rules.allow_other_permitted = fuse_conf.user_allow_other;
      rules.allow_other_refusal =
          absl::StrCat(policy_.fuse_conf_path, " has no user_allow_other");
      break;
  }
  absl::StatusOr<std::string> checked = CheckUserMountOptions(options, rules);
  if (!checked.ok()) return checked.status();
  grant.options = *std::move(checked);

  // The mountpoint, resolved and checked as the caller.
  UserIdentity user = IdentityOf(caller);
  absl::StatusOr<OpenedDirectory> dir = OpenDirectoryAsUser(
      user, mountpoint, /*inspect=*/true, policy_.as_user_timeout);
  if (!dir.ok()) {
    // open(2)'s errors name the path; say which path it is.
    bool named = absl::IsNotFound(dir.status()) ||
                 absl::IsPermissionDenied(dir.status()) ||
                 absl::IsFailedPrecondition(dir.status());
    return absl::Status(dir.status().code(),
                        absl::StrCat(named ? "mountpoint " : "",
                                     dir.status().message()));
  }
  MountpointFacts facts{dir->st.st_uid, dir->st.st_mode, dir->fs_type,
                        dir->write_errno};
  absl::Status st = CheckUserMountpoint(
      facts, caller.uid, policy_.require_mountpoint_owner, mountpoint);
  if (!st.ok()) return st;
  absl::StatusOr<std::string> canonical = PathOfFd(dir->fd.get());
  if (!canonical.ok()) return canonical.status();
  grant.mountpoint = *std::move(canonical);
  grant.mountpoint_fd = std::move(dir->fd);

  // The backend must be the caller's own.
  std::string socket = UnixSocketPathOf(backend);
  if (socket.empty()) {
    if (!policy_.allow_tcp_backends) {
      return absl::PermissionDeniedError(absl::StrCat(
          "backend ", backend,
          " is not a Unix socket (unix:/path): the daemon cannot tell who "
          "runs a TCP backend, and its configuration does not allow users "
          "to mount them"));
    }
    absl::StatusOr<MountOptions> parsed = ParseMountOptions(grant.options);
    if (parsed.ok() && parsed->insecure &&
        !policy_.allow_insecure_tcp_backends) {
      return absl::PermissionDeniedError(absl::StrCat(
          "backend ", backend,
          ": plain TCP (option insecure) is not allowed for users by the "
          "fuse-hostd configuration; use TLS (tls_ca=...)"));
    }
  } else {
    if (socket[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "backend ", backend, ": the socket path must be absolute"));
    }
    absl::StatusOr<UniqueFd> conn =
        ConnectUnixAsUser(user, socket, policy_.as_user_timeout);
    if (!conn.ok()) {
      // "unreachable" is what clients look for to tell a backend that is
      // down from a daemon that is (see ControlClient::Describe).
      return absl::Status(
          conn.status().code(),
          absl::StrCat("backend ", backend,
                       absl::IsUnavailable(conn.status()) ? " is unreachable"
                                                          : "",
                       ": ", conn.status().message()));
    }
    absl::Status peer = CheckBackendPeer(conn->get(), caller.uid, backend);
    if (!peer.ok()) return peer;
    grant.backend_socket = socket;
    grant.backend_user = user;
  }

  grant.max_mounts_for_owner = policy_.max_mounts_per_user;
  grant.max_mounts_total =
      policy_.max_mounts >= 0 ? policy_.max_mounts : fuse_conf.mount_max;
  return grant;
}

absl::StatusOr<std::string> Authorizer::ResolveAsCaller(
    const PeerCredentials& caller, const std::string& path) const {
  if (caller.is_root()) {
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) != nullptr) return std::string(resolved);
    return path;
  }
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an absolute path"));
  }
  absl::StatusOr<OpenedDirectory> dir =
      OpenDirectoryAsUser(IdentityOf(caller), path, /*inspect=*/false,
                          policy_.as_user_timeout);
  if (!dir.ok()) return dir.status();
  return PathOfFd(dir->fd.get());
}

}  // namespace fusehost
