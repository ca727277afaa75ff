// Conversions between the wire types of proto/filesystem.proto and the POSIX
// structs, shared by the daemon and the C++ SDK so that both sides of the
// process boundary agree on every field.
//
// Thread-safe: pure functions.

#ifndef FUSE_HOSTD_COMMON_STAT_CONVERT_H_
#define FUSE_HOSTD_COMMON_STAT_CONVERT_H_

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "proto/filesystem.pb.h"

namespace fusehost {

void TimespecToProto(const struct timespec& ts, v1::Timespec* out);
struct timespec TimespecFromProto(const v1::Timespec& ts);

void StatToProto(const struct stat& st, v1::Attr* out);
void StatFromProto(const v1::Attr& attr, struct stat* out);

void StatvfsToProto(const struct statvfs& st, v1::StatfsReply* out);
void StatvfsFromProto(const v1::StatfsReply& reply, struct statvfs* out);

// The file type (S_IFMT bits) the name an op makes must have: create,
// mknod, mkdir, symlink; kNotADirectory for link; 0 for other ops (any).
// The kernel refuses an entry of another type without a FORGET or RELEASE,
// so the reference and open handle of such a reply would never come back.
inline constexpr uint32_t kNotADirectory = ~0u;
uint32_t CreatedFileType(const v1::Op& op);
// Whether mode `mode` is what CreatedFileType asked for.
bool FileTypeFits(uint32_t created_type, uint32_t mode);

// Largest errno value accepted on the wire; anything outside 1..kMaxErrno
// (other than 0) is replaced by EIO.
inline constexpr int kMaxErrno = v1::LIMIT_MAX_ERRNO;
int SanitizeErrno(int posix_errno);

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_STAT_CONVERT_H_
