#include "common/stat_convert.h"

#include <cerrno>

namespace fusehost {

void TimespecToProto(const struct timespec& ts, v1::Timespec* out) {
  out->set_sec(ts.tv_sec);
  out->set_nsec(static_cast<uint32_t>(ts.tv_nsec));
}

struct timespec TimespecFromProto(const v1::Timespec& ts) {
  struct timespec out = {};
  out.tv_sec = ts.sec();
  // A hostile nsec beyond a second would make the kernel reject the attrs.
  out.tv_nsec = ts.nsec() < 1000000000u ? ts.nsec() : 999999999;
  return out;
}

void StatToProto(const struct stat& st, v1::Attr* out) {
  out->set_ino(st.st_ino);
  out->set_mode(st.st_mode);
  out->set_nlink(static_cast<uint32_t>(st.st_nlink));
  out->set_uid(st.st_uid);
  out->set_gid(st.st_gid);
  out->set_rdev(st.st_rdev);
  out->set_size(st.st_size < 0 ? 0 : static_cast<uint64_t>(st.st_size));
  out->set_blocks(st.st_blocks < 0 ? 0 : static_cast<uint64_t>(st.st_blocks));
  out->set_blksize(st.st_blksize < 0 ? 0 : static_cast<uint32_t>(st.st_blksize));
  TimespecToProto(st.st_atim, out->mutable_atime());
  TimespecToProto(st.st_mtim, out->mutable_mtime());
  TimespecToProto(st.st_ctim, out->mutable_ctime());
}

void StatFromProto(const v1::Attr& attr, struct stat* out) {
  *out = {};
  out->st_ino = attr.ino();
  out->st_mode = attr.mode();
  out->st_nlink = attr.nlink();
  out->st_uid = attr.uid();
  out->st_gid = attr.gid();
  out->st_rdev = attr.rdev();
  // Sizes beyond off_t's range are clamped rather than wrapped negative.
  constexpr uint64_t kMaxOff = static_cast<uint64_t>(INT64_MAX);
  out->st_size = static_cast<off_t>(attr.size() > kMaxOff ? kMaxOff : attr.size());
  out->st_blocks =
      static_cast<blkcnt_t>(attr.blocks() > kMaxOff ? kMaxOff : attr.blocks());
  out->st_blksize = attr.blksize() == 0 ? 4096 : attr.blksize();
  out->st_atim = TimespecFromProto(attr.atime());
  out->st_mtim = TimespecFromProto(attr.mtime());
  out->st_ctim = TimespecFromProto(attr.ctime());
}

void StatvfsToProto(const struct statvfs& st, v1::StatfsReply* out) {
  out->set_bsize(st.f_bsize);
  out->set_frsize(st.f_frsize);
  out->set_blocks(st.f_blocks);
  out->set_bfree(st.f_bfree);
  out->set_bavail(st.f_bavail);
  out->set_files(st.f_files);
  out->set_ffree(st.f_ffree);
  out->set_favail(st.f_favail);
  out->set_namemax(st.f_namemax);
}

void StatvfsFromProto(const v1::StatfsReply& reply, struct statvfs* out) {
  *out = {};
  out->f_bsize = reply.bsize();
  out->f_frsize = reply.frsize() ? reply.frsize() : reply.bsize();
  out->f_blocks = reply.blocks();
  out->f_bfree = reply.bfree();
  out->f_bavail = reply.bavail();
  out->f_files = reply.files();
  out->f_ffree = reply.ffree();
  out->f_favail = reply.favail();
  out->f_namemax = reply.namemax() ? reply.namemax() : 255;
}

uint32_t CreatedFileType(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kCreate:
      return S_IFREG;
    case v1::Op::kMkdir:
      return S_IFDIR;
    case v1::Op::kSymlink:
      return S_IFLNK;
    case v1::Op::kMknod:
      // mknod(2) with no type bits makes a regular file.
      return (op.mknod().mode() & S_IFMT) != 0 ? (op.mknod().mode() & S_IFMT)
                                               : S_IFREG;
    case v1::Op::kLink:
      return kNotADirectory;
    default:
      return 0;
  }
}

bool FileTypeFits(uint32_t created_type, uint32_t mode) {
  if (created_type == 0) return true;
  if (created_type == kNotADirectory) return !S_ISDIR(mode);
  return (mode & S_IFMT) == created_type;
}

int SanitizeErrno(int posix_errno) {
  if (posix_errno == 0) return 0;
  if (posix_errno < 0 || posix_errno > kMaxErrno) return EIO;
  return posix_errno;
}

}  // namespace fusehost
