#include "daemon/passthrough/local_filesystem.h"

#include <sys/vfs.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// statfs f_type values (linux/magic.h and the filesystems' own sources).
constexpr uint32_t kLocalStorage[] = {
    0xEF53,      // ext2, ext3, ext4
    0x58465342,  // XFS
    0x9123683E,  // Btrfs
    0x01021994,  // tmpfs
    0x858458F6,  // ramfs
    0xF2F52010,  // F2FS
    0x794C7630,  // overlayfs
    0x2FC12FC1,  // ZFS
    0xCA451A4E,  // bcachefs
    0xE0F5E1E2,  // EROFS
    0x73717368,  // SquashFS
    0x9660,      // ISO 9660
    0x15013346,  // UDF
    0x4D44,      // FAT (msdos, vfat)
    0x2011BAB0,  // exFAT
    0x7366746E,  // NTFS
    0x3153464A,  // JFS
    0x52654973,  // ReiserFS
    0x3434,      // NILFS2
    0x482B,      // HFS+
};

}  // namespace

bool IsLocalStorageFilesystem(uint32_t type) {
  for (uint32_t local : kLocalStorage) {
    if (type == local) return true;
  }
  return false;
}

absl::Status CheckLocalStorageFilesystem(int fd) {
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fstatfs failed: ", std::strerror(errno)));
  }
  const uint32_t type = static_cast<uint32_t>(fs.f_type);
  if (!IsLocalStorageFilesystem(type)) {
    return absl::PermissionDeniedError(
        absl::StrCat("on a filesystem that is not local storage (type 0x",
                     absl::Hex(type), ")"));
  }
  return absl::OkStatus();
}

}  // namespace fusehost
