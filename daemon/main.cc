// fuse-hostd: the privileged daemon that owns /dev/fuse and every mount, and
// serves the control socket. Runs in the foreground (as systemd runs it:
// Type=notify) and logs to stderr.
//
// Start: read the configuration (proto/config.proto), take the control
// socket (from systemd socket activation, or bind it), take up the mounts
// the keeper held for a predecessor (daemon/survival), detach the other
// mounts a crashed predecessor left behind, serve, mount the static mounts,
// then tell systemd it is ready. Stop (SIGTERM/SIGINT): tell systemd, stop
// taking requests, unmount everything, exit 0. Hand over (SIGUSR2, under a
// keeper): stop reading kernel requests, wait for those read to be
// answered, exit 75 with every mount left to the next daemon.
//
// With --supervise the process is the keeper instead (survival/keeper.h):
// it runs the daemon as its child, holds its mounts while it restarts, and
// starts it again.

#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log_line.h"
#include "common/one_malloc_arena.h"
#include "common/payload_heap.h"
#include "common/unique_fd.h"
#include "daemon/authz/authorizer.h"
#include "daemon/control/control_listener.h"
#include "daemon/control/control_service.h"
#include "daemon/control/daemon_config.h"
#include "daemon/control/metrics_server.h"
#include "daemon/control/metrics_text.h"
#include "daemon/control/service_notifier.h"
#include "daemon/mount_manager.h"
#include "daemon/mounting/kernel_mount.h"
#include "daemon/survival/keeper.h"
#include "daemon/survival/keeper_client.h"
#include "daemon/survival/systemd_fd_store.h"

ABSL_FLAG(std::string, config, "",
          "Configuration file (protobuf text, see proto/config.proto). "
          "Default /etc/fuse-hostd/fuse-hostd.conf, which may be missing.");
ABSL_FLAG(std::string, control_socket, "",
          "Unix socket for mount requests (overrides the configuration; "
          "default /run/fuse-hostd/control.sock)");
ABSL_FLAG(std::string, metrics_address, "",
          "HOST:PORT on which to serve Prometheus metrics, e.g. "
          "127.0.0.1:9464 (overrides the configuration; default off)");
ABSL_FLAG(bool, check_config, false,
          "Only check the configuration file and exit (0: good, 2: bad)");
ABSL_FLAG(bool, systemd_fd_store, false,
          "Keep every mount's /dev/fuse descriptor and state in systemd's "
          "file descriptor store, so that mounts survive a crash, a "
          "watchdog restart or a hand-over (SIGUSR2) of the service; the "
          "unit must set FileDescriptorStoreMax=");
ABSL_FLAG(bool, supervise, false,
          "Run as the keeper: start the daemon (with the same arguments) as "
          "a child, hold its mounts' descriptors so that they survive its "
          "crashes, and restart it when it crashes or hands over");

namespace fusehost {
namespace {

constexpr char kControlService[] = "fusehost.v1.Control";

// True if something already accepts connections on the socket at `path`.
bool SocketIsLive(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ==
         0;
}

// Aborting a connection (on shutdown, for mounts with open files) goes
// through the fusectl filesystem; mount it if the system has not.
void EnsureFusectl() {
  const char* dir = "/sys/fs/fuse/connections";
  if (access(dir, F_OK) != 0 || MountTypeAt(dir) == "fusectl") return;
  if (mount("fusectl", dir, "fusectl", 0, nullptr) != 0) {
    Log("warning: cannot mount fusectl on %s: %s",
            dir, strerror(errno));
  }
}

// The listening control socket: systemd's (socket activation: `passed`,
// which holds what systemd passed but for the descriptor store's) or our
// own. `*owned` says whether the daemon created the path (and removes it).
absl::StatusOr<int> ControlSocket(const DaemonSettings& settings,
                                  const std::vector<NamedFd>& passed,
                                  bool* owned) {
  const size_t n = passed.size();
  if (n > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "systemd passed ", n, " sockets; fuse-hostd.socket should have one"));
  }
  if (n == 1) {
    int fd = passed[0].fd;
    if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
      return absl::InvalidArgumentError(
          "the socket systemd passed is not a listening Unix stream socket");
    }
    *owned = false;
    return fd;
  }
  const std::string& path = settings.control_socket;
  if (SocketIsLive(path)) {
    return absl::AlreadyExistsError(
        absl::StrCat("another fuse-hostd already serves ", path));
  }
  unlink(path.c_str());  // stale socket from a crashed daemon
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  // Owner-only until chmod: no one connects before the mode is final.
  mode_t old_umask = umask(0077);
  int rc = fd.valid() ? bind(fd.get(), reinterpret_cast<sockaddr*>(&addr),
                             sizeof(addr))
                      : -1;
  int err = errno;
  umask(old_umask);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot bind ", path, ": ", strerror(err)));
  }
  // Every local user may connect (by default): each call is authorized by
  // the caller's kernel credentials.
  if (chown(path.c_str(), 0, settings.control_socket_gid) != 0 ||
      chmod(path.c_str(), settings.control_socket_mode) != 0 ||
      listen(fd.get(), 64) != 0) {
    return absl::InternalError(absl::StrCat(path, ": ", strerror(errno)));
  }
  *owned = true;
  return fd.release();
}

