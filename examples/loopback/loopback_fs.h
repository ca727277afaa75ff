// A loopback filesystem: mirrors one directory of the host, doing every
// operation as the user who asked, so that ownership and permission results
// through the mount are those the caller gets on the directory itself.
//
// How it maps requests to the host:
// * Paths are resolved relative to an O_PATH descriptor of the root with the
//   *at() syscalls. Intermediate directories are opened with openat2(2)
//   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so no path can leave the root, even
//   if someone swaps a directory for a symlink on the host behind the
//   daemon's back. The last component is never followed when it is a
//   symlink: the kernel resolves symlinks on the mount before asking, so a
//   symlink there means such a swap.
// * Each operation runs under CallerCredentials (fsuid, fsgid, groups of the
//   caller) when the process may switch; the kernel's own permission checks,
//   including ACLs, then decide, and new files get the caller as owner.
// * Open files and directories are real descriptors, kept in a HandleTable;
//   `fh` is a number the table gave out, never the descriptor number (see
//   handle_table.h), and unknown handles answer EBADF. Descriptors keep
//   unlinked-but-open files working, give each open its own flock(2) state,
//   and let fchmod/fchown/futimens through a directory handle work (the
//   kernel sends those with the directory's fh).
// * Modes from the daemon already have the caller's umask applied. Creating
//   operations therefore give the calling thread a private umask of 0
//   (unshare(CLONE_FS); the thread then also has its own cwd and root, which
//   nothing here changes) instead of changing the process umask, which would
//   also widen the permissions of the socket Serve() creates. Where unshare
//   is refused (some seccomp profiles) the process umask applies as well.
//
// Changes made on the host: with Options::watch, a TreeWatcher (inotify)
// reports changes made directly in the directory, and they are pushed to the
// daemon as invalidations (FileSystem::Notify*), so that they show through
// the mount within milliseconds rather than after cache timeouts. inotify
// reports the loopback's own changes too: OwnChanges recognises them, and
// each goes to every mount of this backend but the one whose operation made
// it (Notify*Except), so that with two mounts of one directory, a change
// through one shows through the other at once.
//
// Set-user-ID and set-group-ID bits: a write, truncate, fallocate or
// O_TRUNC open by a caller other than root clears S_ISUID, and S_ISGID of a
// group-executable file, as on the host. Done as the caller, the host kernel
// does it (the thread has no CAP_FSETID); with act_as_caller off,
// ClearSetIdBits does it after the change. The kernel also asks for it
// itself, before such a write, as a chmod in the writer's name that only
// drops these bits; the writer need not own the file, so that chmod is
// allowed to whoever may write the file (DropSetIdBits).
//
// Locking: POSIX record locks are left to the kernel, which is right for a
// directory only this host uses. flock(2) is implemented (each open has its
// own descriptor) but only offered with Options::forward_flock: a blocking
// flock would occupy a server thread until the daemon's call deadline, as
// FUSE interrupts do not reach backends; the kernel's own flock emulation is
// correct for every process that uses the mount.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_LOOPBACK_FS_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_LOOPBACK_FS_H_

#include <sys/types.h>

#include <array>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/filesystem.h"
#include "examples/loopback/handle_table.h"
#include "examples/loopback/own_changes.h"
#include "examples/loopback/tree_watcher.h"

namespace fusehost {
namespace examples {

// Thread use: every method may be called concurrently from any thread. The
// mutable state shared between calls is the kernel objects themselves, the
// handle table (thread-safe) and `dir_read_mu_`, which serialises reading
// one directory descriptor (getdents moves the descriptor's shared offset).
// The watcher, if any, runs on its own thread and only calls Notify*, which
// any thread may.
class LoopbackFs : public FileSystem {
 public:
  struct Options {
    // The directory to mirror. Symlinks in it are followed once, here.
    std::string root;
    // Act as the caller when the process may (see
    // CallerCredentials::ProcessCanSwitch). false: always act as this process.
    bool act_as_caller = true;
    // Ask the kernel to send flock(2) here, so that locks also conflict with
    // processes using the directory directly (see "Locking" above).
    bool forward_flock = false;
    // Watch the directory for changes made directly in it and push them to
    // the daemon (see "Changes made on the host" above).
    bool watch = false;
    // Hand fuse-hostd the descriptor of each opened file, so that the
    // kernel reads and writes it directly (passthrough) where the daemon
    // and the kernel can; Read and Write then only serve the opens they
    // could not take.
    bool passthrough = false;
    // Have the kernel enforce and cache the POSIX ACLs of the files, when
    // the directory's filesystem keeps them (InitResult::posix_acl): ls -l
    // then asks each file for its ACL once per mount, not every time.
    bool acl = false;
    // Mirror the host's security labels (security.selinux, SMACK64,
    // apparmor). Off, they are unsupported names (EOPNOTSUPP), which ls -l
    // learns once per mount instead of asking every file: a label is the
    // host's security module's business, and the module labels a FUSE
    // mount itself rather than reading its files' attributes.
    bool lsm_labels = false;
  };

