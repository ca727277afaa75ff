// Scratch directories for the daemon's tests that run code as another user:
// under /tmp (not Bazel's TEST_TMPDIR, which sits below root's 0700 home),
// removed at the end of the test.

#ifndef FUSE_HOSTD_TESTS_DAEMON_TESTING_TEST_DIRS_H_
#define FUSE_HOSTD_TESTS_DAEMON_TESTING_TEST_DIRS_H_

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/unique_fd.h"

namespace fusehost {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/fuse-hostd-unit.XXXXXX";
    path_ = mkdtemp(tmpl);
    chmod(path_.c_str(), 0755);
  }
  ~ScratchDir() {
    std::string cmd = "rm -rf '" + path_ + "'";
    (void)!system(cmd.c_str());
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }
  std::string Mkdir(const std::string& name, mode_t mode, uid_t uid = 0,
                    gid_t gid = 0) const {
    std::string p = Sub(name);
    mkdir(p.c_str(), mode);
    chmod(p.c_str(), mode);
    (void)!chown(p.c_str(), uid, gid);
    return p;
  }

 private:
  std::string path_;
};

// A listening Unix socket at `path` with permission bits `mode`.
inline UniqueFd ListenUnix(const std::string& path, mode_t mode) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(path.c_str());
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      chmod(path.c_str(), mode) != 0 || listen(fd.get(), 16) != 0) {
    return UniqueFd();
  }
  return fd;
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_TESTING_TEST_DIRS_H_
