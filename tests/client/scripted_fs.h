// The scripted filesystem of the SDK conformance cases
// (tests/conformance/README.md) as a C++ SDK FileSystem: what it holds, how
// each operation changes it, and which operations fail or are left out, all
// come from a fusehost.conformance.ScriptedFileSystem message. The Python
// SDK's runner implements the same in tests/client/python.
//
// Thread use: every operation may run concurrently with the others (the SDK
// runs a batch's ops so); the state is guarded by one mutex.

#ifndef FUSE_HOSTD_TESTS_CLIENT_SCRIPTED_FS_H_
#define FUSE_HOSTD_TESTS_CLIENT_SCRIPTED_FS_H_

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "client/filesystem.h"
#include "proto/filesystem.pb.h"
#include "tests/conformance/conformance.pb.h"

namespace fusehost {

// The runner's own conversion of an Attr, field by field, so that what the
// SDK sends is compared with the case and not with another SDK conversion.
struct stat StatOfAttr(const v1::Attr& attr);

class ScriptedFs : public FileSystem {
 public:
  explicit ScriptedFs(const conformance::ScriptedFileSystem& spec);

  bool GetattrIsCheap() const override { return spec_.getattr_is_cheap(); }

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
  int Readdir(const Context& ctx, const std::string& path, off_t offset,
              const FileInfo& fi, std::vector<DirEntry>* entries,
              bool* eof) override;
  int Releasedir(const Context& ctx, const std::string& path,
                 const FileInfo& fi) override;
  int Fsyncdir(const Context& ctx, const std::string& path, bool datasync,
               const FileInfo& fi) override;
  int Access(const Context& ctx, const std::string& path, int mask) override;
  int Create(const Context& ctx, const std::string& path, mode_t mode,
             FileInfo* fi) override;
  int Lock(const Context& ctx, const std::string& path, const FileInfo& fi,
           int cmd, struct flock* lock) override;
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
  int Ioctl(const Context& ctx, const std::string& path, uint32_t cmd,
            uint64_t arg, const FileInfo* fi, uint32_t flags,
            const std::string& in, size_t out_size, std::string* out,
            int* result) override;

 private:
  // Whether the case leaves operation `op` out: the operation then answers
  // as FileSystem's default does.
  bool Unimplemented(absl::string_view op) const;
  // The scripted errno of `op` naming one of `paths`, or 0.
  int Fails(absl::string_view op,
            std::initializer_list<absl::string_view> paths) const;
  // The node at `path`, or null when it is absent or not listed.
  conformance::Node* Existing(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After the scripted failures of `op`: runs `fn` on the node at `path`
  // with the mutex held and returns its errno; ENOENT without such a node.
  template <typename Fn>
  int OnNode(absl::string_view op, const std::string& path, Fn fn);
  // mknod, mkdir, symlink, link and create: an absent node comes to exist.
  int Make(absl::string_view op, const std::string& path);
  // unlink and rmdir: an existing node becomes absent.
  int Remove(absl::string_view op, const std::string& path);
  // open, opendir and create: the node's handle.
  int Handle(absl::string_view op, const std::string& path, FileInfo* fi);

  const conformance::ScriptedFileSystem spec_;
  absl::Mutex mu_;
  // Every listed path, in readdir order.
  std::vector<std::string> order_;
  std::map<std::string, conformance::Node> nodes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_CLIENT_SCRIPTED_FS_H_
