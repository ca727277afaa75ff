// LoopbackFs's construction, its path resolution (every operation's way
// into the host tree, in loopback_fs_*.cc by operation family), the
// announcement of host changes, and the filesystem-wide operations (init,
// statfs).

#include "examples/loopback/loopback_fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "examples/loopback/caller_credentials.h"
#include "examples/loopback/host_calls.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {
namespace {

// Turns a path from the daemon ("/a/b") into one relative to the root
// ("a/b"; "." for "/"). The daemon sends canonical paths; anything else
// (".." above all, which could climb out of the root) is refused rather
// than interpreted.
int RelativePath(const std::string& path, std::string* rel) {
  // Empty means the file has no name any more; only handle-based calls may
  // see it.
  if (path.empty()) return ENOENT;
  if (path[0] != '/' || HasNul(path)) return EINVAL;
  if (path.size() == 1) {
    *rel = ".";
    return 0;
  }
  absl::string_view rest = absl::string_view(path).substr(1);
  for (absl::string_view component : absl::StrSplit(rest, '/')) {
    if (component.empty() || component == "." || component == "..") {
      return EINVAL;
    }
  }
  *rel = std::string(rest);
  return 0;
}

// Whether closing a descriptor of the filesystem holding `fd` does nothing
// beyond the close itself: true for local filesystems without a flush
// method, where Flush's close of a duplicate can report no error. Network
// filesystems (NFS, CIFS, FUSE) write back or release remote locks there.
bool FlushIsNoOp(int fd) {
  struct statfs st;
  if (fstatfs(fd, &st) != 0) return false;
  switch (static_cast<unsigned long>(st.f_type)) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

// Whether the filesystem holding the directory `fd` keeps POSIX ACLs: it
// answers a query for one (ENODATA when there is none) instead of
// EOPNOTSUPP.
bool KeepsAcls(int fd) {
  return getxattr(ProcFdPath(fd).c_str(), "system.posix_acl_access", nullptr,
                  0) >= 0 ||
         errno == ENODATA;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopbackFs>> LoopbackFs::New(
    const Options& options) {
  int root_fd = open(options.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot open directory ", options.root));
  }
  const bool act_as_caller =
      options.act_as_caller && CallerCredentials::ProcessCanSwitch();
  std::unique_ptr<LoopbackFs> fs(
      new LoopbackFs(root_fd, act_as_caller, Openat2Works(root_fd),
                     options.forward_flock, FlushIsNoOp(root_fd)));
  fs->passthrough_ = options.passthrough;
  fs->posix_acl_ = options.acl && KeepsAcls(root_fd);
  fs->lsm_labels_ = options.lsm_labels;
  if (options.watch) {
    TreeWatcher::Options watch;
    // The directory root_fd refers to, even if the path changed meanwhile.
    watch.root = ProcFdPath(root_fd);
    LoopbackFs* self = fs.get();
    fs->own_changes_ = std::make_unique<OwnChanges>(root_fd);
    watch.sink = [self](const std::vector<TreeChange>& changes) {
      self->Announce(changes);
    };
    absl::StatusOr<std::unique_ptr<TreeWatcher>> watcher =
        TreeWatcher::Start(std::move(watch));
    if (!watcher.ok()) {
      return absl::Status(
          watcher.status().code(),
          absl::StrCat("cannot watch ", options.root,
                       " for changes: ", watcher.status().message()));
    }
    fs->watcher_ = *std::move(watcher);
  }
  return fs;
}

LoopbackFs::LoopbackFs(int root_fd, bool act_as_caller, bool have_openat2,
                       bool forward_flock, bool flush_is_no_op)
    : root_fd_(root_fd),
      act_as_caller_(act_as_caller),
      forward_flock_(forward_flock),
      have_openat2_(have_openat2),
      flush_is_no_op_(flush_is_no_op) {}

LoopbackFs::~LoopbackFs() {
  // Its thread calls Announce until stopped.
  watcher_.reset();
  close(root_fd_);
}

void LoopbackFs::Announce(const std::vector<TreeChange>& changes) {
  for (const TreeChange& change : changes) {
    // A change one mount's operation made is news to the other mounts only.
    const std::optional<uint64_t> own = own_changes_->ExplainedBy(change.path);
    switch (change.kind) {
      case TreeChange::Kind::kChanged:
        own ? NotifyChangedExcept(*own, change.path)
            : NotifyChanged(change.path);
        break;
      case TreeChange::Kind::kRemoved:
        own ? NotifyRemovedExcept(*own, change.path)
            : NotifyRemoved(change.path);
        break;
      case TreeChange::Kind::kSubtree:
        own ? NotifySubtreeChangedExcept(*own, change.path)
            : NotifySubtreeChanged(change.path);
        break;
    }
  }
}

int LoopbackFs::Changed(const Context& ctx,
                        std::initializer_list<std::string> paths,
                        absl::FunctionRef<int()> change) {
  if (own_changes_ == nullptr) return change();
  OwnChanges::Scope scope(*own_changes_, ctx.mount_id, paths);
  return change();
}

// Owns the parent's descriptor unless it is the root's.
class LoopbackFs::Parent {
 public:
  Parent() = default;
  ~Parent() {
    if (owned_) close(fd_);
  }
  Parent(const Parent&) = delete;
  Parent& operator=(const Parent&) = delete;

  int fd() const { return fd_; }
  const char* name() const { return name_.c_str(); }

 private:
  friend class LoopbackFs;
  int fd_ = -1;
  bool owned_ = false;
  std::string name_;
};

int LoopbackFs::ResolveParent(const std::string& path, Parent* out) const {
  std::string rel;
  if (int err = RelativePath(path, &rel)) return err;
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) {
    out->fd_ = root_fd_;
    out->name_ = std::move(rel);
    return 0;
  }
  const int fd = OpenBeneath(root_fd_, rel.substr(0, slash),
                             O_PATH | O_DIRECTORY | O_CLOEXEC, have_openat2_);
  if (fd < 0) return errno;
  out->fd_ = fd;
  out->owned_ = true;
  out->name_ = rel.substr(slash + 1);
  return 0;
}

int LoopbackFs::AtPath(const Context& ctx, const std::string& path, AtOp op) {
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  // Resolved as the caller: search permission on the way down is theirs too.
  Parent at;
  if (int err = ResolveParent(path, &at)) return err;
  return op(at.fd(), at.name());
}

int LoopbackFs::AtPaths(
    const Context& ctx, const std::string& from, const std::string& to,
    absl::FunctionRef<int(int, const char*, int, const char*)> op) {
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  Parent from_at;
  if (int err = ResolveParent(from, &from_at)) return err;
  Parent to_at;
  if (int err = ResolveParent(to, &to_at)) return err;
  return op(from_at.fd(), from_at.name(), to_at.fd(), to_at.name());
}

int LoopbackFs::AtFd(const Context& ctx, const FileInfo& fi, FdOp op) {
  const HandleTable::Ref file = handles_.Find(fi.fh);
  if (file == nullptr) return EBADF;
  CallerCredentials creds(ctx, act_as_caller_);
  if (creds.error()) return creds.error();
  return op(file->get());
}

int LoopbackFs::AtFdOrPath(const Context& ctx, const std::string& path,
                           const FileInfo* fi, FdOp fd_op, AtOp at_op) {
  return fi != nullptr ? AtFd(ctx, *fi, fd_op) : AtPath(ctx, path, at_op);
}

InitResult LoopbackFs::Init(const MountInfo& /*mount*/) {
  InitResult result;
  result.flock_locks = forward_flock_;
  result.posix_locks = false;
  // Changes made on the host are pushed as invalidations when watching, so
  // metadata may be cached long; without watching, fuse-hostd's 1 s default.
  if (watcher_ != nullptr) result.default_ttl_ms = 60000;
  result.passthrough = passthrough_;
  // Its read-only Open only opens the file: fuse-hostd may do that itself.
  result.root_directory_fd = root_fd_;
  result.root_opens_as_caller = act_as_caller_;
  // Its chmod, chown and utimens are those calls on the file, and a refused
  // chmod comes here (DropSetIdBits): fuse-hostd may make them itself. Its
  // unlink and rmdir are unlinkat(2), and its create open(2) with O_CREAT
  // (an existing name it opens, and clears the set-id bits of, is left to
  // it: fuse-hostd creates only new ones).
  result.root_changes_attributes = true;
  result.root_removes_names = true;
  result.root_creates_files = true;
  // Readdir opens the directory itself when it gets no handle.
  result.lists_by_path = true;
  result.posix_acl = posix_acl_;
  if (!lsm_labels_) {
    result.unsupported_xattr_prefixes = {"security.selinux", "security.SMACK64",
                                         "security.apparmor"};
  }
  return result;
}

int LoopbackFs::Statfs(const Context& /*ctx*/, const std::string& /*path*/,
                       struct statvfs* st) {
  return ErrnoOf(fstatvfs(root_fd_, st));
}

}  // namespace examples
}  // namespace fusehost
