// Decides what a control-socket caller may do, from the kernel credentials
// of their connection. Root may do anything. Any other user may do what
// fusermount3 would let them do, no more:
//   * mount on a directory that passes mountpoint_policy.h's checks, with
//     the mountpoint resolved and opened as the user (as_user.h) and the
//     mount then made on that very directory (/proc/self/fd/N), so no
//     symlink or rename can redirect it;
//   * with options that pass user_mount_options.h (nosuid,nodev always on;
//     allow_other per /etc/fuse.conf or the daemon's policy);
//   * from a Unix-socket backend that runs as the user: the daemon connects
//     as the user and reads the backend's uid from SO_PEERCRED (every later
//     connection is checked the same way, see backend_dialer.h); TCP backends
//     only if the policy allows them, since nobody can tell who runs one;
//   * within a per-user and a global mount limit (MountManager counts);
//   * and see, inspect and unmount only mounts they own.
// The mount always belongs to the caller (user_id/group_id are theirs).
//
// Thread-safe: const methods, no shared mutable state.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_AUTHORIZER_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_AUTHORIZER_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/authz/as_user.h"
#include "daemon/sockets/peer_credentials.h"
#include "common/unique_fd.h"

namespace fusehost {

// What users other than root may do; see proto/config.proto's UserPolicy.
struct UserPolicy {
  enum class AllowOther { kFromFuseConf, kAlways, kNever };
  AllowOther allow_other = AllowOther::kFromFuseConf;
  size_t max_mounts_per_user = 32;
  // Unset (-1): fuse.conf's mount_max.
  long max_mounts = -1;
  bool allow_tcp_backends = false;
  // Plain TCP (mount option insecure) besides TLS.
  bool allow_insecure_tcp_backends = false;
  bool require_mountpoint_owner = true;
  std::string fuse_conf_path = "/etc/fuse.conf";
  size_t max_cache_entries = 100000;
  // Deadline of the work done as the user (resolving, connecting).
  absl::Duration as_user_timeout = absl::Seconds(10);
  // Per user: control connections open, control requests being served.
  size_t max_control_connections = 16;
  size_t max_requests_in_flight = 4;
};

// A mount the caller may make, and how.
struct MountGrant {
  // Canonical mountpoint. For a non-root caller it is where `mountpoint_fd`
  // was when checked; the mount goes on the descriptor, not the path.
  std::string mountpoint;
  UniqueFd mountpoint_fd;  // invalid for root (mounts by path)
  std::string options;     // the options to mount with
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  // Set for a non-root caller's Unix-socket backend: every connection to it
  // must be made as `backend_user` and come from a process of that uid.
  std::string backend_socket;
  UserIdentity backend_user;
  // Whose rights the TLS files named in the options are read with: the
  // caller's (root for root and for the configuration's static mounts).
  UserIdentity tls_reader;
  // Limits the MountManager applies atomically to non-root owners' mounts:
  // at most this many of the owner's (0: no limit) and of all users' (-1:
  // no limit).
  size_t max_mounts_for_owner = 0;
  long max_mounts_total = -1;
};

// "unix:/path", "unix:///path" -> "/path"; anything else (TCP, DNS) -> "".
std::string UnixSocketPathOf(const std::string& backend);

// Checks that connected AF_UNIX socket `fd` leads to a process of `uid`.
// `backend` names it in the refusal.
absl::Status CheckBackendPeer(int fd, uid_t uid, const std::string& backend);

class Authorizer {
 public:
  explicit Authorizer(UserPolicy policy) : policy_(std::move(policy)) {}

  // Decides a mount request. Refusals are PERMISSION_DENIED (or NOT_FOUND,
  // INVALID_ARGUMENT, UNAVAILABLE for a missing mountpoint, a malformed
  // request, a backend that is down) with a one-line reason.
  absl::StatusOr<MountGrant> AuthorizeMount(const PeerCredentials& caller,
                                            const std::string& backend,
                                            const std::string& mountpoint,
                                            const std::string& options) const;

  // The canonical form of `path` as the caller sees it (resolved as the
  // caller), for unmount and stats lookups.
  absl::StatusOr<std::string> ResolveAsCaller(const PeerCredentials& caller,
                                              const std::string& path) const;

  // Whether `caller` may see, inspect or unmount a mount owned by `owner`.
  static bool MayManage(const PeerCredentials& caller, uid_t owner) {
    return caller.is_root() || caller.uid == owner;
  }

  const UserPolicy& policy() const { return policy_; }

 private:
  const UserPolicy policy_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_AUTHORIZER_H_
