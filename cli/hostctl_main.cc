// fuse-hostctl: the command-line client of fuse-hostd's control socket.
//
//   fuse-hostctl [--control_socket=PATH] mount BACKEND MOUNTPOINT [-o OPTIONS]
//   fuse-hostctl [--control_socket=PATH] unmount [--lazy] MOUNTPOINT
//   fuse-hostctl [--control_socket=PATH] list
//   fuse-hostctl [--control_socket=PATH] stats [MOUNTPOINT]
//   fuse-hostctl [--control_socket=PATH] health [SERVICE]
//
// Every failure is one line on stderr and a non-zero exit status:
// 1 for a refused or failed request, 2 for a usage error.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/control_client.h"
#include "common/escape.h"

namespace fusehost {
namespace {

constexpr char kUsage[] =
    "usage: fuse-hostctl [--control_socket=PATH] COMMAND\n"
    "\n"
    "commands:\n"
    "  mount BACKEND MOUNTPOINT [-o OPTIONS]  mount a backend (unix:/path.sock\n"
    "                                         or host:port) at MOUNTPOINT\n"
    "  unmount [-l|--lazy] MOUNTPOINT         unmount (lazily: even with open "
    "files)\n"
    "  list                                   show fuse-hostd's mounts (yours,\n"
    "                                         unless you are root)\n"
    "  stats [MOUNTPOINT]                     per-operation counts and "
    "latencies,\n"
    "                                         cache and backend counters\n"
    "  health [SERVICE]                       gRPC health check of the daemon\n"
    "\n"
    "options (-o, comma-separated): ro, allow_other, no_default_permissions,\n"
    "  fsname=NAME, subtype=NAME, attr_timeout=S, entry_timeout=S,\n"
    "  negative_timeout=S, timeout=S (per backend call), max_write=BYTES;\n"
    "  others are passed to the backend.\n";

int UsageError(const std::string& message) {
  fprintf(stderr, "fuse-hostctl: %s\n%s", message.c_str(), kUsage);
  return 2;
}

int Fail(const ControlClient& client, const grpc::Status& status) {
  fprintf(stderr, "fuse-hostctl: %s\n", client.Describe(status).c_str());
  return 1;
}

// 1234us -> "1.2ms"; latencies are bucket bounds, two digits are plenty.
std::string Latency(uint64_t us) {
  if (us < 1000) return absl::StrCat(us, "us");
  if (us < 1000000) return absl::StrCat(us / 1000, ".", us % 1000 / 100, "ms");
  return absl::StrCat(us / 1000000, ".", us % 1000000 / 100000, "s");
}

int List(ControlClient& client) {
  v1::ListReply reply;
  grpc::Status s = client.List(&reply);
  if (!s.ok()) return Fail(client, s);
  printf("%-30s %-32s %-10s %-11s %s\n", "MOUNTPOINT", "BACKEND", "OWNER",
         "STATE", "OPTIONS");
  for (const v1::MountInfo& m : reply.mounts()) {
    // Mountpoints, backends and options are the mounting users' words:
    // escaped, they cannot pass for other rows or columns.
    printf("%-30s %-32s %-10s %-11s %s\n", EscapeField(m.mountpoint()).c_str(),
           EscapeField(m.backend()).c_str(), UserName(m.owner_uid()).c_str(),
           m.state().c_str(),
           m.options().empty() ? "-" : EscapeField(m.options()).c_str());
    // A TCP backend's identity, on its own line (it is long, and a
    // subject has spaces): escaped, it cannot pass for another row.
    if (!m.backend_identity().empty()) {
      printf("  backend identity: %s\n",
             EscapeControl(m.backend_identity()).c_str());
    }
  }
  return 0;
}

int Stats(ControlClient& client, const std::string& mountpoint) {
  v1::StatsReply reply;
  grpc::Status s = client.Stats(mountpoint, &reply);
  if (!s.ok()) return Fail(client, s);
  bool first = true;
  for (const v1::MountStatsInfo& m : reply.mounts()) {
    if (!first) printf("\n");
    first = false;
    printf("%s  (mount %llu, backend %s, owner %s)\n",
           EscapeField(m.mountpoint()).c_str(),
           static_cast<unsigned long long>(m.mount_id()),
           EscapeField(m.backend()).c_str(),
           UserName(m.owner_uid()).c_str());
    printf("  kernel requests  %llu, inodes held by the kernel %llu\n",
           static_cast<unsigned long long>(m.kernel_requests()),
           static_cast<unsigned long long>(m.kernel_nodes()));
    printf("  backend          %llu messages, %llu ops (%.1f per message), "
           "%llu errors, %llu invalid replies\n",
           static_cast<unsigned long long>(m.backend_messages()),
           static_cast<unsigned long long>(m.backend_ops()),
           m.backend_messages() == 0
               ? 0.0
               : static_cast<double>(m.backend_ops()) / m.backend_messages(),
           static_cast<unsigned long long>(m.backend_errors()),
           static_cast<unsigned long long>(m.backend_invalid()));
    printf("  session stream   %llu of the messages\n",
           static_cast<unsigned long long>(m.backend_session_messages()));
    printf("  cache entries    %llu (limit %llu), %llu KiB (limit %llu KiB)\n",
           static_cast<unsigned long long>(m.cache_entries()),
           static_cast<unsigned long long>(m.cache_limit()),
           static_cast<unsigned long long>(m.cache_bytes() / 1024),
           static_cast<unsigned long long>(m.cache_bytes_limit() / 1024));
    printf("  passthrough      %llu opens (%llu by the daemon), %llu "
           "refused, %llu backing files now\n",
           static_cast<unsigned long long>(m.passthrough_opens()),
           static_cast<unsigned long long>(m.daemon_opens()),
           static_cast<unsigned long long>(m.passthrough_refused()),
           static_cast<unsigned long long>(m.backing_files()));
    printf(
        "  daemon changes   %llu chmod, chown, utimens, unlink, rmdir and "
        "create made by the daemon\n",
        static_cast<unsigned long long>(m.daemon_changes()));
    printf(
        "  daemon lookups   %llu answered from the file beneath the "
        "backend's root\n",
        static_cast<unsigned long long>(m.daemon_lookups()));
    printf("  listings         %llu fetched ahead\n",
           static_cast<unsigned long long>(m.listings_prefetched()));
    printf("  small files      %llu fetched ahead, %llu opens answered "
           "with them\n",
           static_cast<unsigned long long>(m.contents_fetched_ahead()),
           static_cast<unsigned long long>(m.opens_answered_ahead()));
    printf("  io_uring         %llu kernel requests taken from the rings\n",
           static_cast<unsigned long long>(m.uring_requests()));
    printf("  write-behind     %llu answered early, %llu refused later, "
           "%llu queued now\n",
           static_cast<unsigned long long>(m.written_behind()),
           static_cast<unsigned long long>(m.write_behind_failed()),
           static_cast<unsigned long long>(m.write_behind_queued()));
    printf("  %-12s %12s %12s\n", "CACHE", "HITS", "MISSES");
    for (const v1::CacheStats& c : m.caches()) {
      printf("  %-12s %12llu %12llu\n", c.cache().c_str(),
             static_cast<unsigned long long>(c.hits()),
             static_cast<unsigned long long>(c.misses()));
    }
    printf("  %-14s %10s %8s %9s %9s %9s\n", "OP", "COUNT", "ERRORS", "P50",
           "P90", "P99");
    for (const v1::OpStats& op : m.ops()) {
      printf("  %-14s %10llu %8llu %9s %9s %9s\n", op.op().c_str(),
             static_cast<unsigned long long>(op.count()),
             static_cast<unsigned long long>(op.errors()),
             Latency(op.p50_us()).c_str(), Latency(op.p90_us()).c_str(),
             Latency(op.p99_us()).c_str());
    }
  }
  if (first) printf("no mounts\n");
  return 0;
}

int Health(ControlClient& client, const std::string& service) {
  grpc::health::v1::HealthCheckResponse reply;
  grpc::Status s = client.Health(service, &reply);
  if (!s.ok()) return Fail(client, s);
  std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(reply.status());
  printf("%s\n", name.c_str());
  return reply.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0
                                                                          : 1;
}

int Main(int argc, char** argv) {
  ControlClient::Options client_options;
  std::vector<std::string> args;
  std::string options;
  bool lazy = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      fputs(kUsage, stdout);
      return 0;
    } else if (a.rfind("--control_socket=", 0) == 0) {
      client_options.socket_path = a.substr(strlen("--control_socket="));
    } else if (a == "--control_socket") {
      if (++i == argc) return UsageError("--control_socket needs a path");
      client_options.socket_path = argv[i];
    } else if (a == "-o") {
      if (++i == argc) return UsageError("-o needs options");
      options += (options.empty() ? "" : ",") + std::string(argv[i]);
    } else if (a.rfind("-o", 0) == 0 && a.size() > 2) {
      options += (options.empty() ? "" : ",") + a.substr(2);
    } else if (a == "-l" || a == "--lazy") {
      lazy = true;
    } else if (!a.empty() && a[0] == '-') {
      return UsageError("unknown option " + a);
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return UsageError("no command given");
  const std::string& command = args[0];
  const bool unmount = command == "unmount" || command == "umount";
  if (command == "mount") {
    if (args.size() != 3) return UsageError("mount takes BACKEND MOUNTPOINT");
  } else if (unmount) {
    if (args.size() != 2) return UsageError("unmount takes MOUNTPOINT");
  } else if (command == "list") {
    if (args.size() != 1) return UsageError("list takes no arguments");
  } else if (command == "stats") {
    if (args.size() > 2) return UsageError("stats takes at most a MOUNTPOINT");
  } else if (command == "health") {
    if (args.size() > 2) return UsageError("health takes at most a SERVICE");
  } else {
    return UsageError("unknown command '" + command + "'");
  }
  if (!options.empty() && command != "mount") {
    return UsageError("-o applies to mount only");
  }
  if (lazy && !unmount) return UsageError("--lazy applies to unmount only");
  ControlClient client(client_options);
  absl::Status socket = client.CheckSocket();
  if (!socket.ok()) {
    fprintf(stderr, "fuse-hostctl: %s\n", std::string(socket.message()).c_str());
    return 1;
  }
  if (command == "mount") {
    grpc::Status s = client.Mount(args[1], args[2], options, nullptr);
    return s.ok() ? 0 : Fail(client, s);
  }
  if (unmount) {
    grpc::Status s = client.Unmount(args[1], lazy);
    return s.ok() ? 0 : Fail(client, s);
  }
  if (command == "list") return List(client);
  if (command == "stats") return Stats(client, args.size() == 2 ? args[1] : "");
  return Health(client, args.size() == 2 ? args[1] : "");
}

}  // namespace
}  // namespace fusehost

int main(int argc, char** argv) { return fusehost::Main(argc, argv); }
