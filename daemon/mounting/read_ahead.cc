#include "daemon/mounting/read_ahead.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {

std::string ReadAheadPath(dev_t device) {
  return absl::StrCat("/sys/class/bdi/", major(device), ":", minor(device),
                      "/read_ahead_kb");
}

absl::Status SetReadAhead(dev_t device, unsigned kb) {
  const std::string path = ReadAheadPath(device);
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  const std::string value = absl::StrCat(kb, "\n");
  ssize_t n = write(fd, value.data(), value.size());
  int error = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return absl::UnavailableError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace fusehost
