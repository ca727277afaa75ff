#include "daemon/passthrough/root_directory.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include "common/open_flags.h"
#include "common/paths.h"
#include "daemon/passthrough/local_filesystem.h"

namespace fusehost {
namespace {

std::vector<gid_t> ThreadGroups() {
  long n = syscall(SYS_getgroups, 0, nullptr);
  std::vector<gid_t> groups(n > 0 ? static_cast<size_t>(n) : 0);
  if (n > 0) {
    n = syscall(SYS_getgroups, groups.size(), groups.data());
    groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  std::sort(groups.begin(), groups.end());
  return groups;
}

// The daemon's own identity, which every thread has outside a
// ThreadFsIdentity: read once.
struct DaemonIdentity {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  std::vector<gid_t> groups = ThreadGroups();  // sorted
};
const DaemonIdentity& Daemon() {
  static const DaemonIdentity* const daemon = new DaemonIdentity();
  return *daemon;
}

bool SameGroups(std::vector<gid_t> groups, const std::vector<gid_t>& sorted) {
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  return groups == sorted;
}

bool SetThreadGroups(const std::vector<gid_t>& groups) {
  return syscall(SYS_setgroups, groups.size(), groups.data()) == 0;
}

// setfsuid and setfsgid report the previous id whatever happens; asking
// with -1 (never valid) tells the current one.
bool SetFsUid(uid_t uid) {
  syscall(SYS_setfsuid, uid);
  return static_cast<uid_t>(syscall(SYS_setfsuid, -1)) == uid;
}
bool SetFsGid(gid_t gid) {
  syscall(SYS_setfsgid, gid);
  return static_cast<gid_t>(syscall(SYS_setfsgid, -1)) == gid;
}

// The filesystem identity of the calling thread, for one scope. Only what
// differs from the daemon's own is changed (a root caller costs nothing).
class ThreadFsIdentity {
 public:
  explicit ThreadFsIdentity(const UserIdentity& who) {
    const DaemonIdentity& daemon = Daemon();
    if (daemon.uid != 0) {
      // Without privilege only one's own identity can be used.
      ok_ = who.uid == daemon.uid && who.gid == daemon.gid;
      return;
    }
    if (!SameGroups(who.groups, daemon.groups)) {
      if (!SetThreadGroups(who.groups)) return;
      groups_ = true;
    }
    if (who.gid != daemon.gid) {
      gid_ = true;
      if (!SetFsGid(who.gid)) return;
    }
    if (who.uid != daemon.uid) {
      uid_ = true;
      if (!SetFsUid(who.uid)) return;
    }
    ok_ = true;
  }

  ~ThreadFsIdentity() {
    const DaemonIdentity& daemon = Daemon();
    // Back to root first: that gives back the filesystem capabilities.
    if ((uid_ && !SetFsUid(daemon.uid)) || (gid_ && !SetFsGid(daemon.gid)) ||
        (groups_ && !SetThreadGroups(daemon.groups))) {
      // A daemon thread must never go on with a user's identity.
      Log("fatal: cannot restore a thread's credentials: %s",
          std::strerror(errno));
      std::abort();
    }
  }

  bool ok() const { return ok_; }

 private:
  // What was changed, to be restored.
  bool groups_ = false;
  bool gid_ = false;
  bool uid_ = false;
  bool ok_ = false;
};

// The descriptor's path through /proc, for the calls that take no O_PATH
// descriptor (open for reading, chmod, utimensat).
std::string ProcPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// `relative` beneath `dir`, opened O_PATH as the thread's identity, never
// through a symlink or into another mount: see the header.
UniqueFd OpenPathBeneath(int dir, const char* relative) {
  struct open_how how = {};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return UniqueFd(
      static_cast<int>(syscall(SYS_openat2, dir, relative, &how, sizeof(how))));
}

// Opens `relative` beneath `dir` for reading as the thread's identity.
UniqueFd OpenChecked(int dir, const std::string& relative, struct stat* st) {
  UniqueFd path = OpenPathBeneath(dir, relative.c_str());
  if (!path.valid() || fstat(path.get(), st) != 0 || !S_ISREG(st->st_mode)) {
    return UniqueFd();
  }
  UniqueFd file(
      open(ProcPath(path.get()).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  struct stat again;
  if (!file.valid() || fstat(file.get(), &again) != 0 ||
      again.st_dev != st->st_dev || again.st_ino != st->st_ino) {
    return UniqueFd();
  }
  return file;
}

// Clears the calling thread's umask until the scope ends, so that a file is
// created with the mode the kernel sent (it applied the caller's umask
// already). The thread gets a umask of its own first (unshare(CLONE_FS),
// once per thread: its working directory is copied, and the daemon never
// changes it); ok() is false if it cannot, and nothing is changed then.
class ThreadUmaskCleared {
 public:
  ThreadUmaskCleared() {
    thread_local bool own = unshare(CLONE_FS) == 0;
    if (!own) return;
    ok_ = true;
    saved_ = umask(0);
  }
  ~ThreadUmaskCleared() {
    if (ok_) umask(saved_);
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
  mode_t saved_ = 0;
};

// Makes `change` to the file `file` (O_PATH) as the thread's identity.
bool MakeChange(int file, const AttributeChange& change) {
  if (change.mode && chmod(ProcPath(file).c_str(), *change.mode & 07777) != 0) {
    return false;
  }
  if ((change.uid || change.gid) &&
      fchownat(file, "", change.uid.value_or(static_cast<uid_t>(-1)),
               change.gid.value_or(static_cast<gid_t>(-1)),
               AT_EMPTY_PATH) != 0) {
    return false;
  }
  if (change.set_times &&
      utimensat(AT_FDCWD, ProcPath(file).c_str(), change.times, 0) != 0) {
    return false;
  }
  return true;
}

// The open(2) flags of a create the daemon makes itself: the access mode
// only. Anything else (O_APPEND, O_DIRECT, O_SYNC, O_DSYNC, O_NOATIME,
// O_TMPFILE, O_PATH, ...) is the backend's; O_TRUNC means nothing for a
// name that does not exist, and O_NONBLOCK and O_NOCTTY nothing for a
// regular file.
constexpr int kCreateFlagsIgnored = O_CREAT | O_EXCL | O_TRUNC | O_NONBLOCK |
                                    O_NOCTTY | kKernelLargeFile | O_CLOEXEC;

}  // namespace

absl::Status RootDirectory::Adopt(UniqueFd dir,
                                  std::optional<UserIdentity> owner,
                                  bool changes_attributes, bool removes_names,
                                  bool creates_files) {
  Drop();
  struct stat st;
  if (!dir.valid() || fstat(dir.get(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError("not a directory");
  }
  // The daemon opens files beneath it with root's effective user and
  // capabilities: only where permissions are checked at open, against the
  // filesystem user (local_filesystem.h).
  if (absl::Status local = CheckLocalStorageFilesystem(dir.get());
      !local.ok()) {
    return local;
  }
  auto adopted = std::make_shared<Adopted>();
  adopted->dir = std::move(dir);
  adopted->owner = std::move(owner);
  adopted->changes_attributes = changes_attributes;
  adopted->removes_names = removes_names;
  adopted->creates_files = creates_files;
  absl::MutexLock lock(&mu_);
  adopted_ = std::move(adopted);
  return absl::OkStatus();
}

void RootDirectory::Drop() {
  absl::MutexLock lock(&mu_);
  adopted_.reset();
}

bool RootDirectory::adopted() const {
  absl::MutexLock lock(&mu_);
  return adopted_ != nullptr;
}

std::shared_ptr<const RootDirectory::Adopted> RootDirectory::Current() const {
  absl::MutexLock lock(&mu_);
  return adopted_;
}

UniqueFd RootDirectory::OpenForReading(const std::string& path,
                                       const UserIdentity& caller,
                                       struct stat* st) {
  std::shared_ptr<const Adopted> adopted = Current();
  if (adopted == nullptr) return UniqueFd();
  UniqueFd file;
  // "/" and "" name the directory itself, never a regular file.
  if (path.size() > 1 && path[0] == '/') {
    ThreadFsIdentity as(adopted->owner ? *adopted->owner : caller);
    if (as.ok()) file = OpenChecked(adopted->dir.get(), path.substr(1), st);
  }
  (file.valid() ? opened_ : declined_).fetch_add(1);
  return file;
}

bool RootDirectory::WithAttributesOf(const std::string& path,
                                     const UserIdentity& caller,
                                     absl::FunctionRef<bool(int)> use,
                                     bool* absent) {
  std::shared_ptr<const Adopted> adopted = Current();
  // "/" is the directory itself, which the backend may treat as its own.
  if (adopted == nullptr || !adopted->changes_attributes || path.size() < 2 ||
      path[0] != '/') {
    return false;
  }
  ThreadFsIdentity as(adopted->owner ? *adopted->owner : caller);
  if (!as.ok()) return false;
  // O_PATH needs search permission on the way only, as lstat(2) does, and
  // opens a trailing symlink itself.
  UniqueFd file = OpenPathBeneath(adopted->dir.get(), path.c_str() + 1);
  // ENOENT: the walk reached a missing name through real directories the
  // thread's identity could search (a symlink, another mount or a refusal
  // on the way fails with ELOOP, EXDEV or EACCES first).
  if (absent != nullptr) *absent = !file.valid() && errno == ENOENT;
  return file.valid() && use(file.get());
}

bool RootDirectory::ChangeAttributes(const std::string& path,
                                     const UserIdentity& caller,
                                     uint64_t expect_ino,
                                     const AttributeChange& change,
                                     struct stat* after) {
  const bool made = WithAttributesOf(path, caller, [&](int file) {
    struct stat st;
    // Not the file the daemon answered for (replaced on the host), or one
    // whose change is no plain system call here (a symlink's mode, a
    // device).
    return fstat(file, &st) == 0 &&
           static_cast<uint64_t>(st.st_ino) == expect_ino &&
           (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
           MakeChange(file, change) && fstat(file, after) == 0;
  });
  if (made) changed_.fetch_add(1);
  return made;
}

RootDirectory::Found RootDirectory::LookUp(const std::string& path,
                                           const UserIdentity& caller,
                                           struct stat* st) {
  bool absent = false;
  const bool found = WithAttributesOf(
      path, caller, [st](int file) { return fstat(file, st) == 0; }, &absent);
  if (!found && !absent) return Found::kDeclined;
  looked_up_.fetch_add(1);
  return found ? Found::kFile : Found::kAbsent;
}

bool RootDirectory::Stat(const std::string& path, struct stat* st) const {
  std::shared_ptr<const Adopted> adopted = Current();
  if (adopted == nullptr || path.empty() || path[0] != '/') return false;
  UniqueFd file = OpenPathBeneath(adopted->dir.get(),
                                  path.size() == 1 ? "." : path.c_str() + 1);
  return file.valid() && fstat(file.get(), st) == 0;
}

bool RootDirectory::Remove(const std::string& path, const UserIdentity& caller,
                           uint64_t expect_ino, bool directory,
                           std::optional<struct stat>* parent_after) {
  std::shared_ptr<const Adopted> adopted = Current();
  // A name beneath the directory: not the directory itself, no "." or "..".
  if (adopted == nullptr || !adopted->removes_names || path.empty() ||
      path[0] != '/' || !IsValidName(BaseName(path))) {
    return false;
  }
  const std::string name(BaseName(path));
  const std::string parent_path = ParentPath(path);
  ThreadFsIdentity as(adopted->owner ? *adopted->owner : caller);
  if (!as.ok()) return false;
  UniqueFd parent = OpenPathBeneath(
      adopted->dir.get(), parent_path == "/" ? "." : parent_path.c_str() + 1);
  struct stat st;
  if (!parent.valid() ||
      fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      static_cast<uint64_t>(st.st_ino) != expect_ino ||
      S_ISDIR(st.st_mode) != directory ||
      unlinkat(parent.get(), name.c_str(), directory ? AT_REMOVEDIR : 0) !=
          0) {
    return false;
  }
  struct stat after;
  if (fstat(parent.get(), &after) == 0) *parent_after = after;
  changed_.fetch_add(1);
  return true;
}

UniqueFd RootDirectory::Create(const std::string& path,
                               const UserIdentity& caller, int flags,
                               mode_t mode, struct stat* st,
                               std::optional<struct stat>* parent_after) {
  std::shared_ptr<const Adopted> adopted = Current();
  if (adopted == nullptr || !adopted->creates_files || path.empty() ||
      path[0] != '/' || !IsValidName(BaseName(path)) ||
      (flags & ~(O_ACCMODE | kCreateFlagsIgnored)) != 0 ||
      (flags & O_ACCMODE) == O_ACCMODE || (mode & 07000) != 0 ||
      ((mode & S_IFMT) != 0 && (mode & S_IFMT) != S_IFREG)) {
    return UniqueFd();
  }
  const std::string parent_path = ParentPath(path);
  ThreadFsIdentity as(adopted->owner ? *adopted->owner : caller);
  if (!as.ok()) return UniqueFd();
  UniqueFd parent = OpenPathBeneath(
      adopted->dir.get(), parent_path == "/" ? "." : parent_path.c_str() + 1);
  if (!parent.valid()) return UniqueFd();
  struct open_how how = {};
  // O_EXCL: a name made on the host meanwhile is the backend's to open.
  how.flags = (flags & O_ACCMODE) | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  how.mode = mode & 0777;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                RESOLVE_NO_XDEV;
  UniqueFd file;
  {
    ThreadUmaskCleared umask_cleared;
    if (!umask_cleared.ok()) return UniqueFd();
    const std::string name(BaseName(path));
    file = UniqueFd(static_cast<int>(
        syscall(SYS_openat2, parent.get(), name.c_str(), &how, sizeof(how))));
  }
  if (!file.valid()) return UniqueFd();
  // O_CREAT | O_EXCL made a regular file; fstat of it cannot fail.
  if (fstat(file.get(), st) != 0 || !S_ISREG(st->st_mode)) return UniqueFd();
  struct stat after;
  if (fstat(parent.get(), &after) == 0) *parent_after = after;
  changed_.fetch_add(1);
  return file;
}

}  // namespace fusehost