  // Opens `options.root`. Fails with the errno of open(2) (see
  // absl::ErrnoToStatus; the message names the root) when it is not a
  // directory this process can open, or when watching was asked for and
  // inotify is unavailable.
  static absl::StatusOr<std::unique_ptr<LoopbackFs>> New(
      const Options& options);
  ~LoopbackFs() override;

  LoopbackFs(const LoopbackFs&) = delete;
  LoopbackFs& operator=(const LoopbackFs&) = delete;

  // Whether operations run as the caller (decided once, in New).
  bool acts_as_caller() const { return act_as_caller_; }
  // Whether paths are confined to the root even across symlinks swapped in
  // on the host (openat2 is available).
  bool confines_paths() const { return have_openat2_; }

  std::string Name() const override { return "loopback_fs"; }
  bool GetattrIsCheap() const override { return true; }  // an fstatat
  InitResult Init(const MountInfo& mount) override;

  int Getattr(const Context& ctx, const std::string& path, const FileInfo* fi,
              struct stat* st) override;
  int Readlink(const Context& ctx, const std::string& path,
               std::string* target) override;
  int Mknod(const Context& ctx, const std::string& path, mode_t mode,
            dev_t rdev) override;
  int Mkdir(const Context& ctx, const std::string& path, mode_t mode) override;
  int Unlink(const Context& ctx, const std::string& path) override;
  int Rmdir(const Context& ctx, const std::string& path) override;
  int Symlink(const Context& ctx, const std::string& target,
              const std::string& path) override;
  int Rename(const Context& ctx, const std::string& from, const std::string& to,
             unsigned int flags) override;
  int Link(const Context& ctx, const std::string& from,
           const std::string& to) override;
  int Chmod(const Context& ctx, const std::string& path, mode_t mode,
            const FileInfo* fi) override;
  int Chown(const Context& ctx, const std::string& path, uid_t uid, gid_t gid,
            const FileInfo* fi) override;
  int Truncate(const Context& ctx, const std::string& path, off_t size,
               const FileInfo* fi) override;
  int Utimens(const Context& ctx, const std::string& path,
              const TimeSpec& atime, const TimeSpec& mtime,
              const FileInfo* fi) override;
  int Open(const Context& ctx, const std::string& path, FileInfo* fi) override;
  int Create(const Context& ctx, const std::string& path, mode_t mode,
             FileInfo* fi) override;
  int Read(const Context& ctx, const std::string& path, std::string* data,
           size_t size, off_t offset, const FileInfo& fi) override;
  int Write(const Context& ctx, const std::string& path,
            const std::string& data, off_t offset, const FileInfo& fi,
            size_t* written) override;
  int Statfs(const Context& ctx, const std::string& path,
             struct statvfs* st) override;
  int Flush(const Context& ctx, const std::string& path,
            const FileInfo& fi) override;
  int Release(const Context& ctx, const std::string& path,
              const FileInfo& fi) override;
  int Fsync(const Context& ctx, const std::string& path, bool datasync,
            const FileInfo& fi) override;
  int Setxattr(const Context& ctx, const std::string& path,
               const std::string& name, const std::string& value,
               int flags) override;
  int Getxattr(const Context& ctx, const std::string& path,
               const std::string& name, std::string* value) override;
  int Listxattr(const Context& ctx, const std::string& path,
                std::string* list) override;
  int Removexattr(const Context& ctx, const std::string& path,
                  const std::string& name) override;
  int Opendir(const Context& ctx, const std::string& path,
              FileInfo* fi) override;
  // The whole listing (offsets 0, eof) with attributes, without "." and "..".
  int Readdir(const Context& ctx, const std::string& path, off_t offset,
              const FileInfo& fi, std::vector<DirEntry>* entries,
              bool* eof) override;
  int Releasedir(const Context& ctx, const std::string& path,
                 const FileInfo& fi) override;
  int Fsyncdir(const Context& ctx, const std::string& path, bool datasync,
               const FileInfo& fi) override;
  int Access(const Context& ctx, const std::string& path, int mask) override;
  // Blocking requests (no LOCK_NB) hold an SDK worker thread until granted.
  int Flock(const Context& ctx, const std::string& path, const FileInfo& fi,
            int op) override;
  int Fallocate(const Context& ctx, const std::string& path, int mode,
                off_t offset, off_t length, const FileInfo& fi) override;
  int CopyFileRange(const Context& ctx, const std::string& path_in,
                    const FileInfo& fi_in, off_t offset_in,
                    const std::string& path_out, const FileInfo& fi_out,
                    off_t offset_out, size_t length, int flags,
                    size_t* copied) override;
  int Lseek(const Context& ctx, const std::string& path, off_t offset,
            int whence, const FileInfo& fi, off_t* result) override;

