#include "daemon/authz/mountpoint_policy.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fusehost {

bool IsAllowedUnderlyingFs(int64_t fs_type) {
  // fusermount3's (libfuse 3.14) list of file systems a user may mount over.
  static constexpr uint64_t kAllowed[] = {
      0x61756673,          // AUFS_SUPER_MAGIC
      0x00000187,          // AUTOFS_SUPER_MAGIC
      0xCA451A4E,          // BCACHEFS_STATFS_MAGIC
      0x9123683E,          // BTRFS_SUPER_MAGIC
      0x00C36400,          // CEPH_SUPER_MAGIC
      0xFF534D42,          // CIFS_MAGIC_NUMBER
      0x0000F15F,          // ECRYPTFS_SUPER_MAGIC
      0x2011BAB0,          // EXFAT_SUPER_MAGIC
      0x0000EF53,          // EXT2/3/4_SUPER_MAGIC
      0xF2F52010,          // F2FS_SUPER_MAGIC
      0x65735546,          // FUSE_SUPER_MAGIC
      0x01161970,          // GFS2_MAGIC
      0x47504653,          // GPFS_SUPER_MAGIC
      0x0000482B,          // HFSPLUS_SUPER_MAGIC
      0x000072B6,          // JFFS2_SUPER_MAGIC
      0x3153464A,          // JFS_SUPER_MAGIC
      0x0BD00BD0,          // LL_SUPER_MAGIC (Lustre)
      0x00004D44,          // MSDOS_SUPER_MAGIC
      0x0000564C,          // NCP_SUPER_MAGIC
      0x00006969,          // NFS_SUPER_MAGIC
      0x00003434,          // NILFS_SUPER_MAGIC
      0x5346544E,          // NTFS_SB_MAGIC
      0x5346414F,          // OPENAFS_SUPER_MAGIC
      0x794C7630,          // OVERLAYFS_SUPER_MAGIC
      0x52654973,          // REISERFS_SUPER_MAGIC
      0xFE534D42,          // SMB2_SUPER_MAGIC
      0x73717368,          // SQUASHFS_MAGIC
      0x01021994,          // TMPFS_MAGIC
      0x24051905,          // UBIFS_SUPER_MAGIC
      0x736675005346544E,  // UFSD
      0x58465342,          // XFS_SB_MAGIC
      0x2FC12FC1,          // ZFS_SUPER_MAGIC
  };
  for (uint64_t allowed : kAllowed) {
    if (static_cast<uint64_t>(fs_type) == allowed) return true;
  }
  return false;
}

absl::Status CheckUserMountpoint(const MountpointFacts& facts, uid_t user,
                                 bool require_owner, const std::string& shown) {
  if (!S_ISDIR(facts.mode)) {
    return absl::PermissionDeniedError(
        absl::StrCat("mountpoint ", shown, " is not a directory"));
  }
  if (require_owner && facts.owner != user) {
    return absl::PermissionDeniedError(
        absl::StrCat("mountpoint ", shown, " is not owned by you (owner uid ",
                     facts.owner, ")"));
  }
  if ((facts.mode & S_ISVTX) != 0 && facts.owner != user) {
    return absl::PermissionDeniedError(absl::StrCat(
        "mountpoint ", shown, " is a sticky directory owned by someone else"));
  }
  if (facts.write_errno != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("you may not write to mountpoint ", shown, ": ",
                     std::strerror(facts.write_errno)));
  }
  if (!IsAllowedUnderlyingFs(facts.fs_type)) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "mounting over file system type %#010x (of %s) is not allowed",
        static_cast<uint64_t>(facts.fs_type), shown));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PathOfFd(int fd) {
  char buf[PATH_MAX + 1];
  std::string link = absl::StrCat("/proc/self/fd/", fd);
  ssize_t n = readlink(link.c_str(), buf, PATH_MAX);
  if (n < 0) {
    return absl::InternalError(
        absl::StrCat("readlink ", link, ": ", std::strerror(errno)));
  }
  std::string path(buf, n);
  // A directory removed meanwhile, or one outside the daemon's root.
  if (path.empty() || path[0] != '/' || absl::EndsWith(path, " (deleted)")) {
    return absl::FailedPreconditionError(
        absl::StrCat("mountpoint is no longer reachable (", path, ")"));
  }
  return path;
}

}  // namespace fusehost
