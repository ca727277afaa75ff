// loopback_fs: serves a host directory to fuse-hostd, acting as the calling
// user for every operation.
//
//   loopback_fs --listen=unix:/run/fuse-hostd/home.sock --root=/srv/home
//   fuse-hostctl mount unix:/run/fuse-hostd/home.sock /mnt/home
//
// From another machine, over mutual TLS (the README's "Mount a directory
// from another machine" makes the certificates), one command:
//
//   loopback_fs --listen=0.0.0.0:7000 --root=/srv/home
//       --tls_cert=server.pem --tls_key=server.key --tls_client_ca=ca.pem
//
// Run as root (or with CAP_SETUID and CAP_SETGID) for ownership and
// permissions to be the caller's; otherwise every operation runs as the user
// loopback_fs runs as. Whoever can connect to the listen address can act as
// any user on the root's tree: keep the socket private to the daemon.

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "client/filesystem.h"
#include "client/serve_flags.h"
#include "examples/loopback/loopback_fs.h"

// --listen and --threads come from client/serve_flags.
ABSL_FLAG(std::string, root, "", "Directory to mirror (required).");
ABSL_FLAG(bool, forward_flock, false,
          "Send flock(2) to the backing directory instead of letting the "
          "kernel keep flock locks for the mount.");
ABSL_FLAG(bool, watch, true,
          "Watch --root with inotify and tell the daemon about changes made "
          "directly in it, so that they show through the mount at once "
          "rather than after cache timeouts.");
ABSL_FLAG(bool, passthrough, true,
          "Hand fuse-hostd each opened file's descriptor, so that the kernel "
          "reads and writes it directly where it can (kernel >= 6.9).");

ABSL_FLAG(bool, acl, true,
          "Have the kernel enforce and cache the files' POSIX ACLs when "
          "--root's filesystem keeps them.");
ABSL_FLAG(bool, lsm_labels, false,
          "Mirror the host's security labels (security.selinux, "
          "security.SMACK64*, security.apparmor); otherwise they are "
          "unsupported attribute names through the mount.");

int main(int argc, char** argv) {
  std::optional<fusehost::ServeOptions> serve = fusehost::ParseServeFlags(
      argc, argv,
      {.program = "loopback_fs",
       .usage = "Serves a host directory to fuse-hostd as the calling user.\n"
                "Usage: loopback_fs --listen=unix:/path/to.sock --root=DIR",
       .example_listen = "unix:/tmp/loopback.sock"});
  if (!serve) return fusehost::kUsageError;
  fusehost::examples::LoopbackFs::Options options;
  options.root = absl::GetFlag(FLAGS_root);
  options.forward_flock = absl::GetFlag(FLAGS_forward_flock);
  options.watch = absl::GetFlag(FLAGS_watch);
  options.passthrough = absl::GetFlag(FLAGS_passthrough);
  options.acl = absl::GetFlag(FLAGS_acl);
  options.lsm_labels = absl::GetFlag(FLAGS_lsm_labels);
  if (options.root.empty()) {
    std::fprintf(stderr,
                 "loopback_fs: --root is required (the directory to mirror)\n");
    return fusehost::kUsageError;
  }

  absl::StatusOr<std::unique_ptr<fusehost::examples::LoopbackFs>> fs =
      fusehost::examples::LoopbackFs::New(options);
  if (!fs.ok()) {
    std::fprintf(stderr, "loopback_fs: %s\n",
                 std::string(fs.status().message()).c_str());
    return fusehost::kUsageError;
  }
  if ((*fs)->acts_as_caller()) {
    std::fprintf(stderr,
                 "loopback_fs: serving %s as the calling user of each "
                 "operation\n",
                 options.root.c_str());
    if (!absl::StartsWith(serve->listen, "unix") &&
        serve->tls_client_ca_file.empty()) {
      std::fprintf(stderr,
                   "loopback_fs: warning: %s is not a Unix socket and asks "
                   "for no client certificate (--tls_client_ca); anyone "
                   "who reaches it can act as any user on %s\n",
                   serve->listen.c_str(), options.root.c_str());
    }
  } else {
    std::fprintf(stderr,
                 "loopback_fs: no CAP_SETUID/CAP_SETGID: serving %s with "
                 "this process's identity (uid %d) for every caller\n",
                 options.root.c_str(), static_cast<int>(geteuid()));
  }
  if (!(*fs)->confines_paths()) {
    std::fprintf(stderr,
                 "loopback_fs: openat2(2) unavailable: symlinks swapped in "
                 "on the host can lead paths outside %s\n",
                 options.root.c_str());
  }
  return fusehost::Serve(**fs, *serve);
}
