// An in-memory filesystem: the reference backend for the C++ SDK.
//
// It behaves like a local POSIX filesystem as far as a FUSE backend has to:
// regular files (with holes), directories, symlinks, hard links, FIFOs and
// device nodes, extended attributes, owners and modes with the chown/chmod
// rules of POSIX, timestamps updated as Linux filesystems update them, open
// files that survive unlink, renameat2 flags, fallocate, copy_file_range and
// SEEK_DATA/SEEK_HOLE, and one ioctl (kIoctlAddOne). Permission checks other than those ownership rules
// are left to the kernel (mounts use default_permissions), and so is locking.
//
// Contents live in memory only and vanish with the process.

#ifndef FUSE_HOSTD_EXAMPLES_MEMORY_MEMORY_FS_H_
#define FUSE_HOSTD_EXAMPLES_MEMORY_MEMORY_FS_H_

#include <sys/ioctl.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/filesystem.h"

namespace fusehost {
namespace examples {

// Thread use: every method may be called concurrently from any thread. One
// mutex guards the whole tree; operations are short memory copies, so finer
// locking would buy little and cost the simple proof that rename, link and
// unlink see a consistent tree.
class MemoryFs : public FileSystem {
 public:
  struct Options {
    // Owner and mode of the root directory.
    uid_t root_uid = 0;
    gid_t root_gid = 0;
    mode_t root_mode = 0755;
    // Bytes of file contents and symlink targets the filesystem may hold
    // (ENOSPC beyond), reported by statfs.
    uint64_t capacity_bytes = uint64_t{1} << 30;
    // Number of inodes it may hold (ENOSPC beyond).
    uint64_t max_inodes = uint64_t{1} << 20;
    // How long fuse-hostd may cache metadata. Every change to this
    // filesystem goes through a mount, and fuse-hostd keeps its cache
    // coherent with changes it carries, so a long time is safe for one
    // mount. Several mounts of one instance see each other's changes only
    // after this long.
    uint32_t cache_ttl_ms = 60000;
  };

  explicit MemoryFs(const Options& options);
  ~MemoryFs() override;

  std::string Name() const override { return "memory_fs"; }
  bool GetattrIsCheap() const override { return true; }
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
  int Release(const Context& ctx, const std::string& path,
              const FileInfo& fi) override;
  int Statfs(const Context& ctx, const std::string& path,
             struct statvfs* st) override;
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
  int Readdir(const Context& ctx, const std::string& path, off_t offset,
              const FileInfo& fi, std::vector<DirEntry>* entries,
              bool* eof) override;
  int Releasedir(const Context& ctx, const std::string& path,
                 const FileInfo& fi) override;
  int Access(const Context& ctx, const std::string& path, int mask) override;
  int Fallocate(const Context& ctx, const std::string& path, int mode,
                off_t offset, off_t length, const FileInfo& fi) override;
  int CopyFileRange(const Context& ctx, const std::string& path_in,
                    const FileInfo& fi_in, off_t offset_in,
                    const std::string& path_out, const FileInfo& fi_out,
                    off_t offset_out, size_t length, int flags,
                    size_t* copied) override;
  int Lseek(const Context& ctx, const std::string& path, off_t offset,
            int whence, const FileInfo& fi, off_t* result) override;
  int Ioctl(const Context& ctx, const std::string& path, uint32_t cmd,
            uint64_t arg, const FileInfo* fi, uint32_t flags,
            const std::string& in, size_t out_size, std::string* out,
            int* result) override;

  // The one ioctl it answers, on any file or directory (as mfusepy's memory
  // example does): passed a 32-bit number, passes back that number plus one.
  static constexpr uint32_t kIoctlAddOne = _IOWR('M', 1, uint32_t);

 private:
  struct Inode;
  using InodePtr = std::shared_ptr<Inode>;

  // Locks mu_, finds the file (see ResolveOpen) and returns fn(inode), or
  // the lookup's errno. `fn` runs with mu_ held.
  template <typename Fn>
  int WithInode(const std::string& path, const FileInfo* fi, Fn fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Path lookup. Paths are absolute and canonical (the daemon's contract).
  int Resolve(const std::string& path, InodePtr* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The directory holding the last component of `path`, and that component.
  int ResolveParent(const std::string& path, InodePtr* parent,
                    std::string* name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The file `fi` has open when given (it may have no name any more; EBADF
  // for a handle not open), else the file at `path`.
  int ResolveOpen(const std::string& path, const FileInfo* fi, InodePtr* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Creates a file of type and mode `mode` at `path`, owned by the caller.
  int MakeNode(const Context& ctx, const std::string& path, mode_t mode,
               dev_t rdev, const std::string& symlink_target, InodePtr* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unlink (`directory` false) and rmdir (true, and it must be empty).
  int RemoveName(const std::string& path, bool directory)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Bookkeeping for a name that goes away.
  void DropLink(const InodePtr& inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns the space of a file that has neither a name nor an open handle.
  void ReleaseIfUnused(Inode& inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resizes a regular file's contents within the capacity (zero fill).
  int SetSize(Inode& inode, uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `length` bytes at `offset`, growing the file; sets mtime/ctime.
  int WriteAt(Inode& inode, const char* bytes, size_t length, uint64_t offset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  uint64_t OpenHandle(const InodePtr& inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseHandle(uint64_t fh) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void FillStat(const Inode& inode, struct stat* st) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  InodePtr root_ ABSL_GUARDED_BY(mu_);
  // Open files and directories by handle. Holding the inode keeps an
  // unlinked file readable and writable until its last close.
  std::unordered_map<uint64_t, InodePtr> handles_ ABSL_GUARDED_BY(mu_);
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_ino_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t used_inodes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_MEMORY_MEMORY_FS_H_
