// fuse-hostctl: the command-line client of fuse-hostd's control socket.
//
//   fuse-hostctl [--control_socket=PATH] mount BACKEND MOUNTPOINT [-o OPTIONS]
//   fuse-hostctl [--control_socket=PATH] unmount [--lazy] MOUNTPOINT
//   fuse-hostctl [--control_socket=PATH] list
//
// Every failure is one line on stderr and a non-zero exit status:
// 1 for a refused or failed request, 2 for a usage error.

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "proto/control.grpc.pb.h"

namespace fusehost {
namespace {

constexpr char kDefaultSocket[] = "/run/fuse-hostd/control.sock";

constexpr char kUsage[] =
    "usage: fuse-hostctl [--control_socket=PATH] COMMAND\n"
    "\n"
    "commands:\n"
    "  mount BACKEND MOUNTPOINT [-o OPTIONS]  mount a backend (unix:/path.sock\n"
    "                                         or host:port) at MOUNTPOINT\n"
    "  unmount [-l|--lazy] MOUNTPOINT         unmount (lazily: even with open "
    "files)\n"
    "  list                                   show fuse-hostd's mounts\n"
    "\n"
    "options (-o, comma-separated): ro, allow_other, no_default_permissions,\n"
    "  fsname=NAME, subtype=NAME, attr_timeout=S, entry_timeout=S,\n"
    "  negative_timeout=S, timeout=S (per backend call), max_write=BYTES;\n"
    "  others are passed to the backend.\n";

int UsageError(const std::string& message) {
  fprintf(stderr, "fuse-hostctl: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// Prints a failed call as one line. Connection failures name the socket.
int Fail(const grpc::Status& status, const std::string& socket_path) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      status.error_message().find("unreachable") == std::string::npos) {
    fprintf(stderr,
            "fuse-hostctl: cannot reach fuse-hostd at %s (is it running?)\n",
            socket_path.c_str());
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    fprintf(stderr, "fuse-hostctl: fuse-hostd did not answer in time\n");
  } else {
    fprintf(stderr, "fuse-hostctl: %s\n", status.error_message().c_str());
  }
  return 1;
}

// The daemon resolves paths in its own working directory; send absolute ones.
std::string Absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

class Client {
 public:
  explicit Client(std::string socket_path)
      : socket_path_(std::move(socket_path)),
        stub_(v1::Control::NewStub(grpc::CreateChannel(
            "unix:" + socket_path_, grpc::InsecureChannelCredentials()))) {}

  // A deadline long enough for a slow backend handshake and an unmount that
  // waits for the session to end.
  void Prepare(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
  }

  int Mount(const std::string& backend, const std::string& mountpoint,
            const std::string& options) {
    v1::MountRequest request;
    request.set_backend(backend);
    request.set_mountpoint(Absolute(mountpoint));
    request.set_options(options);
    v1::MountReply reply;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status s = stub_->Mount(&context, request, &reply);
    return s.ok() ? 0 : Fail(s, socket_path_);
  }

  int Unmount(const std::string& mountpoint, bool lazy) {
    v1::UnmountRequest request;
    request.set_mountpoint(Absolute(mountpoint));
    request.set_lazy(lazy);
    v1::UnmountReply reply;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status s = stub_->Unmount(&context, request, &reply);
    return s.ok() ? 0 : Fail(s, socket_path_);
  }

  int List() {
    v1::ListReply reply;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status s = stub_->List(&context, v1::ListRequest(), &reply);
    if (!s.ok()) return Fail(s, socket_path_);
    printf("%-30s %-32s %-10s %-11s %s\n", "MOUNTPOINT", "BACKEND", "OWNER",
           "STATE", "OPTIONS");
    for (const v1::MountInfo& m : reply.mounts()) {
      std::string owner = std::to_string(m.owner_uid()) + ":" +
                          std::to_string(m.owner_gid());
      printf("%-30s %-32s %-10s %-11s %s\n", m.mountpoint().c_str(),
             m.backend().c_str(), owner.c_str(), m.state().c_str(),
             m.options().empty() ? "-" : m.options().c_str());
    }
    return 0;
  }

 private:
  std::string socket_path_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

int Main(int argc, char** argv) {
  std::string socket_path = kDefaultSocket;
  std::vector<std::string> args;
  std::string options;
  bool lazy = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      fputs(kUsage, stdout);
      return 0;
    } else if (a.rfind("--control_socket=", 0) == 0) {
      socket_path = a.substr(strlen("--control_socket="));
    } else if (a == "--control_socket") {
      if (++i == argc) return UsageError("--control_socket needs a path");
      socket_path = argv[i];
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
  struct stat st;
  if (stat(socket_path.c_str(), &st) != 0) {
    fprintf(stderr,
            "fuse-hostctl: fuse-hostd is not running (no control socket at "
            "%s: %s)\n",
            socket_path.c_str(), strerror(errno));
    return 1;
  }
  Client client(socket_path);
  if (command == "mount") {
    if (args.size() != 3) return UsageError("mount takes BACKEND MOUNTPOINT");
    if (lazy) return UsageError("--lazy applies to unmount only");
    return client.Mount(args[1], args[2], options);
  }
  if (!options.empty()) return UsageError("-o applies to mount only");
  if (command == "unmount" || command == "umount") {
    if (args.size() != 2) return UsageError("unmount takes MOUNTPOINT");
    return client.Unmount(args[1], lazy);
  }
  if (command == "list") {
    if (args.size() != 1) return UsageError("list takes no arguments");
    return client.List();
  }
  return UsageError("unknown command '" + command + "'");
}

}  // namespace
}  // namespace fusehost

int main(int argc, char** argv) { return fusehost::Main(argc, argv); }
