#include "daemon/pipeline/reply_validator.h"
#include "common/log_line.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <sys/stat.h>

#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/paths.h"
#include "common/stat_convert.h"

namespace fusehost {
namespace {

using Problems = std::vector<std::string>;

bool IsFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

// Checks an Attr's own fields; false if it has no real file type. A bad
// xattr name list is dropped (the attributes stay usable).
bool CheckAttr(v1::Attr* attr, Problems* problems) {
  if (!IsFileType(attr->mode())) {
    problems->push_back("attributes with no valid file type");
    return false;
  }
  if (attr->xattr_names_known()) {
    for (const std::string& name : attr->xattr_names()) {
      if (!IsValidName(name)) {
        problems->push_back("an invalid extended attribute name");
        attr->set_xattr_names_known(false);
        attr->clear_xattr_names();
        break;
      }
    }
  } else if (attr->xattr_names_size() != 0) {
    attr->clear_xattr_names();
  }
  return true;
}

// An optional Attr (present per `has`): dropped when invalid. One left at
// its defaults is the same as none.
// For attributes a result may carry: false when they must be dropped (an
// empty message, or one that fails CheckAttr). Callers test presence first,
// since asking for a mutable field creates it.
bool KeepOptionalAttr(v1::Attr* attr, Problems* problems) {
  if (attr->mode() == 0 && attr->ByteSizeLong() == 0) return false;
  return CheckAttr(attr, problems);
}

// False when the page is too big to keep.
bool CheckReaddir(v1::ReaddirReply* reply, Problems* problems) {
  auto* entries = reply->mutable_entries();
  size_t name_bytes = 0;
  for (const v1::DirEntry& e : *entries) name_bytes += e.name().size();
  if (entries->size() > kMaxPageEntries || name_bytes > kMaxPageNameBytes) {
    problems->push_back("a listing page over the size limit");
    return false;
  }
  // Views of the names in place: SwapElements below moves pointers, not
  // the entries, and nothing is removed before the loop ends.
  absl::flat_hash_set<absl::string_view> seen;
  seen.reserve(entries->size());
  int kept = 0;
  for (int i = 0; i < entries->size(); ++i) {
    v1::DirEntry& e = (*entries)[i];
    // "." and ".." stay: the directory handle skips them but keeps their
    // resume cookies (a page may hold nothing else).
    const bool dots = e.name() == "." || e.name() == "..";
    if (!dots && !IsValidName(e.name())) {
      problems->push_back("an invalid name in a listing");
      continue;
    }
    if (!dots && !seen.insert(e.name()).second) {
      problems->push_back("a name listed twice");
      continue;
    }
    if (e.has_attr() && !CheckAttr(e.mutable_attr(), problems)) {
      e.clear_attr();
    }
    if (e.type() != 0 && (!IsFileType(e.type()) || (e.type() & ~S_IFMT))) {
      problems->push_back("an invalid file type in a listing");
      e.set_type(0);
    }
    if (kept != i) entries->SwapElements(kept, i);
    ++kept;
  }
  while (entries->size() > kept) entries->RemoveLast();
  return true;
}

// The result field each op must (or may) carry on success.
enum class Payload { kNone, kOptional, kRequired };

Payload PayloadOf(const ReplyExpectation& expect,
                  v1::OpResult::ResultCase* want) {
  using O = v1::Op;
  using R = v1::OpResult;
  switch (expect.op) {
    case O::kGetattr: *want = R::kGetattr; return Payload::kRequired;
    case O::kReadlink: *want = R::kReadlink; return Payload::kRequired;
    case O::kOpen: *want = R::kOpen; return Payload::kRequired;
    case O::kCreate: *want = R::kCreate; return Payload::kRequired;
    case O::kRead: *want = R::kRead; return Payload::kOptional;
    case O::kWrite: *want = R::kWrite; return Payload::kRequired;
    case O::kStatfs: *want = R::kStatfs; return Payload::kRequired;
    case O::kGetxattr:
    case O::kListxattr: *want = R::kXattr; return Payload::kOptional;
    case O::kOpendir: *want = R::kOpendir; return Payload::kOptional;
    case O::kReaddir: *want = R::kReaddir; return Payload::kOptional;
    case O::kCopyFileRange: *want = R::kCopyFileRange; return Payload::kRequired;
    case O::kLseek: *want = R::kLseek; return Payload::kRequired;
    case O::kIoctl: *want = R::kIoctl; return Payload::kRequired;
    case O::kLock:
      *want = R::kLock;
      return expect.getlk ? Payload::kRequired : Payload::kOptional;
    case O::kMknod:
    case O::kMkdir:
    case O::kSymlink:
    case O::kLink:
    case O::kChmod:
    case O::kChown:
    case O::kTruncate:
    case O::kUtimens: *want = R::kEntry; return Payload::kOptional;
    default: *want = R::RESULT_NOT_SET; return Payload::kNone;
  }
}

// Checks the payload of a successful result; false means the result as a
// whole cannot be used (EIO).
bool CheckPayload(const ReplyExpectation& expect, v1::OpResult* r,
                  Problems* problems) {
  v1::OpResult::ResultCase want;
  Payload payload = PayloadOf(expect, &want);
  const v1::OpResult::ResultCase got = r->result_case();
  if (got != want && got != v1::OpResult::RESULT_NOT_SET &&
      got != v1::OpResult::kEmpty) {
    problems->push_back("a reply of the wrong kind");
    return false;
  }
  if (got != want) {
    if (payload == Payload::kRequired) {
      problems->push_back("a reply without its result");
      return false;
    }
    r->clear_result();
    return true;
  }
  switch (got) {
    case v1::OpResult::kGetattr:
      return CheckAttr(r->mutable_getattr()->mutable_attr(), problems);
    case v1::OpResult::kEntry:
      if (r->entry().has_attr() &&
          !KeepOptionalAttr(r->mutable_entry()->mutable_attr(), problems)) {
        r->mutable_entry()->clear_attr();
      }
      if (r->entry().has_attr() &&
          !FileTypeFits(expect.created_type, r->entry().attr().mode())) {
        problems->push_back("a new name of another file type than made");
        return false;
      }
      return true;
    case v1::OpResult::kCreate:
      if (r->create().has_attr() &&
          !KeepOptionalAttr(r->mutable_create()->mutable_attr(), problems)) {
        r->mutable_create()->clear_attr();
      }
      if (r->create().has_attr() &&
          !FileTypeFits(expect.created_type, r->create().attr().mode())) {
        problems->push_back("a new name of another file type than made");
        return false;
      }
      if (r->create().open().has_contents()) {
        r->mutable_create()->mutable_open()->clear_contents();  // opens only
      }
      return true;
    case v1::OpResult::kWrite:
      if (r->write().has_attr() &&
          !KeepOptionalAttr(r->mutable_write()->mutable_attr(), problems)) {
        r->mutable_write()->clear_attr();
      }
      if (r->write().size() > expect.size) {
        problems->push_back("a write of more bytes than given");
        r->mutable_write()->set_size(expect.size);
      }
      return true;
    case v1::OpResult::kRead:
      if (r->read().data().size() > expect.size) {
        problems->push_back("a read longer than asked");
        r->mutable_read()->mutable_data()->resize(expect.size);
      }
      return true;
    case v1::OpResult::kCopyFileRange:
      if (r->copy_file_range().size() > expect.size) {
        problems->push_back("a copy of more bytes than asked");
        r->mutable_copy_file_range()->set_size(expect.size);
      }
      return true;
    case v1::OpResult::kReadlink: {
      std::string* target = r->mutable_readlink()->mutable_target();
      if (target->empty() || target->find('\0') != std::string::npos) {
        problems->push_back("an empty symlink target or one with a NUL");
        return false;
      }
      if (target->size() > PATH_MAX - 1) {
        problems->push_back("a symlink target longer than PATH_MAX");
        target->resize(PATH_MAX - 1);
      }
      return true;
    }
    case v1::OpResult::kOpen:
      if (r->open().has_contents() &&
          r->open().contents().size() > kMaxOpenContents) {
        problems->push_back("open contents above the limit");
        r->mutable_open()->clear_contents();
      }
      return true;
    case v1::OpResult::kReaddir:
      return CheckReaddir(r->mutable_readdir(), problems);
    case v1::OpResult::kXattr:
      if (r->xattr().data().size() > XATTR_SIZE_MAX) {
        problems->push_back("an extended attribute over 64 KiB");
        return false;
      }
      return true;
    case v1::OpResult::kLseek:
      if (r->lseek().offset() < 0) {
        problems->push_back("a negative seek offset");
        return false;
      }
      return true;
    case v1::OpResult::kIoctl:
      if (r->ioctl().result() < 0) {
        problems->push_back("a negative ioctl result");
        return false;
      }
      if (r->ioctl().out_data().size() > expect.size) {
        problems->push_back("ioctl data longer than asked");
        r->mutable_ioctl()->mutable_out_data()->resize(expect.size);
      }
      return true;
    case v1::OpResult::kLock: {
      int type = r->lock().lock().type();
      if (type != F_RDLCK && type != F_WRLCK && type != F_UNLCK) {
        problems->push_back("an unknown lock type");
        return false;
      }
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

ReplyExpectation ReplyExpectation::Of(const v1::Op& op) {
  ReplyExpectation e;
  e.op = op.op_case();
  switch (e.op) {
    case v1::Op::kRead: e.size = op.read().size(); break;
    case v1::Op::kWrite: e.size = op.write().data().size(); break;
    case v1::Op::kCopyFileRange: e.size = op.copy_file_range().length(); break;
    case v1::Op::kIoctl: e.size = op.ioctl().out_size(); break;
    case v1::Op::kLock: e.getlk = op.lock().cmd() == F_GETLK; break;
    default: break;
  }
  e.created_type = CreatedFileType(op);
  return e;
}

std::vector<std::string> ValidateResult(const ReplyExpectation& expect,
                                        v1::OpResult* r) {
  Problems problems;
  int err = SanitizeErrno(r->posix_errno());
  if (err != r->posix_errno()) problems.push_back("an errno out of range");
  if (err == 0) {
    if (CheckPayload(expect, r, &problems)) {
      // Directory attributes after a change of names: optional.
      if (r->has_parent_attr() &&
          !KeepOptionalAttr(r->mutable_parent_attr(), &problems)) {
        r->clear_parent_attr();
      }
      if (r->has_old_parent_attr() &&
          !KeepOptionalAttr(r->mutable_old_parent_attr(), &problems)) {
        r->clear_old_parent_attr();
      }
      r->set_posix_errno(0);
      return problems;
    }
    err = EIO;
  }
  // A failure carries nothing but its errno.
  uint64_t id = r->id();
  r->Clear();
  r->set_id(id);
  r->set_posix_errno(err);
  return problems;
}

std::string ValidateNotice(const v1::Invalidation& notice) {
  if (!v1::Invalidation::Kind_IsValid(notice.kind())) return "an unknown kind";
  const std::string& path = notice.path();
  if (path.empty() || path[0] != '/') return "a path that is not absolute";
  if (path == "/") return "";
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    absl::string_view part(path.data() + start, end - start);
    if (!IsValidName(part) || part == "." || part == "..") {
      return "a path with an invalid component";
    }
    start = end + 1;
  }
  if (path.back() == '/') return "a path with an invalid component";
  return "";
}

ReplyValidator::ReplyValidator(Options options) : options_(std::move(options)) {}

OpTransport::Done ReplyValidator::Checked(const v1::Op& op, Done done) {
  return [this, expect = ReplyExpectation::Of(op),
          done = std::move(done)](const v1::OpResult& result) {
    v1::OpResult checked = result;
    std::vector<std::string> problems = ValidateResult(expect, &checked);
    if (!problems.empty()) Report("reply", problems);
    done(checked);
  };
}

void ReplyValidator::SendBatch(std::vector<PendingOp> ops,
                               std::function<void()> sent, bool in_order) {
  for (PendingOp& p : ops) {
    p.check = [this, expect = ReplyExpectation::Of(p.op)](v1::OpResult* r) {
      std::vector<std::string> problems = ValidateResult(expect, r);
      if (!problems.empty()) Report("reply", problems);
    };
  }
  options_.sink->SendBatch(std::move(ops), std::move(sent), in_order);
}

void ReplyValidator::Send(v1::Op op, Done done) {
  Done checked = Checked(op, std::move(done));
  options_.transport->Send(std::move(op), std::move(checked));
}

bool ReplyValidator::AcceptNotice(const v1::Invalidation& notice) {
  std::string problem = ValidateNotice(notice);
  if (problem.empty()) return true;
  Report("notice", {problem + " (ignored)"});
  return false;
}

void ReplyValidator::Report(const char* what,
                            const std::vector<std::string>& problems) {
  if (options_.stats != nullptr) options_.stats->RecordInvalidReply();
  constexpr int kBurst = 10;
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t start = log_window_start_.load();
  if (now - start >= 60 && log_window_start_.compare_exchange_strong(start, now)) {
    logged_in_window_.store(0);
  }
  int n = logged_in_window_.fetch_add(1);
  if (n >= kBurst) return;
  Log("%s: backend sent a %s with %s%s",
          options_.log_name.c_str(), what,
          absl::StrJoin(problems, ", ").c_str(),
          n + 1 == kBurst ? " (more such lines this minute are not logged)"
                          : "");
}

}  // namespace fusehost
