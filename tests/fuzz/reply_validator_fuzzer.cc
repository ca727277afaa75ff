// libFuzzer target over the reply validator: whatever a backend sends, what
// comes out of ValidateResult() keeps the promises the rest of the daemon
// relies on (reply_validator.h), and nothing crashes on the way.
//
// Input: one byte choosing the op the result answers, eight bytes of the
// size it asked for (read size, write length, ...), the rest a serialized
// OpResult; the same rest is also tried as an Invalidation notice.

#include <sys/stat.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "common/paths.h"
#include "common/stat_convert.h"
#include "daemon/pipeline/reply_validator.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

bool IsFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
    case S_IFBLK: case S_IFIFO: case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

// A broken invariant names itself: every trap looks alike in a stack.
#define Require(cond)                                                  \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "invariant broken at %s:%d: %s\n", __FILE__,    \
              __LINE__, #cond);                                        \
      abort();                                                         \
    }                                                                  \
  } while (0)

// An Attr the rest of the daemon may use as it is.
void RequireValidAttr(const v1::Attr& a) {
  Require(IsFileType(a.mode()));
  if (a.xattr_names_known()) {
    for (const std::string& n : a.xattr_names()) Require(IsValidName(n));
  }
}

void CheckResult(const ReplyExpectation& e, const v1::OpResult& r) {
  Require(r.posix_errno() >= 0 && r.posix_errno() <= kMaxErrno);
  if (r.posix_errno() != 0) {
    // A failure carries its id and errno, nothing else.
    v1::OpResult bare;
    bare.set_id(r.id());
    bare.set_posix_errno(r.posix_errno());
    Require(r.SerializeAsString() == bare.SerializeAsString());
    return;
  }
  if (r.has_parent_attr()) RequireValidAttr(r.parent_attr());
  if (r.has_old_parent_attr()) RequireValidAttr(r.old_parent_attr());
  switch (r.result_case()) {
    case v1::OpResult::kGetattr:
      Require(e.op == v1::Op::kGetattr);
      RequireValidAttr(r.getattr().attr());
      break;
    case v1::OpResult::kEntry:
      if (r.entry().has_attr()) RequireValidAttr(r.entry().attr());
      break;
    case v1::OpResult::kCreate:
      if (r.create().has_attr()) RequireValidAttr(r.create().attr());
      break;
    case v1::OpResult::kWrite:
      Require(r.write().size() <= e.size);
      if (r.write().has_attr()) RequireValidAttr(r.write().attr());
      break;
    case v1::OpResult::kRead:
      Require(r.read().data().size() <= e.size);
      break;
    case v1::OpResult::kCopyFileRange:
      Require(r.copy_file_range().size() <= e.size);
      break;
    case v1::OpResult::kReadlink: {
      const std::string& t = r.readlink().target();
      Require(!t.empty() && t.find('\0') == std::string::npos &&
              t.size() < 4096);
      break;
    }
    case v1::OpResult::kOpen:
      Require(!r.open().has_contents() ||
              r.open().contents().size() <= kMaxOpenContents);
      break;
    case v1::OpResult::kReaddir: {
      absl::flat_hash_set<std::string> seen;
      for (const v1::DirEntry& d : r.readdir().entries()) {
        bool dots = d.name() == "." || d.name() == "..";
        Require(dots || IsValidName(d.name()));
        Require(dots || seen.insert(d.name()).second);
        if (d.has_attr()) RequireValidAttr(d.attr());
        Require(d.type() == 0 || IsFileType(d.type()));
      }
      break;
    }
    case v1::OpResult::kLseek:
      Require(r.lseek().offset() >= 0);
      break;
    default:
      break;
  }
}

}  // namespace
}  // namespace fusehost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fusehost::v1::Op;
  if (size < 9) return 0;
  static const Op::OpCase kOps[] = {
      Op::kGetattr, Op::kReadlink, Op::kMknod, Op::kMkdir, Op::kUnlink,
      Op::kRename, Op::kLink, Op::kChmod, Op::kOpen, Op::kRead, Op::kWrite,
      Op::kStatfs, Op::kGetxattr, Op::kListxattr, Op::kOpendir,
      Op::kReaddir, Op::kCreate, Op::kLock, Op::kCopyFileRange, Op::kLseek};
  fusehost::ReplyExpectation e;
  e.op = kOps[data[0] % (sizeof(kOps) / sizeof(kOps[0]))];
  e.getlk = data[0] & 0x80;
  memcpy(&e.size, data + 1, sizeof(e.size));
  fusehost::v1::OpResult result;
  if (result.ParseFromArray(data + 9, static_cast<int>(size - 9))) {
    fusehost::ValidateResult(e, &result);
    fusehost::CheckResult(e, result);
  }
  fusehost::v1::Invalidation notice;
  if (notice.ParseFromArray(data + 9, static_cast<int>(size - 9)) &&
      fusehost::ValidateNotice(notice).empty()) {
    const std::string& p = notice.path();
    Require(!p.empty() && p[0] == '/' &&
                      p.find('\0') == std::string::npos);
  }
  return 0;
}
