#include "daemon/pipeline/handle_map.h"

namespace fusehost {

void HandleMap::SawInstance(uint64_t instance) {
  if (instance == 0) return;  // a backend that predates instances
  absl::MutexLock lock(&mu_);
  current_ = instance;
}

size_t HandleMap::size() const {
  absl::MutexLock lock(&mu_);
  return handles_.size();
}

void HandleMap::IssueTokens(const v1::Op& op, uint64_t instance,
                            v1::OpResult* r) {
  if (r->posix_errno() != 0) return;
  v1::OpenReply* open = op.has_open() && r->has_open() ? r->mutable_open()
                        : op.has_create() && r->has_create()
                            ? r->mutable_create()->mutable_open()
                            : nullptr;
  v1::OpendirReply* dir =
      op.has_opendir() && r->has_opendir() ? r->mutable_opendir() : nullptr;
  if (open == nullptr && dir == nullptr) return;
  absl::MutexLock lock(&mu_);
  const uint64_t token = next_++;
  if (open != nullptr) {
    handles_[token] = Handle{open->fh(), instance};
    open->set_fh(token);
  } else {
    handles_[token] = Handle{dir->fh(), instance};
    dir->set_fh(token);
  }
}

bool HandleMap::Resolve(uint64_t token, bool retire, uint64_t* fh,
                        uint64_t* instance) {
  auto it = handles_.find(token);
  if (it == handles_.end()) return false;
  *fh = it->second.fh;
  *instance = it->second.instance;
  if (retire) handles_.erase(it);
  // A handle of an instance known to be gone is never sent.
  return *instance == 0 || current_ == 0 || *instance == current_;
}

bool HandleMap::ResolveTokens(v1::Op* op) {
  absl::MutexLock lock(&mu_);
  uint64_t instance = 0;
  bool ok = true;
  // Rewrites one handle field.
  auto map = [&](uint64_t token, bool retire, auto set) {
    uint64_t fh, inst;
    if (!Resolve(token, retire, &fh, &inst)) {
      ok = false;
      return;
    }
    set(fh);
    instance = inst;
  };
#define FUSE_HOSTD_MAP(req, retire)                               \
  map(op->req().fh(), retire,                                      \
      [op](uint64_t fh) { op->mutable_##req()->set_fh(fh); })
#define FUSE_HOSTD_MAP_OPTIONAL(req)                                    \
  if (op->req().has_fh()) {                                              \
    map(op->req().fh(), false,                                            \
        [op](uint64_t fh) { op->mutable_##req()->set_fh(fh); });          \
  }
  switch (op->op_case()) {
    case v1::Op::kRead: FUSE_HOSTD_MAP(read, false); break;
    case v1::Op::kWrite: FUSE_HOSTD_MAP(write, false); break;
    case v1::Op::kFlush: FUSE_HOSTD_MAP(flush, false); break;
    case v1::Op::kRelease: FUSE_HOSTD_MAP(release, true); break;
    case v1::Op::kFsync: FUSE_HOSTD_MAP(fsync, false); break;
    case v1::Op::kReaddir: FUSE_HOSTD_MAP(readdir, false); break;
    case v1::Op::kReleasedir: FUSE_HOSTD_MAP(releasedir, true); break;
    case v1::Op::kFsyncdir: FUSE_HOSTD_MAP(fsyncdir, false); break;
    case v1::Op::kLock: FUSE_HOSTD_MAP(lock, false); break;
    case v1::Op::kFlock: FUSE_HOSTD_MAP(flock, false); break;
    case v1::Op::kFallocate: FUSE_HOSTD_MAP(fallocate, false); break;
    case v1::Op::kLseek: FUSE_HOSTD_MAP(lseek, false); break;
    case v1::Op::kGetattr: FUSE_HOSTD_MAP_OPTIONAL(getattr); break;
    case v1::Op::kChmod: FUSE_HOSTD_MAP_OPTIONAL(chmod); break;
    case v1::Op::kChown: FUSE_HOSTD_MAP_OPTIONAL(chown); break;
    case v1::Op::kTruncate: FUSE_HOSTD_MAP_OPTIONAL(truncate); break;
    case v1::Op::kUtimens: FUSE_HOSTD_MAP_OPTIONAL(utimens); break;
    case v1::Op::kIoctl: FUSE_HOSTD_MAP_OPTIONAL(ioctl); break;
    case v1::Op::kCopyFileRange:
      map(op->copy_file_range().fh_in(), false, [op](uint64_t fh) {
        op->mutable_copy_file_range()->set_fh_in(fh);
      });
      map(op->copy_file_range().fh_out(), false, [op](uint64_t fh) {
        op->mutable_copy_file_range()->set_fh_out(fh);
      });
      break;
    default:
      break;
  }
#undef FUSE_HOSTD_MAP
#undef FUSE_HOSTD_MAP_OPTIONAL
  op->set_handle_instance(instance);
  return ok;
}

}  // namespace fusehost
