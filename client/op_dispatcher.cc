#include "client/op_dispatcher.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/paths.h"
#include "common/stat_convert.h"

namespace fusehost {
namespace {

Context ContextFromCaller(const v1::Caller& caller, uint64_t mount_id) {
  Context ctx;
  ctx.mount_id = mount_id;
  ctx.uid = caller.uid();
  ctx.gid = caller.gid();
  ctx.pid = static_cast<pid_t>(caller.pid());
  ctx.umask = caller.umask();
  ctx.groups.assign(caller.groups().begin(), caller.groups().end());
  return ctx;
}

FileInfo HandleInfo(uint64_t fh) {
  FileInfo fi;
  fi.fh = fh;
  return fi;
}

// For requests whose `fh` is optional: a FileInfo only when the kernel asked
// through an open file, so that the filesystem can tell fstat from stat (and
// reach an unlinked file, whose path is empty).
template <typename Request>
const FileInfo* OptionalHandle(const Request& req, FileInfo* storage) {
  if (!req.has_fh()) return nullptr;
  *storage = HandleInfo(req.fh());
  return storage;
}

// Whether `op` carries a handle the backend issued (fh, fh_in, fh_out): the
// ops on open files always do, the attribute ops only when the kernel asked
// through an open file.
bool CarriesHandle(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kRead:
    case v1::Op::kWrite:
    case v1::Op::kFlush:
    case v1::Op::kRelease:
    case v1::Op::kFsync:
    case v1::Op::kReaddir:
    case v1::Op::kReleasedir:
    case v1::Op::kFsyncdir:
    case v1::Op::kLock:
    case v1::Op::kFlock:
    case v1::Op::kFallocate:
    case v1::Op::kCopyFileRange:
    case v1::Op::kLseek:
      return true;
    case v1::Op::kGetattr:
      return op.getattr().has_fh();
    case v1::Op::kChmod:
      return op.chmod().has_fh();
    case v1::Op::kChown:
      return op.chown().has_fh();
    case v1::Op::kTruncate:
      return op.truncate().has_fh();
    case v1::Op::kUtimens:
      return op.utimens().has_fh();
    case v1::Op::kIoctl:
      return op.ioctl().has_fh();
    default:
      return false;
  }
}

// Offsets travel as uint64; a value beyond off_t would turn negative in the
// filesystem, where nothing expects it.
bool ToOffset(uint64_t value, off_t* out) {
  if (value > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return false;
  }
  *out = static_cast<off_t>(value);
  return true;
}

// Puts the attributes of `path` (or of `fi`'s file) into reply->attr, so the
// daemon need not ask. Left unset when Getattr fails: the operation itself
// succeeded, and the daemon then asks on its own.
template <typename Reply>
void FillAttr(FileSystem& fs, const Context& ctx, const std::string& path,
              const FileInfo* fi, Reply* reply) {
  struct stat st = {};
  if (fs.Getattr(ctx, path, fi, &st) == 0) {
    StatToProto(st, reply->mutable_attr());
  }
}

// Completes an operation whose reply is `entry`: on success, the entry reply
// with the attributes of the file afterwards.
int ReplyEntry(int rc, FileSystem& fs, const Context& ctx,
               const std::string& path, const FileInfo* fi,
               v1::OpResult* result) {
  if (rc == 0) FillAttr(fs, ctx, path, fi, result->mutable_entry());
  return rc;
}

void FillOpenReply(const FileInfo& fi, v1::OpenReply* reply) {
  reply->set_fh(fi.fh);
  reply->set_direct_io(fi.direct_io);
  reply->set_keep_cache(fi.keep_cache);
  reply->set_nonseekable(fi.nonseekable);
  reply->set_noflush(fi.noflush);
  if (fi.has_contents) reply->set_contents(fi.contents);
}

// Returns false for a kind this SDK does not know (a newer daemon).
bool ToTimeSpec(const v1::TimeSet& set, TimeSpec* out) {
  *out = TimeSpec();
  switch (set.kind()) {
    case v1::TimeSet::OMIT:
      out->omit = true;
      return true;
    case v1::TimeSet::NOW:
      out->now = true;
      return true;
    case v1::TimeSet::SET:
      out->time = TimespecFromProto(set.time());
      return true;
    default:
      return false;
  }
}

int Getattr(FileSystem& fs, const Context& ctx, const v1::GetattrRequest& req,
            v1::OpResult* result) {
  FileInfo storage;
  struct stat st = {};
  int rc = fs.Getattr(ctx, req.path(), OptionalHandle(req, &storage), &st);
  if (rc == 0) StatToProto(st, result->mutable_getattr()->mutable_attr());
  return rc;
}

int Readlink(FileSystem& fs, const Context& ctx, const v1::ReadlinkRequest& req,
             v1::OpResult* result) {
  return fs.Readlink(ctx, req.path(),
                     result->mutable_readlink()->mutable_target());
}

int Chmod(FileSystem& fs, const Context& ctx, const v1::ChmodRequest& req,
          v1::OpResult* result) {
  FileInfo storage;
  const FileInfo* fi = OptionalHandle(req, &storage);
  int rc = fs.Chmod(ctx, req.path(), req.mode(), fi);
  return ReplyEntry(rc, fs, ctx, req.path(), fi, result);
}

int Chown(FileSystem& fs, const Context& ctx, const v1::ChownRequest& req,
          v1::OpResult* result) {
  FileInfo storage;
  const FileInfo* fi = OptionalHandle(req, &storage);
  // An unset id is chown(2)'s -1: leave it unchanged.
  uid_t uid = req.has_uid() ? req.uid() : static_cast<uid_t>(-1);
  gid_t gid = req.has_gid() ? req.gid() : static_cast<gid_t>(-1);
  int rc = fs.Chown(ctx, req.path(), uid, gid, fi);
  return ReplyEntry(rc, fs, ctx, req.path(), fi, result);
}

int Truncate(FileSystem& fs, const Context& ctx, const v1::TruncateRequest& req,
             v1::OpResult* result) {
  off_t size;
  if (!ToOffset(req.size(), &size)) return EINVAL;
  FileInfo storage;
  const FileInfo* fi = OptionalHandle(req, &storage);
  int rc = fs.Truncate(ctx, req.path(), size, fi);
  return ReplyEntry(rc, fs, ctx, req.path(), fi, result);
}

int Utimens(FileSystem& fs, const Context& ctx, const v1::UtimensRequest& req,
            v1::OpResult* result) {
  TimeSpec atime, mtime;
  if (!ToTimeSpec(req.atime(), &atime) || !ToTimeSpec(req.mtime(), &mtime)) {
    return EINVAL;
  }
  FileInfo storage;
  const FileInfo* fi = OptionalHandle(req, &storage);
  int rc = fs.Utimens(ctx, req.path(), atime, mtime, fi);
  return ReplyEntry(rc, fs, ctx, req.path(), fi, result);
}

// The descriptor the FileSystem offered, sent before the reply it goes
// with; OpenReply.passthrough says it was.
void OfferDescriptor(const DescriptorSender* sender, const Context& ctx,
                     uint64_t tag, const FileInfo& fi, v1::OpenReply* reply) {
  if (sender != nullptr && tag != 0 && fi.passthrough_fd >= 0 &&
      sender->Send(ctx.mount_id, tag, fi.passthrough_fd)) {
    reply->set_passthrough(true);
  }
}

int Open(FileSystem& fs, const Context& ctx, const v1::OpenRequest& req,
         const DescriptorSender* sender, v1::OpResult* result) {
  FileInfo fi;
  fi.flags = static_cast<int>(req.flags());
  fi.passthrough_offered = sender != nullptr && req.passthrough_tag() != 0;
  fi.contents_up_to = req.contents_up_to();
  int rc = fs.Open(ctx, req.path(), &fi);
  if (rc != 0) return rc;
  FillOpenReply(fi, result->mutable_open());
  OfferDescriptor(sender, ctx, req.passthrough_tag(), fi,
                  result->mutable_open());
  return 0;
}

int Create(FileSystem& fs, const Context& ctx, const v1::CreateRequest& req,
           const DescriptorSender* sender, v1::OpResult* result) {
  FileInfo fi;
  fi.flags = static_cast<int>(req.flags());
  fi.passthrough_offered = sender != nullptr && req.passthrough_tag() != 0;
  int rc = fs.Create(ctx, req.path(), req.mode(), &fi);
  if (rc != 0) return rc;
  v1::CreateReply* reply = result->mutable_create();
  FillOpenReply(fi, reply->mutable_open());
  FillAttr(fs, ctx, req.path(), &fi, reply);
  OfferDescriptor(sender, ctx, req.passthrough_tag(), fi,
                  reply->mutable_open());
  return 0;
}

int Read(FileSystem& fs, const Context& ctx, const v1::ReadRequest& req,
         v1::OpResult* result) {
  off_t offset;
  if (!ToOffset(req.offset(), &offset)) return EINVAL;
  FileInfo fi = HandleInfo(req.fh());
  std::string* data = result->mutable_read()->mutable_data();
  int rc = fs.Read(ctx, req.path(), data, req.size(), offset, fi);
  // More than asked would be cut by the daemon anyway; not sending it saves
  // the bandwidth.
  if (rc == 0 && data->size() > req.size()) data->resize(req.size());
  return rc;
}

int Write(FileSystem& fs, const Context& ctx, const v1::WriteRequest& req,
          v1::OpResult* result) {
  off_t offset;
  if (!ToOffset(req.offset(), &offset)) return EINVAL;
  FileInfo fi = HandleInfo(req.fh());
  fi.flags = static_cast<int>(req.flags());
  size_t written = 0;
  int rc = fs.Write(ctx, req.path(), req.data(), offset, fi, &written);
  if (rc == 0) {
    // Claiming more than was sent would make the kernel believe in data that
    // never existed.
    written = std::min(written, req.data().size());
    result->mutable_write()->set_size(static_cast<uint32_t>(written));
    struct stat st = {};
    if (fs.GetattrIsCheap() && fs.Getattr(ctx, req.path(), &fi, &st) == 0) {
      StatToProto(st, result->mutable_write()->mutable_attr());
    }
  }
  return rc;
}

int Statfs(FileSystem& fs, const Context& ctx, const v1::StatfsRequest& req,
           v1::OpResult* result) {
  struct statvfs st = {};
  int rc = fs.Statfs(ctx, req.path(), &st);
  if (rc == 0) StatvfsToProto(st, result->mutable_statfs());
  return rc;
}

int Flush(FileSystem& fs, const Context& ctx, const v1::FlushRequest& req) {
  FileInfo fi = HandleInfo(req.fh());
  fi.lock_owner = req.lock_owner();
  return fs.Flush(ctx, req.path(), fi);
}

int Release(FileSystem& fs, const Context& ctx, const v1::ReleaseRequest& req) {
  FileInfo fi = HandleInfo(req.fh());
  fi.flags = static_cast<int>(req.flags());
  return fs.Release(ctx, req.path(), fi);
}

int Getxattr(FileSystem& fs, const Context& ctx, const v1::GetxattrRequest& req,
             v1::OpResult* result) {
  // The whole value, whatever the caller's buffer size: the daemon answers
  // size queries and ERANGE from it.
  return fs.Getxattr(ctx, req.path(), req.name(),
                     result->mutable_xattr()->mutable_data());
}

int Listxattr(FileSystem& fs, const Context& ctx,
              const v1::ListxattrRequest& req, v1::OpResult* result) {
  return fs.Listxattr(ctx, req.path(), result->mutable_xattr()->mutable_data());
}

int Opendir(FileSystem& fs, const Context& ctx, const v1::OpendirRequest& req,
            v1::OpResult* result) {
  FileInfo fi;
  fi.flags = static_cast<int>(req.flags());
  int rc = fs.Opendir(ctx, req.path(), &fi);
  if (rc == 0) result->mutable_opendir()->set_fh(fi.fh);
  return rc;
}

int Readdir(FileSystem& fs, const Context& ctx, const v1::ReaddirRequest& req,
            v1::OpResult* result) {
  std::vector<DirEntry> entries;
  bool eof = false;
  int rc = fs.Readdir(ctx, req.path(), static_cast<off_t>(req.offset()),
                      HandleInfo(req.fh()), &entries, &eof);
  if (rc != 0) return rc;
  v1::ReaddirReply* reply = result->mutable_readdir();
  bool resumable = false;
  for (const DirEntry& entry : entries) {
    v1::DirEntry* out = reply->add_entries();
    out->set_name(entry.name);
    out->set_offset(entry.offset);
    resumable |= entry.offset != 0;
    if (entry.has_attr) {
      v1::Attr* attr = out->mutable_attr();
      StatToProto(entry.st, attr);
      if (entry.xattr_names_known) {
        attr->set_xattr_names_known(true);
        for (const std::string& name : entry.xattr_names) {
          attr->add_xattr_names(name);
        }
      }
    } else {
      out->set_type(entry.st.st_mode & S_IFMT);
    }
  }
  // Without a single cookie the listing cannot be resumed, so it must be the
  // whole directory; saying so spares the daemon a request that would only
  // repeat it (an easy mistake for a filesystem returning whole listings).
  reply->set_eof(eof || !resumable);
  return 0;
}

int Lock(FileSystem& fs, const Context& ctx, const v1::LockRequest& req,
         v1::OpResult* result) {
  off_t start, len;
  if (!ToOffset(req.lock().start(), &start) ||
      !ToOffset(req.lock().len(), &len)) {
    return EINVAL;
  }
  struct flock lock = {};
  lock.l_type = static_cast<short>(req.lock().type());
  lock.l_whence = SEEK_SET;
  lock.l_start = start;
  lock.l_len = len;
  lock.l_pid = static_cast<pid_t>(req.lock().pid());
  FileInfo fi = HandleInfo(req.fh());
  fi.lock_owner = req.lock_owner();
  int rc = fs.Lock(ctx, req.path(), fi, req.cmd(), &lock);
  if (rc == 0 && req.cmd() == F_GETLK) {
    v1::FileLock* out = result->mutable_lock()->mutable_lock();
    out->set_type(lock.l_type);
    out->set_start(lock.l_start < 0 ? 0 : lock.l_start);
    out->set_len(lock.l_len < 0 ? 0 : lock.l_len);
    out->set_pid(static_cast<uint32_t>(lock.l_pid));
  }
  return rc;
}

int Flock(FileSystem& fs, const Context& ctx, const v1::FlockRequest& req) {
  FileInfo fi = HandleInfo(req.fh());
  fi.lock_owner = req.lock_owner();
  return fs.Flock(ctx, req.path(), fi, req.operation());
}

int Fallocate(FileSystem& fs, const Context& ctx,
              const v1::FallocateRequest& req) {
  off_t offset, length;
  if (!ToOffset(req.offset(), &offset) || !ToOffset(req.length(), &length)) {
    return EINVAL;
  }
  return fs.Fallocate(ctx, req.path(), req.mode(), offset, length,
                      HandleInfo(req.fh()));
}

int CopyFileRange(FileSystem& fs, const Context& ctx,
                  const v1::CopyFileRangeRequest& req, v1::OpResult* result) {
  off_t offset_in, offset_out;
  if (!ToOffset(req.offset_in(), &offset_in) ||
      !ToOffset(req.offset_out(), &offset_out)) {
    return EINVAL;
  }
  size_t copied = 0;
  int rc =
      fs.CopyFileRange(ctx, req.path_in(), HandleInfo(req.fh_in()), offset_in,
                       req.path_out(), HandleInfo(req.fh_out()), offset_out,
                       req.length(), static_cast<int>(req.flags()), &copied);
  if (rc == 0) {
    result->mutable_copy_file_range()->set_size(
        std::min<uint64_t>(copied, req.length()));
  }
  return rc;
}

int Lseek(FileSystem& fs, const Context& ctx, const v1::LseekRequest& req,
          v1::OpResult* result) {
  off_t offset = 0;
  int rc = fs.Lseek(ctx, req.path(), req.offset(), req.whence(),
                    HandleInfo(req.fh()), &offset);
  if (rc == 0) result->mutable_lseek()->set_offset(offset);
  return rc;
}

int Ioctl(FileSystem& fs, const Context& ctx, const v1::IoctlRequest& req,
          v1::OpResult* result) {
  FileInfo storage;
  std::string out;
  int value = 0;
  int rc = fs.Ioctl(ctx, req.path(), req.cmd(), req.arg(),
                    OptionalHandle(req, &storage), req.flags(), req.in_data(),
                    req.out_size(), &out, &value);
  if (rc != 0) return rc;
  // A negative return value would read as a failure without an errno.
  if (value < 0) return EIO;
  if (out.size() > req.out_size()) out.resize(req.out_size());
  v1::IoctlReply* reply = result->mutable_ioctl();
  reply->set_result(value);
  reply->set_out_data(std::move(out));
  return 0;
}

}  // namespace

