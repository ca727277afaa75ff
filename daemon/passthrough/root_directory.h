// The root directory a loopback backend handed over
// (InitReply.root_directory): the daemon opens files beneath it for
// reading itself, so that a read-only open costs no message to the backend.
//
// What keeps this from reaching anything the backend would not have:
//   - the file is opened as the user the backend would have opened it as,
//     with the calling thread's filesystem credentials only (setgroups,
//     setfsgid, setfsuid as raw system calls, which change one thread,
//     unlike glibc's wrappers, which change every thread), restored before
//     the call returns;
//   - resolution stays beneath the directory, follows no symlink and
//     crosses no mount (openat2 with RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS,
//     RESOLVE_NO_MAGICLINKS, RESOLVE_NO_XDEV);
//   - only a regular file is opened for reading: the name is first opened
//     O_PATH (which opens no device and waits on no FIFO), checked, and
//     then reopened through /proc/self/fd, where the kernel checks the
//     user's read permission again.
// Whatever fails leaves the open to the backend, which answers with its
// own errno.
//
// A backend may also say that changing a file's mode, owner or times is
// nothing but that system call on the file beneath the directory
// (InitReply.root_changes_attributes), and that removing a name is nothing
// but unlinkat(2) (InitReply.root_removes_names). The daemon then makes
// such changes itself (ChangeAttributes, Remove), with the same identity
// and the same resolution, on a regular file or directory only (any file
// but a directory for Remove), and only on the file it knows at that path
// (its inode number); whatever fails is again the backend's.
//
// A backend whose attribute changes are the system calls answers a getattr
// with the file's own attributes: the daemon then answers the lookups its
// cache cannot itself (LookUp), with the same identity and resolution, so
// that a path walked on a cold cache costs no message per name.
//
// And that creating a file is nothing but open(2) with O_CREAT
// (InitReply.root_creates_files): the daemon then creates new regular files
// itself (Create), with the same identity and resolution, O_EXCL, and the
// mode exactly as the kernel sent it (a thread umask of 0, as the loopbacks
// do it).
//
// Only a directory on a storage filesystem of this machine is adopted
// (local_filesystem.h): on a pseudo filesystem such as /proc/sys,
// permissions follow the effective user (root's, here), and on a FUSE or
// network filesystem an open may wait on another process or the network,
// holding a thread of the mount's kernel session meanwhile.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_ROOT_DIRECTORY_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_ROOT_DIRECTORY_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"
#include "daemon/authz/as_user.h"

namespace fusehost {

// chmod, chown or utimens: what ChangeAttributes makes.
struct AttributeChange {
  std::optional<mode_t> mode;  // permission bits (07777)
  // Unset: left as it is (chown's -1).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // utimensat's pair (UTIME_NOW and UTIME_OMIT allowed), when `set_times`.
  bool set_times = false;
  struct timespec times[2] = {};
};

class RootDirectory {
 public:
  // Takes `dir`, the descriptor the backend sent, in place of any earlier
  // one: refused (and none kept) unless it is a directory on a local
  // filesystem. Files are opened as `owner` (the backend's user), or, when
  // there is none, as the caller of each open (a backend that acts as its
  // callers). `changes_attributes`: the backend said its chmod, chown and
  // utimens are nothing but the system call (see above); `removes_names`:
  // its unlink and rmdir; `creates_files`: its create.
  absl::Status Adopt(UniqueFd dir, std::optional<UserIdentity> owner,
                     bool changes_attributes = false,
                     bool removes_names = false, bool creates_files = false);
  // No directory from now on (the backend that sent it is gone).
  void Drop();
  bool adopted() const;

  // Opens `path` (absolute within the mount, "/a/b") read-only for
  // `caller`, if it is a regular file beneath the directory; `st` gets its
  // fstat. Invalid when it cannot (why is of no use: the backend will say).
  UniqueFd OpenForReading(const std::string& path, const UserIdentity& caller,
                          struct stat* st);

