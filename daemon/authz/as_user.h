// Path resolution and socket connection done *as a given user*, so that the
// kernel applies that user's permissions (search rights on every directory,
// symlinks followed with their rights, write permission on sockets) rather
// than root's. The work runs in a short-lived child process that takes the
// user's uid, gid and groups and hands the opened descriptor back over a
// socketpair (SCM_RIGHTS). The daemon then checks and uses the descriptor,
// never the path again, so nothing can be swapped between check and use.
//
// Why a child process: changing credentials inside the daemon would affect
// its other threads (glibc's setgroups/setresuid apply to all of them).
// Why raw syscalls in the child: after fork() in a multithreaded process
// only async-signal-safe calls are allowed.
//
// The child closes every inherited descriptor before it drops privileges,
// and is non-dumpable once its credentials change, so the user cannot reach
// the daemon's descriptors through it. It is killed if it overruns the
// timeout (e.g. a path through a hung network or FUSE file system).
//
// Thread-safe: each call forks its own child.

#ifndef FUSE_HOSTD_DAEMON_AUTHZ_AS_USER_H_
#define FUSE_HOSTD_DAEMON_AUTHZ_AS_USER_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace fusehost {

struct UserIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

struct OpenedDirectory {
  // O_PATH descriptor of the directory the path resolved to.
  UniqueFd fd;
  // When asked to inspect (else zero): its fstat and fstatfs f_type as the
  // user saw them (root cannot stat a FUSE mount of a user without
  // allow_other), and 0 if the user may write it, else access(2)'s errno.
  struct stat st = {};
  int64_t fs_type = 0;
  int write_errno = 0;
};

// Resolves `path` as `user` and opens the directory it names; with
// `inspect` also stats it and asks whether the user may write it (which, on
// a FUSE mount, are requests to that file system: leave it off for paths
// that may be hung mounts). Errors: the errno text of open(2) or stat as
// the user (ENOENT, EACCES, ENOTDIR, ...), with a code matching it
// (NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION).
absl::StatusOr<OpenedDirectory> OpenDirectoryAsUser(
    const UserIdentity& user, const std::string& path, bool inspect,
    absl::Duration timeout = absl::Seconds(10));

// Connects an AF_UNIX stream socket to `socket_path` as `user` (who needs
// search rights on its directories and write permission on the socket).
absl::StatusOr<UniqueFd> ConnectUnixAsUser(
    const UserIdentity& user, const std::string& socket_path,
    absl::Duration timeout = absl::Seconds(10));

struct SmallFile {
  std::string data;
  struct stat st = {};  // of the file read, as the user saw it
};

// Reads the regular file `path` as `user`, whole, if it holds at most
// `max_bytes`. The helper does the reading too (into a memfd the daemon
// then reads), so a file on a hung file system (the user's own FUSE mount,
// say) costs the helper its timeout, never a daemon thread. Errors as for
// OpenDirectoryAsUser; FAILED_PRECONDITION for something other than a
// regular file or a file too large.
absl::StatusOr<SmallFile> ReadSmallFileAsUser(
    const UserIdentity& user, const std::string& path, size_t max_bytes,
    absl::Duration timeout = absl::Seconds(10));

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_AUTHZ_AS_USER_H_