void OpDispatcher::Dispatch(uint64_t mount_id, const v1::Op& op,
                            v1::OpResult* result) const {
  result->Clear();
  result->set_id(op.id());
  // Before anything else: a handle of an earlier run of the backend may be
  // a number this run gave to another file (an fd, a table slot), and the
  // FileSystem cannot tell.
  // Or a handle an earlier op was to bring (Op.fh_from_op), outside a
  // batch run in order (in_order_batch.h fills those in).
  if ((op.handle_instance() != 0 && op.handle_instance() != instance_ &&
       CarriesHandle(op)) ||
      op.fh_from_op() != 0) {
    result->set_posix_errno(EBADF);
    return;
  }
  const Context ctx = ContextFromCaller(op.caller(), mount_id);
  int rc = SanitizeErrno(Run(ctx, op, result));
  if (rc != 0) {
    result->clear_result();
    result->set_posix_errno(rc);
    return;
  }
  if (fs_.GetattrIsCheap()) FillParentAttrs(ctx, op, result);
}

void OpDispatcher::FillParentAttrs(const Context& ctx, const v1::Op& op,
                                   v1::OpResult* result) const {
  std::string path;
  std::string old_path;
  switch (op.op_case()) {
    case v1::Op::kMknod:
      path = op.mknod().path();
      break;
    case v1::Op::kMkdir:
      path = op.mkdir().path();
      break;
    case v1::Op::kSymlink:
      path = op.symlink().path();
      break;
    case v1::Op::kLink:
      path = op.link().new_path();
      break;
    case v1::Op::kCreate:
      path = op.create().path();
      break;
    case v1::Op::kUnlink:
      path = op.unlink().path();
      break;
    case v1::Op::kRmdir:
      path = op.rmdir().path();
      break;
    case v1::Op::kRename:
      path = op.rename().new_path();
      old_path = op.rename().old_path();
      break;
    default:
      return;
  }
  const std::string parent = ParentPath(path);
  struct stat st = {};
  if (fs_.Getattr(ctx, parent, nullptr, &st) == 0) {
    StatToProto(st, result->mutable_parent_attr());
  }
  if (old_path.empty()) return;
  const std::string old_parent = ParentPath(old_path);
  if (old_parent != parent && fs_.Getattr(ctx, old_parent, nullptr, &st) == 0) {
    StatToProto(st, result->mutable_old_parent_attr());
  }
}