 private:
  // Operations get a directory descriptor and one name in it, and return 0
  // or an errno (read before anything else can overwrite errno).
  using AtOp = absl::FunctionRef<int(int dir_fd, const char* name)>;
  using FdOp = absl::FunctionRef<int(int fd)>;

  LoopbackFs(int root_fd, bool act_as_caller, bool have_openat2,
             bool forward_flock, bool flush_is_no_op);

  // Runs `op` as the caller on `path`'s parent directory and last component
  // ("." for the root).
  int AtPath(const Context& ctx, const std::string& path, AtOp op);
  // Runs `op` as the caller on the descriptor behind handle `fi.fh`; EBADF
  // for a handle the table does not know.
  int AtFd(const Context& ctx, const FileInfo& fi, FdOp op);
  // AtFd when the kernel asked through an open file, else AtPath.
  int AtFdOrPath(const Context& ctx, const std::string& path,
                 const FileInfo* fi, FdOp fd_op, AtOp at_op);
  // After a change by `ctx` that clears set-id bits (a write, truncate,
  // fallocate, O_TRUNC open) through descriptor `fd`: clears them when the
  // change ran as this process and the caller is not root.
  void ClearSetIdBits(const Context& ctx, int fd) const;
  // A chmod to `mode` that chmod(2) refused the caller (EPERM), done as this
  // process when it only drops bits a write by the caller clears and the
  // caller may write the file (a handle open for writing, or write
  // permission): the kernel's request before such a write. EPERM otherwise.
  int DropSetIdBits(const Context& ctx, const std::string& path, mode_t mode,
                    const FileInfo* fi);
  // Like AtPath for two paths (rename, link): both resolved as the caller.
  int AtPaths(const Context& ctx, const std::string& from,
              const std::string& to,
              absl::FunctionRef<int(int, const char*, int, const char*)> op);

  // The directory holding a path's last component, and that component.
  class Parent;
  // Resolves daemon path `path` (validated) to its Parent, opening the
  // directories on the way with the current thread's credentials and, when
  // openat2 exists, refusing to pass through symlinks or leave the root.
  int ResolveParent(const std::string& path, Parent* out) const;
  // Pushes the watcher's changes to the daemon: each to every mount but the
  // one whose own operation made it (OwnChanges::ExplainedBy).
  void Announce(const std::vector<TreeChange>& changes);
  // Runs `change`, which changes `paths` on the host for an operation of
  // `ctx`, and returns its result; when the tree is watched, as an
  // OwnChanges::Scope of ctx.mount_id.
  int Changed(const Context& ctx, std::initializer_list<std::string> paths,
              absl::FunctionRef<int()> change);

  const int root_fd_;
  const bool act_as_caller_;
  const bool forward_flock_;
  // openat2(2) exists (Linux >= 5.6 and not filtered by seccomp). Without
  // it, intermediate symlinks are followed: a weaker guarantee, which only
  // matters if the host tree changes under the mount.
  const bool have_openat2_;
  bool passthrough_ = false;  // set once, in New
  bool posix_acl_ = false;    // set once, in New
  bool lsm_labels_ = false;   // set once, in New
  // The backing filesystem's close does nothing Flush could report (see
  // FlushIsNoOp), so opens are marked noflush and close costs no round trip.
  const bool flush_is_no_op_;
  HandleTable handles_;
  // Striped by handle (one descriptor each): Readdir rewinds and reads the
  // descriptor, and two readers of the same handle would interleave.
  std::array<absl::Mutex, 16> dir_read_mu_;
  // Set once, in New, when watching; stopped first in the destructor.
  std::unique_ptr<TreeWatcher> watcher_;
  std::unique_ptr<OwnChanges> own_changes_;  // with watcher_
  // The kernel writes a file opened for writing with passthrough without
  // telling us: its events are our mount's change, under way from the open
  // to the release (then recorded).
  void WritingThrough(const Context& ctx, const std::string& path, int flags,
                      uint64_t fh);
  absl::Mutex writing_mu_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<OwnChanges::Scope>> writing_
      ABSL_GUARDED_BY(writing_mu_);
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_LOOPBACK_FS_H_
