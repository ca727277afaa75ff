// Default implementations of the FileSystem operations.
//
// The defaults follow libfuse's high-level API: an operation the filesystem
// does not implement answers ENOSYS (the kernel then remembers that and stops
// asking for some of them, e.g. fallocate, copy_file_range, lseek), except
// where answering "not implemented" would break ordinary use: opening,
// closing and syncing must work for a filesystem that keeps no per-open
// state, and statfs must answer or `df` and some installers fail.
//
// Also the notice methods, which hand notices to the SDK's InvalidationHub.

#include "client/filesystem.h"

#include <cerrno>

#include "client/invalidation_hub.h"

namespace fusehost {

FileSystem::FileSystem() : invalidations_(std::make_unique<InvalidationHub>()) {}

FileSystem::~FileSystem() = default;

void FileSystem::NotifyChanged(const std::string& path) {
  invalidations_->Publish(v1::Invalidation::CHANGED, path);
}

void FileSystem::NotifyRemoved(const std::string& path) {
  invalidations_->Publish(v1::Invalidation::REMOVED, path);
}

void FileSystem::NotifySubtreeChanged(const std::string& path) {
  invalidations_->Publish(v1::Invalidation::SUBTREE, path);
}

void FileSystem::NotifyChangedExcept(uint64_t mount_id,
                                     const std::string& path) {
  invalidations_->PublishExcept(mount_id, v1::Invalidation::CHANGED, path);
}

void FileSystem::NotifyRemovedExcept(uint64_t mount_id,
                                     const std::string& path) {
  invalidations_->PublishExcept(mount_id, v1::Invalidation::REMOVED, path);
}

void FileSystem::NotifySubtreeChangedExcept(uint64_t mount_id,
                                            const std::string& path) {
  invalidations_->PublishExcept(mount_id, v1::Invalidation::SUBTREE, path);
}

InitResult FileSystem::Init(const MountInfo& /*mount*/) { return {}; }

void FileSystem::Destroy(uint64_t /*mount_id*/) {}

int FileSystem::Getattr(const Context& /*ctx*/, const std::string& /*path*/,
                        const FileInfo* /*fi*/, struct stat* /*st*/) {
  return ENOSYS;
}

int FileSystem::Readlink(const Context& /*ctx*/, const std::string& /*path*/,
                         std::string* /*target*/) {
  return ENOSYS;
}

int FileSystem::Mknod(const Context& /*ctx*/, const std::string& /*path*/,
                      mode_t /*mode*/, dev_t /*rdev*/) {
  return ENOSYS;
}

int FileSystem::Mkdir(const Context& /*ctx*/, const std::string& /*path*/,
                      mode_t /*mode*/) {
  return ENOSYS;
}

int FileSystem::Unlink(const Context& /*ctx*/, const std::string& /*path*/) {
  return ENOSYS;
}

int FileSystem::Rmdir(const Context& /*ctx*/, const std::string& /*path*/) {
  return ENOSYS;
}

int FileSystem::Symlink(const Context& /*ctx*/, const std::string& /*target*/,
                        const std::string& /*path*/) {
  return ENOSYS;
}

int FileSystem::Rename(const Context& /*ctx*/, const std::string& /*from*/,
                       const std::string& /*to*/, unsigned int /*flags*/) {
  return ENOSYS;
}

int FileSystem::Link(const Context& /*ctx*/, const std::string& /*from*/,
                     const std::string& /*to*/) {
  return ENOSYS;
}

int FileSystem::Chmod(const Context& /*ctx*/, const std::string& /*path*/,
                      mode_t /*mode*/, const FileInfo* /*fi*/) {
  return ENOSYS;
}

int FileSystem::Chown(const Context& /*ctx*/, const std::string& /*path*/,
                      uid_t /*uid*/, gid_t /*gid*/, const FileInfo* /*fi*/) {
  return ENOSYS;
}

int FileSystem::Truncate(const Context& /*ctx*/, const std::string& /*path*/,
                         off_t /*size*/, const FileInfo* /*fi*/) {
  return ENOSYS;
}

int FileSystem::Utimens(const Context& /*ctx*/, const std::string& /*path*/,
                        const TimeSpec& /*atime*/, const TimeSpec& /*mtime*/,
                        const FileInfo* /*fi*/) {
  return ENOSYS;
}

// Succeeds with fh 0: a filesystem that reads by path needs no handle.
int FileSystem::Open(const Context& /*ctx*/, const std::string& /*path*/,
                     FileInfo* /*fi*/) {
  return 0;
}

int FileSystem::Read(const Context& /*ctx*/, const std::string& /*path*/,
                     std::string* /*data*/, size_t /*size*/, off_t /*offset*/,
                     const FileInfo& /*fi*/) {
  return ENOSYS;
}

int FileSystem::Write(const Context& /*ctx*/, const std::string& /*path*/,
                      const std::string& /*data*/, off_t /*offset*/,
                      const FileInfo& /*fi*/, size_t* /*written*/) {
  return ENOSYS;
}

// An empty filesystem rather than ENOSYS: statfs(2) failing breaks `df` and
// tools that check free space before writing.
int FileSystem::Statfs(const Context& /*ctx*/, const std::string& /*path*/,
                       struct statvfs* st) {
  *st = {};
  st->f_bsize = 4096;
  st->f_frsize = 4096;
  st->f_namemax = 255;
  return 0;
}

int FileSystem::Flush(const Context& /*ctx*/, const std::string& /*path*/,
                      const FileInfo& /*fi*/) {
  return 0;
}

int FileSystem::Release(const Context& /*ctx*/, const std::string& /*path*/,
                        const FileInfo& /*fi*/) {
  return 0;
}

int FileSystem::Fsync(const Context& /*ctx*/, const std::string& /*path*/,
                      bool /*datasync*/, const FileInfo& /*fi*/) {
  return 0;
}

int FileSystem::Setxattr(const Context& /*ctx*/, const std::string& /*path*/,
                         const std::string& /*name*/,
                         const std::string& /*value*/, int /*flags*/) {
  return ENOSYS;
}

int FileSystem::Getxattr(const Context& /*ctx*/, const std::string& /*path*/,
                         const std::string& /*name*/, std::string* /*value*/) {
  return ENOSYS;
}

int FileSystem::Listxattr(const Context& /*ctx*/, const std::string& /*path*/,
                          std::string* /*list*/) {
  return ENOSYS;
}

int FileSystem::Removexattr(const Context& /*ctx*/, const std::string& /*path*/,
                            const std::string& /*name*/) {
  return ENOSYS;
}

int FileSystem::Opendir(const Context& /*ctx*/, const std::string& /*path*/,
                        FileInfo* /*fi*/) {
  return 0;
}

int FileSystem::Readdir(const Context& /*ctx*/, const std::string& /*path*/,
                        off_t /*offset*/, const FileInfo& /*fi*/,
                        std::vector<DirEntry>* /*entries*/, bool* /*eof*/) {
  return ENOSYS;
}

int FileSystem::Releasedir(const Context& /*ctx*/, const std::string& /*path*/,
                           const FileInfo& /*fi*/) {
  return 0;
}

int FileSystem::Fsyncdir(const Context& /*ctx*/, const std::string& /*path*/,
                         bool /*datasync*/, const FileInfo& /*fi*/) {
  return 0;
}

// Only asked on mounts without default_permissions; succeeding matches
// libfuse, where a filesystem without access() grants everything.
int FileSystem::Access(const Context& /*ctx*/, const std::string& /*path*/,
                       int /*mask*/) {
  return 0;
}

int FileSystem::Create(const Context& /*ctx*/, const std::string& /*path*/,
                       mode_t /*mode*/, FileInfo* /*fi*/) {
  return ENOSYS;
}

int FileSystem::Lock(const Context& /*ctx*/, const std::string& /*path*/,
                     const FileInfo& /*fi*/, int /*cmd*/,
                     struct flock* /*lock*/) {
  return ENOSYS;
}

int FileSystem::Flock(const Context& /*ctx*/, const std::string& /*path*/,
                      const FileInfo& /*fi*/, int /*op*/) {
  return ENOSYS;
}

int FileSystem::Fallocate(const Context& /*ctx*/, const std::string& /*path*/,
                          int /*mode*/, off_t /*offset*/, off_t /*length*/,
                          const FileInfo& /*fi*/) {
  return ENOSYS;
}

int FileSystem::CopyFileRange(const Context& /*ctx*/,
                              const std::string& /*path_in*/,
                              const FileInfo& /*fi_in*/, off_t /*offset_in*/,
                              const std::string& /*path_out*/,
                              const FileInfo& /*fi_out*/, off_t /*offset_out*/,
                              size_t /*length*/, int /*flags*/,
                              size_t* /*copied*/) {
  return ENOSYS;
}

int FileSystem::Lseek(const Context& /*ctx*/, const std::string& /*path*/,
                      off_t /*offset*/, int /*whence*/, const FileInfo& /*fi*/,
                      off_t* /*result*/) {
  return ENOSYS;
}

int FileSystem::Ioctl(const Context& /*ctx*/, const std::string& /*path*/,
                      uint32_t /*cmd*/, uint64_t /*arg*/,
                      const FileInfo* /*fi*/, uint32_t /*flags*/,
                      const std::string& /*in*/, size_t /*out_size*/,
                      std::string* /*out*/, int* /*result*/) {
  return ENOTTY;  // what ioctl(2) answers for a command nobody knows
}

}  // namespace fusehost