int OpDispatcher::Run(const Context& ctx, const v1::Op& op,
                      v1::OpResult* result) const {
  FileSystem& fs = fs_;
  switch (op.op_case()) {
    case v1::Op::kGetattr:
      return Getattr(fs, ctx, op.getattr(), result);
    case v1::Op::kReadlink:
      return Readlink(fs, ctx, op.readlink(), result);
    case v1::Op::kMknod:
      return ReplyEntry(fs.Mknod(ctx, op.mknod().path(), op.mknod().mode(),
                                 op.mknod().rdev()),
                        fs, ctx, op.mknod().path(), nullptr, result);
    case v1::Op::kMkdir:
      return ReplyEntry(fs.Mkdir(ctx, op.mkdir().path(), op.mkdir().mode()), fs,
                        ctx, op.mkdir().path(), nullptr, result);
    case v1::Op::kUnlink:
      return fs.Unlink(ctx, op.unlink().path());
    case v1::Op::kRmdir:
      return fs.Rmdir(ctx, op.rmdir().path());
    case v1::Op::kSymlink:
      return ReplyEntry(
          fs.Symlink(ctx, op.symlink().target(), op.symlink().path()), fs, ctx,
          op.symlink().path(), nullptr, result);
    case v1::Op::kRename:
      return fs.Rename(ctx, op.rename().old_path(), op.rename().new_path(),
                       op.rename().flags());
    case v1::Op::kLink:
      // The attributes are those of the new name (the same file).
      return ReplyEntry(
          fs.Link(ctx, op.link().old_path(), op.link().new_path()), fs, ctx,
          op.link().new_path(), nullptr, result);
    case v1::Op::kChmod:
      return Chmod(fs, ctx, op.chmod(), result);
    case v1::Op::kChown:
      return Chown(fs, ctx, op.chown(), result);
    case v1::Op::kTruncate:
      return Truncate(fs, ctx, op.truncate(), result);
    case v1::Op::kOpen:
      return Open(fs, ctx, op.open(), sender_, result);
    case v1::Op::kRead:
      return Read(fs, ctx, op.read(), result);
    case v1::Op::kWrite:
      return Write(fs, ctx, op.write(), result);
    case v1::Op::kStatfs:
      return Statfs(fs, ctx, op.statfs(), result);
    case v1::Op::kFlush:
      return Flush(fs, ctx, op.flush());
    case v1::Op::kRelease:
      return Release(fs, ctx, op.release());
    case v1::Op::kFsync:
      return fs.Fsync(ctx, op.fsync().path(), op.fsync().datasync(),
                      HandleInfo(op.fsync().fh()));
    case v1::Op::kSetxattr:
      return fs.Setxattr(ctx, op.setxattr().path(), op.setxattr().name(),
                         op.setxattr().value(),
                         static_cast<int>(op.setxattr().flags()));
    case v1::Op::kGetxattr:
      return Getxattr(fs, ctx, op.getxattr(), result);
    case v1::Op::kListxattr:
      return Listxattr(fs, ctx, op.listxattr(), result);
    case v1::Op::kRemovexattr:
      return fs.Removexattr(ctx, op.removexattr().path(),
                            op.removexattr().name());
    case v1::Op::kOpendir:
      return Opendir(fs, ctx, op.opendir(), result);
    case v1::Op::kReaddir:
      return Readdir(fs, ctx, op.readdir(), result);
    case v1::Op::kReleasedir:
      return fs.Releasedir(ctx, op.releasedir().path(),
                           HandleInfo(op.releasedir().fh()));
    case v1::Op::kFsyncdir:
      return fs.Fsyncdir(ctx, op.fsyncdir().path(), op.fsyncdir().datasync(),
                         HandleInfo(op.fsyncdir().fh()));
    case v1::Op::kAccess:
      return fs.Access(ctx, op.access().path(),
                       static_cast<int>(op.access().mask()));
    case v1::Op::kCreate:
      return Create(fs, ctx, op.create(), sender_, result);
    case v1::Op::kLock:
      return Lock(fs, ctx, op.lock(), result);
    case v1::Op::kFlock:
      return Flock(fs, ctx, op.flock());
    case v1::Op::kUtimens:
      return Utimens(fs, ctx, op.utimens(), result);
    case v1::Op::kFallocate:
      return Fallocate(fs, ctx, op.fallocate());
    case v1::Op::kCopyFileRange:
      return CopyFileRange(fs, ctx, op.copy_file_range(), result);
    case v1::Op::kLseek:
      return Lseek(fs, ctx, op.lseek(), result);
    case v1::Op::kIoctl:
      return Ioctl(fs, ctx, op.ioctl(), result);
    case v1::Op::OP_NOT_SET:
      break;
  }
  // Unset, or an operation newer than this SDK (parsed as an unknown field).
  return ENOSYS;
}

}  // namespace fusehost
