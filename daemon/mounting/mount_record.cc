#include "daemon/mounting/mount_record.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "daemon/mounting/mountinfo.h"

namespace fusehost {

absl::Status WriteMountRecord(const std::string& path,
                              const std::vector<RecordedMount>& mounts) {
  std::string text;
  for (const RecordedMount& m : mounts) {
    absl::StrAppend(&text, m.mount_id, " ", major(m.device), ":",
                    minor(m.device), " ", EscapeMountPath(m.mountpoint), " ",
                    m.kernel_mount_id, "\n");
  }
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat(tmp, ": ", strerror(errno)));
  }
  bool ok = write(fd, text.data(), text.size()) ==
            static_cast<ssize_t>(text.size());
  ok = (close(fd) == 0) && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

std::vector<RecordedMount> ReadMountRecord(const std::string& path) {
  std::vector<RecordedMount> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    RecordedMount m;
    std::string dev, point;
    unsigned maj = 0, min = 0;
    if (!(fields >> m.mount_id >> dev >> point) ||
        sscanf(dev.c_str(), "%u:%u", &maj, &min) != 2) {
      continue;
    }
    m.device = makedev(maj, min);
    if (!(fields >> m.kernel_mount_id)) m.kernel_mount_id = 0;
    m.mountpoint = UnescapeMountPath(point);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace fusehost