  // Makes `change` to `path` ("/a/b") for `caller`, as the backend would
  // have made it, if it is a regular file or a directory beneath the
  // directory whose inode number is `expect_ino`; `after` gets its fstat
  // afterwards. False when it cannot or may not (no directory, no such
  // declaration, another file there, any error): the backend then makes the
  // change, and its answer stands.
  bool ChangeAttributes(const std::string& path, const UserIdentity& caller,
                        uint64_t expect_ino, const AttributeChange& change,
                        struct stat* after);
  // Removes `path` for `caller` as the backend would have (unlink, or rmdir
  // when `directory`), if the backend said removals are the system call
  // (removes_names) and the name beneath the directory is the inode
  // `expect_ino` of that kind; `parent_after` gets the parent directory's
  // fstat afterwards (left empty if that fails: the name is gone all the
  // same). False, as above, for the backend to do it.
  bool Remove(const std::string& path, const UserIdentity& caller,
              uint64_t expect_ino, bool directory,
              std::optional<struct stat>* parent_after);

  // Creates the regular file `path` for `caller` as the backend would have
  // (open(2) with O_CREAT and O_EXCL, `flags`' access mode, `mode`'s
  // permission bits), if the backend said creates are the system call
  // (creates_files) and `flags` and `mode` ask for nothing else (no O_TRUNC
  // of a name that exists, no O_APPEND, O_DIRECT or synchronous writes, no
  // set-id or sticky bit). Returns the new file open with that access mode
  // (invalid when it cannot: the backend then creates it, or says why not),
  // `st` its fstat and `parent_after` its directory's (left empty if that
  // fails).
  UniqueFd Create(const std::string& path, const UserIdentity& caller,
                  int flags, mode_t mode, struct stat* st,
                  std::optional<struct stat>* parent_after);

  // lstat of `path` beneath the directory, as the daemon, resolved as
  // above (no symlink, no other mount). False if there is none.
  bool Stat(const std::string& path, struct stat* st) const;
  // lstat of `path` ("/a/b": not the directory itself) for `caller`, with
  // the same identity and resolution, as the backend would have answered
  // its getattr, if the backend said its attribute changes are the system
  // calls (changes_attributes: the attributes it answers are then the
  // file's own). kAbsent: no such file, and the backend's lstat would have
  // said so too (the walk met no symlink and no other mount before the
  // missing name, and the caller could search every directory on the way).
  // kDeclined when it cannot or may not (no such declaration, a symlink on
  // the way, no search permission, not a directory on the way): the backend
  // then answers, with its own errno.
  enum class Found { kFile, kAbsent, kDeclined };
  Found LookUp(const std::string& path, const UserIdentity& caller,
               struct stat* st);

  uint64_t opened() const { return opened_.load(); }
  uint64_t changed() const { return changed_.load(); }
  uint64_t looked_up() const { return looked_up_.load(); }
  uint64_t declined() const { return declined_.load(); }

 private:
  struct Adopted {
    UniqueFd dir;
    std::optional<UserIdentity> owner;
    bool changes_attributes = false;
    bool removes_names = false;
    bool creates_files = false;
  };
  std::shared_ptr<const Adopted> Current() const;
  // Runs `use` on `path` ("/a/b": not the directory itself) opened O_PATH
  // beneath the directory as the user the backend would have acted as, if
  // it declared changes_attributes: false if not, else what `use` returns.
  // `absent` (may be null) is set when the path does not exist there.
  bool WithAttributesOf(const std::string& path, const UserIdentity& caller,
                        absl::FunctionRef<bool(int)> use,
                        bool* absent = nullptr);

  mutable absl::Mutex mu_;
  // Shared so that an open in progress keeps the directory it started with.
  std::shared_ptr<const Adopted> adopted_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> declined_{0};
  std::atomic<uint64_t> changed_{0};
  std::atomic<uint64_t> looked_up_{0};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_ROOT_DIRECTORY_H_
