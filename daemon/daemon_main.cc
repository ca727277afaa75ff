// fuse-hostd: the privileged daemon that owns /dev/fuse and every mount, and
// serves the control socket. Runs in the foreground (as a systemd service
// would run it) and logs to stderr.

#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "daemon/control_service.h"
#include "daemon/kernel_mount.h"
#include "daemon/mount_manager.h"

ABSL_FLAG(std::string, control_socket, "/run/fuse-hostd/control.sock",
          "Unix socket on which the daemon takes mount requests");

namespace fusehost {
namespace {

// True if something already accepts connections on the socket at `path`.
bool SocketIsLive(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return live;
}

// Aborting a connection (on shutdown, for mounts with open files) goes
// through the fusectl filesystem; mount it if the system has not.
void EnsureFusectl() {
  const char* dir = "/sys/fs/fuse/connections";
  if (access(dir, F_OK) != 0 || MountTypeAt(dir) == "fusectl") return;
  if (mount("fusectl", dir, "fusectl", 0, nullptr) != 0) {
    fprintf(stderr, "fuse-hostd: warning: cannot mount fusectl on %s: %s\n",
            dir, strerror(errno));
  }
}

int Run(const std::string& socket_path) {
  if (geteuid() != 0) {
    fprintf(stderr, "fuse-hostd: must run as root (it mounts filesystems)\n");
    return 1;
  }
  if (socket_path.empty() || socket_path[0] != '/' ||
      socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    fprintf(stderr, "fuse-hostd: --control_socket must be an absolute path "
                    "shorter than %zu bytes\n", sizeof(sockaddr_un::sun_path));
    return 2;
  }
  // Signals are taken by sigwait below; block them before any thread exists
  // so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::string dir = socket_path.substr(0, socket_path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "fuse-hostd: cannot create %s: %s\n", dir.c_str(),
            strerror(errno));
    return 1;
  }
  if (SocketIsLive(socket_path)) {
    fprintf(stderr, "fuse-hostd: another fuse-hostd already serves %s\n",
            socket_path.c_str());
    return 1;
  }
  unlink(socket_path.c_str());  // stale socket from a crashed daemon
  EnsureFusectl();

  MountManager manager;
  ControlService service(&manager);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path,
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  // Until control connections are authorized by peer credentials, only root
  // may talk to the daemon: the socket is created owner-only.
  mode_t old_umask = umask(0077);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (server == nullptr) {
    fprintf(stderr, "fuse-hostd: cannot listen on %s\n", socket_path.c_str());
    return 1;
  }
  chmod(socket_path.c_str(), 0600);
  fprintf(stderr, "fuse-hostd: serving on %s\n", socket_path.c_str());

  int sig = 0;
  sigwait(&signals, &sig);
  fprintf(stderr, "fuse-hostd: %s received, unmounting everything\n",
          strsignal(sig));
  manager.ShutdownAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  unlink(socket_path.c_str());
  fprintf(stderr, "fuse-hostd: stopped\n");
  return 0;
}

}  // namespace
}  // namespace fusehost

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fuse-hostd [--control_socket=PATH]\n"
      "Hosts FUSE filesystems served by gRPC backends. Use fuse-hostctl to "
      "mount them.");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    fprintf(stderr, "fuse-hostd: unexpected argument '%s' (see --help)\n",
            rest[1]);
    return 2;
  }
  return fusehost::Run(absl::GetFlag(FLAGS_control_socket));
}
