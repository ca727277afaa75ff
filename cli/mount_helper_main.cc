// mount.fuse.hostd: lets mount(8) and /etc/fstab mount fuse-hostd backends.
//
//   mount -t fuse.hostd unix:/run/photos.sock /srv/photos -o ro,allow_other
//   # /etc/fstab:
//   unix:/run/photos.sock  /srv/photos  fuse.hostd  ro,allow_other,nofail  0 0
//
// mount(8) runs it as `mount.fuse.hostd SOURCE MOUNTPOINT [-sfnv] [-N NS]
// [-o OPTIONS] [-t TYPE]`. It strips the options that are mount(8)'s own
// (defaults, auto, noauto, user, users, nouser, owner, group, _netdev,
// nofail, comment=, x-*), takes `control_socket=PATH` for itself (default:
// $FUSE_HOSTD_CONTROL_SOCKET, else /run/fuse-hostd/control.sock), and asks
// the daemon to mount, exactly as `fuse-hostctl mount` would, with the
// caller's own credentials.
//
// Exit status as mount(8) documents for helpers: 0 mounted, 1 usage, 32 the
// mount failed or was refused (one line on stderr says why).

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/control_client.h"

namespace fusehost {
namespace {

constexpr int kUsage = 1;
constexpr int kMountFailure = 32;

bool IsMountOwnOption(absl::string_view key) {
  static constexpr absl::string_view kOwn[] = {
      "defaults", "auto",  "noauto",  "user",    "users",
      "nouser",   "owner", "group",   "_netdev", "nofail"};
  for (absl::string_view own : kOwn) {
    if (key == own) return true;
  }
  return absl::StartsWith(key, "x-") || key == "comment";
}

int Usage(const char* message) {
  fprintf(stderr,
          "mount.fuse.hostd: %s\n"
          "usage: mount.fuse.hostd BACKEND MOUNTPOINT [-sfnv] [-o OPTIONS]\n",
          message);
  return kUsage;
}

int Main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::vector<std::string> raw_options;
  bool fake = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o") {
      if (++i == argc) return Usage("-o needs options");
      raw_options.push_back(argv[i]);
    } else if (a.rfind("-o", 0) == 0 && a.size() > 2) {
      raw_options.push_back(a.substr(2));
    } else if (a == "-t" || a == "-N") {
      ++i;  // the type (fuse.hostd) and mount(8)'s namespace: nothing to do
    } else if (a.size() > 1 && a[0] == '-') {
      for (char c : a.substr(1)) {
        if (c == 'f') {
          fake = true;
        } else if (c == 'v') {
          verbose = true;
        } else if (c != 's' && c != 'n') {
          return Usage(("unknown flag -" + std::string(1, c)).c_str());
        }
      }
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) return Usage("needs BACKEND and MOUNTPOINT");

  ControlClient::Options client_options;
  if (const char* env = getenv("FUSE_HOSTD_CONTROL_SOCKET"); env && *env) {
    client_options.socket_path = env;
  }
  std::vector<std::string> options;
  for (const std::string& group : raw_options) {
    for (absl::string_view item : absl::StrSplit(group, ',', absl::SkipEmpty())) {
      absl::string_view key = item.substr(0, item.find('='));
      if (key == "control_socket") {
        client_options.socket_path = std::string(item.substr(key.size() + 1));
      } else if (!IsMountOwnOption(key)) {
        options.emplace_back(item);
      }
    }
  }
  std::string joined = absl::StrJoin(options, ",");
  if (verbose) {
    fprintf(stderr, "mount.fuse.hostd: mounting %s at %s (options '%s') via %s\n",
            positional[0].c_str(), positional[1].c_str(), joined.c_str(),
            client_options.socket_path.c_str());
  }
  if (fake) return 0;
  ControlClient client(client_options);
  absl::Status socket = client.CheckSocket();
  if (!socket.ok()) {
    fprintf(stderr, "mount.fuse.hostd: %s\n",
            std::string(socket.message()).c_str());
    return kMountFailure;
  }
  grpc::Status s = client.Mount(positional[0], positional[1], joined, nullptr);
  if (!s.ok()) {
    fprintf(stderr, "mount.fuse.hostd: %s\n", client.Describe(s).c_str());
    return kMountFailure;
  }
  return 0;
}

}  // namespace
}  // namespace fusehost

int main(int argc, char** argv) { return fusehost::Main(argc, argv); }
