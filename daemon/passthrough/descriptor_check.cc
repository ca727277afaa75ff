#include "daemon/passthrough/descriptor_check.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/passthrough/local_filesystem.h"

namespace fusehost {
namespace {

const char* ModeName(int accmode) {
  switch (accmode) {
    case O_RDONLY:
      return "read-only";
    case O_WRONLY:
      return "write-only";
    case O_RDWR:
      return "read-write";
    default:
      return "unknown";
  }
}

}  // namespace

absl::Status CheckBackingDescriptor(int fd, int open_flags, struct stat* st) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a usable descriptor: ", std::strerror(errno)));
  }
  if (fl & O_PATH) {
    return absl::InvalidArgumentError("an O_PATH descriptor");
  }
  if (fstat(fd, st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fstat failed: ", std::strerror(errno)));
  }
  if (!S_ISREG(st->st_mode)) {
    return absl::InvalidArgumentError("not a regular file");
  }
  if (absl::Status local = CheckLocalStorageFilesystem(fd); !local.ok()) {
    return local;
  }
  int want = open_flags & O_ACCMODE;
  int have = fl & O_ACCMODE;
  if (want != have) {
    return absl::PermissionDeniedError(
        absl::StrCat("opened ", ModeName(have), " for a ", ModeName(want),
                     " open"));
  }
  if (want != O_RDONLY) {
    // A write must clear set-user-ID and set-group-ID bits, which the
    // backend does for the writes it sees; the kernel writes a backing
    // file with the daemon's privileges, which keep them.
    bool set_id = (st->st_mode & S_ISUID) != 0 ||
                  (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
    if (set_id) {
      return absl::PermissionDeniedError(
          "a set-user-ID or set-group-ID file opened for writing");
    }
    int attrs = 0;
    // File systems without inode flags answer ENOTTY: nothing to respect.
    if (ioctl(fd, FS_IOC_GETFLAGS, &attrs) == 0 &&
        (attrs & (FS_APPEND_FL | FS_IMMUTABLE_FL)) != 0) {
      return absl::PermissionDeniedError(
          "an append-only or immutable file opened for writing");
    }
  }
  return absl::OkStatus();
}

}  // namespace fusehost