// How long a hand-over waits for requests already read to be answered.
constexpr absl::Duration kHandOverWait = absl::Seconds(5);

int Run(DaemonSettings settings) {
  if (geteuid() != 0) {
    Log("must run as root (it mounts filesystems)");
    return 1;
  }
  // Before any thread: these change the environment.
  std::vector<NamedFd> passed = TakeSystemdDescriptors();
  // Where mounts are kept while the daemon restarts: its keeper's, or
  // systemd's descriptor store; none, and mounts end with the daemon.
  std::unique_ptr<KeeperClient> keeper_client = KeeperClient::FromEnvironment();
  KeeperClient* keeper = keeper_client.get();
  std::unique_ptr<DescriptorStore> store = std::move(keeper_client);
  if (store == nullptr && absl::GetFlag(FLAGS_systemd_fd_store)) {
    store = std::make_unique<SystemdFdStore>(&passed);
  }
  // Signals are taken by sigwait below; block them before any thread exists
  // so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // A hand-over to a new daemon (from the keeper); ignored without one.
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServiceNotifier notifier;
  const std::string& socket_path = settings.control_socket;
  std::string socket_dir = socket_path.substr(0, socket_path.rfind('/'));
  std::string runtime_dir =
      settings.runtime_dir.empty() ? socket_dir : settings.runtime_dir;
  for (const std::string& dir : {socket_dir, runtime_dir}) {
    if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      Log("cannot create %s: %s", dir.c_str(),
              strerror(errno));
      return 1;
    }
  }
  bool owned_socket = false;
  absl::StatusOr<int> listen_fd =
      ControlSocket(settings, passed, &owned_socket);
  if (!listen_fd.ok()) {
    Log("%s",
            std::string(listen_fd.status().message()).c_str());
    return 1;
  }
  EnsureFusectl();

  MountManager::Options manager_options;
  manager_options.runtime_dir = runtime_dir;
  manager_options.default_options = settings.default_mount_options;
  manager_options.store = store.get();
  MountManager manager(manager_options);
  // Each is logged as it is resumed.
  manager.ResumeKeptMounts();
  for (const std::string& stale : manager.DetachStaleMounts()) {
    Log("detached stale mount %s left by a previous "
            "fuse-hostd",
            stale.c_str());
  }
  Authorizer authorizer(settings.users);
  ControlListener* listener_ptr = nullptr;
  ControlService::Options service_options;
  service_options.manager = &manager;
  service_options.authorizer = &authorizer;
  service_options.caller_of = [&listener_ptr](const grpc::ServerContext& c) {
    return listener_ptr->CallerOf(c);
  };
  service_options.max_requests_in_flight_per_uid =
      settings.users.max_requests_in_flight;
  ControlService service(service_options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  // Idle control connections (every local user can open them) go away.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 60 * 1000);
  // No listening port: connections come from the ControlListener, which
  // learns their credentials first.
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    Log("cannot start the gRPC server");
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(kControlService, true);
  ControlListener listener(ControlListener::Options{
      *listen_fd, server.get(), settings.users.max_control_connections});
  listener_ptr = &listener;
  listener.Start();
  Log("serving on %s%s", socket_path.c_str(),
          owned_socket ? "" : " (socket from systemd)");

  int static_failed = 0;
  for (const StaticMountSetting& m : settings.static_mounts) {
    MountGrant grant;
    grant.mountpoint = m.mountpoint;
    grant.options = m.options;
    grant.owner_uid = m.owner_uid;
    grant.owner_gid = m.owner_gid;
    absl::StatusOr<uint64_t> id = manager.Mount(m.backend, std::move(grant));
    if (!id.ok()) {
      ++static_failed;
      Log("static mount %s (%s) failed: %s",
              m.mountpoint.c_str(), m.where.c_str(),
              std::string(id.status().message()).c_str());
    }
  }

  std::unique_ptr<MetricsServer> metrics;
  if (!settings.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> created =
        MetricsServer::Create(MetricsServer::Options{
            settings.metrics_address,
            [&manager] { return RenderMetrics(manager.Stats()); }});
    if (!created.ok()) {
      Log("%s",
              std::string(created.status().message()).c_str());
      manager.ShutdownAll();
      server->Shutdown();
      return 1;
    }
    metrics = *std::move(created);
    Log("metrics on http://%s/metrics",
            settings.metrics_address.c_str());
  }

  std::string ready = absl::StrCat("serving on ", socket_path, "; ",
                                   manager.List().size(), " mounts");
  if (static_failed > 0) {
    absl::StrAppend(&ready, " (", static_failed, " static mounts failed)");
  }
  notifier.Ready(ready);
  if (keeper != nullptr) {
    absl::Status told = keeper->Ready();
    if (!told.ok()) {
      Log("cannot tell the keeper the daemon serves: %s",
          std::string(told.message()).c_str());
    }
  }
  absl::Duration watchdog =
      notifier.StartWatchdog([&manager] { manager.List(); });
  if (watchdog > absl::ZeroDuration()) {
    Log("watchdog every %s",
            absl::FormatDuration(watchdog / 2).c_str());
  }

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGUSR2) break;
    if (store == nullptr) {
      Log("SIGUSR2 ignored: a hand-over needs a keeper (fuse-hostd "
          "--supervise) or systemd's descriptor store (--systemd_fd_store)");
      continue;
    }
    // The store holds every mount; requests read and not answered by the
    // deadline are sent again to the next daemon by the kernel. (Not
    // STOPPING=1: systemd must restart the service, not stop it.)
    Log("handing over to a new daemon");
    notifier.Status("handing over to a new daemon");
    listener.Stop();
    int unready = manager.QuiesceAll(absl::Now() + kHandOverWait);
    if (unready > 0) {
      Log("%d mounts are not handed over as they are (requests still in "
          "flight, which the kernel sends the next daemon again, or a mount "
          "the keeper does not hold)",
          unready);
    }
    Log("handed over");
    // No destructor may run: they would unmount what the next daemon takes.
    _exit(Keeper::kHandedOver);
  }
  Log("%s received, unmounting everything",
          strsignal(sig));
  notifier.Stopping("unmounting everything");
  server->GetHealthCheckService()->Shutdown();
  listener.Stop();
  if (metrics != nullptr) metrics->Stop();
  manager.ShutdownAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (owned_socket) unlink(socket_path.c_str());
  Log("stopped");
  return 0;
}

}  // namespace
}  // namespace fusehost

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fuse-hostd [--config=PATH] [--control_socket=PATH] "
      "[--metrics_address=HOST:PORT] [--check_config]\n"
      "Hosts FUSE filesystems served by gRPC backends. Use fuse-hostctl to "
      "mount them.");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_supervise)) {
    return fusehost::RunKeeper(fusehost::WithoutSuperviseFlag(argc, argv));
  }
  // Debian builds abseil without NDEBUG, which turns on lock-order cycle
  // detection in every absl::Mutex, gRPC's own locks included: a graph
  // update on each lock, on every request. The daemon's tests run the same
  // code with it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Read and write payloads pass through here without passthrough.
  fusehost::KeepPayloadsInHeap();
  // A node and a cache entry per file, allocated by every thread.
  fusehost::UseOneMallocArena();
  if (rest.size() > 1) {
    fusehost::Log("unexpected argument '%s' (see --help)",
            rest[1]);
    return 2;
  }
  std::string config = absl::GetFlag(FLAGS_config);
  bool explicit_config = !config.empty();
  if (!explicit_config) config = fusehost::kDefaultConfigPath;
  absl::StatusOr<fusehost::DaemonSettings> settings =
      fusehost::LoadDaemonSettings(config, /*missing_ok=*/!explicit_config);
  if (!settings.ok()) {
    fusehost::Log("%s",
            std::string(settings.status().message()).c_str());
    return 2;
  }
  if (std::string s = absl::GetFlag(FLAGS_control_socket); !s.empty()) {
    if (s[0] != '/' || s.size() >= sizeof(sockaddr_un::sun_path)) {
      fusehost::Log("--control_socket must be an absolute path "
              "shorter than %zu bytes",
              sizeof(sockaddr_un::sun_path));
      return 2;
    }
    settings->control_socket = s;
  }
  if (std::string m = absl::GetFlag(FLAGS_metrics_address); !m.empty()) {
    absl::Status st = fusehost::CheckHostPort(m);
    if (!st.ok()) {
      fusehost::Log("--metrics_address: %s",
              std::string(st.message()).c_str());
      return 2;
    }
    settings->metrics_address = m;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    printf("%s: ok (%zu static mounts)\n", config.c_str(),
           settings->static_mounts.size());
    return 0;
  }
  return fusehost::Run(*std::move(settings));
}
