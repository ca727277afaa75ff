#include "tests/client/scripted_fs.h"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>

#include "common/paths.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

namespace conf = ::fusehost::conformance;

struct timespec ToTimespec(const v1::Timespec& t) {
  struct timespec out = {};
  out.tv_sec = t.sec();
  out.tv_nsec = t.nsec();
  return out;
}

void SetTime(const TimeSpec& time, v1::Timespec* out) {
  if (time.omit || time.now) return;
  out->set_sec(time.time.tv_sec);
  out->set_nsec(static_cast<uint32_t>(time.time.tv_nsec));
}

conf::Xattr* FindXattr(conf::Node& node, const std::string& name) {
  for (conf::Xattr& xattr : *node.mutable_xattr()) {
    if (xattr.name() == name) return &xattr;
  }
  return nullptr;
}

}  // namespace

struct stat StatOfAttr(const v1::Attr& attr) {
  struct stat st = {};
  st.st_ino = attr.ino();
  st.st_mode = attr.mode();
  st.st_nlink = attr.nlink();
  st.st_uid = attr.uid();
  st.st_gid = attr.gid();
  st.st_rdev = attr.rdev();
  st.st_size = static_cast<off_t>(attr.size());
  st.st_blocks = static_cast<blkcnt_t>(attr.blocks());
  st.st_blksize = attr.blksize();
  st.st_atim = ToTimespec(attr.atime());
  st.st_mtim = ToTimespec(attr.mtime());
  st.st_ctim = ToTimespec(attr.ctime());
  return st;
}

ScriptedFs::ScriptedFs(const conf::ScriptedFileSystem& spec) : spec_(spec) {
  for (const conf::Node& node : spec.node()) {
    order_.push_back(node.path());
    nodes_[node.path()] = node;
  }
}

bool ScriptedFs::Unimplemented(absl::string_view op) const {
  for (const std::string& name : spec_.unimplemented()) {
    if (name == op) return true;
  }
  return false;
}

int ScriptedFs::Fails(absl::string_view op,
                      std::initializer_list<absl::string_view> paths) const {
  for (const conf::Failure& failure : spec_.failure()) {
    if (!failure.op().empty() && failure.op() != op) continue;
    for (absl::string_view path : paths) {
      if (failure.path() == path) return failure.posix_errno();
    }
  }
  return 0;
}

conf::Node* ScriptedFs::Existing(const std::string& path) {
  auto it = nodes_.find(path);
  if (it == nodes_.end() || it->second.absent()) return nullptr;
  return &it->second;
}

template <typename Fn>
int ScriptedFs::OnNode(absl::string_view op, const std::string& path, Fn fn) {
  if (int rc = Fails(op, {path})) return rc;
  absl::MutexLock lock(&mu_);
  conf::Node* node = Existing(path);
  if (node == nullptr) return ENOENT;
  return fn(*node);
}

int ScriptedFs::Make(absl::string_view op, const std::string& path) {
  if (int rc = Fails(op, {path})) return rc;
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return ENOENT;
  if (!it->second.absent()) return EEXIST;
  it->second.set_absent(false);
  return 0;
}

int ScriptedFs::Remove(absl::string_view op, const std::string& path) {
  return OnNode(op, path, [](conf::Node& node) {
    node.set_absent(true);
    return 0;
  });
}

int ScriptedFs::Handle(absl::string_view op, const std::string& path,
                       FileInfo* fi) {
  return OnNode(op, path, [fi](conf::Node& node) {
    fi->fh = node.fh();
    return 0;
  });
}

int ScriptedFs::Getattr(const Context&, const std::string& path,
                        const FileInfo*, struct stat* st) {
  return OnNode("getattr", path, [st](conf::Node& node) {
    *st = StatOfAttr(node.attr());
    return 0;
  });
}

int ScriptedFs::Readlink(const Context& ctx, const std::string& path,
                         std::string* target) {
  if (Unimplemented("readlink")) return FileSystem::Readlink(ctx, path, target);
  return OnNode("readlink", path, [target](conf::Node& node) {
    *target = node.target();
    return 0;
  });
}

int ScriptedFs::Mknod(const Context& ctx, const std::string& path, mode_t mode,
                      dev_t rdev) {
  if (Unimplemented("mknod")) return FileSystem::Mknod(ctx, path, mode, rdev);
  return Make("mknod", path);
}

int ScriptedFs::Mkdir(const Context& ctx, const std::string& path,
                      mode_t mode) {
  if (Unimplemented("mkdir")) return FileSystem::Mkdir(ctx, path, mode);
  return Make("mkdir", path);
}

int ScriptedFs::Symlink(const Context& ctx, const std::string& target,
                        const std::string& path) {
  if (Unimplemented("symlink")) return FileSystem::Symlink(ctx, target, path);
  if (int rc = Fails("symlink", {target})) return rc;
  return Make("symlink", path);
}

int ScriptedFs::Link(const Context& ctx, const std::string& from,
                     const std::string& to) {
  if (Unimplemented("link")) return FileSystem::Link(ctx, from, to);
  // The existing name must exist; the new one then comes to exist with its
  // own listed attributes.
  int rc = OnNode("link", from, [](conf::Node&) { return 0; });
  return rc != 0 ? rc : Make("link", to);
}

int ScriptedFs::Unlink(const Context& ctx, const std::string& path) {
  if (Unimplemented("unlink")) return FileSystem::Unlink(ctx, path);
  return Remove("unlink", path);
}

int ScriptedFs::Rmdir(const Context& ctx, const std::string& path) {
  if (Unimplemented("rmdir")) return FileSystem::Rmdir(ctx, path);
  return Remove("rmdir", path);
}

int ScriptedFs::Rename(const Context& ctx, const std::string& from,
                       const std::string& to, unsigned int flags) {
  if (Unimplemented("rename")) return FileSystem::Rename(ctx, from, to, flags);
  if (int rc = Fails("rename", {from, to})) return rc;
  // RENAME_EXCHANGE and unknown flags are not honoured, which the protocol
  // answers with EINVAL.
  if (flags != 0 && flags != RENAME_NOREPLACE) return EINVAL;
  // Runs with the mutex held: the new name is another node.
  auto move = [&](conf::Node& old_node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (from == to) return 0;
    auto it = nodes_.find(to);
    if (it == nodes_.end()) return ENOENT;
    conf::Node& new_node = it->second;
    if (flags == RENAME_NOREPLACE && !new_node.absent()) return EEXIST;
    new_node = old_node;
    new_node.set_path(to);
    old_node.set_absent(true);
    return 0;
  };
  return OnNode("rename", from, move);
}

int ScriptedFs::Chmod(const Context& ctx, const std::string& path, mode_t mode,
                      const FileInfo* fi) {
  if (Unimplemented("chmod")) return FileSystem::Chmod(ctx, path, mode, fi);
  return OnNode("chmod", path, [mode](conf::Node& node) {
    v1::Attr* attr = node.mutable_attr();
    attr->set_mode((attr->mode() & S_IFMT) | (mode & 07777));
    return 0;
  });
}

int ScriptedFs::Chown(const Context& ctx, const std::string& path, uid_t uid,
                      gid_t gid, const FileInfo* fi) {
  if (Unimplemented("chown")) return FileSystem::Chown(ctx, path, uid, gid, fi);
  return OnNode("chown", path, [uid, gid](conf::Node& node) {
    if (uid != static_cast<uid_t>(-1)) node.mutable_attr()->set_uid(uid);
    if (gid != static_cast<gid_t>(-1)) node.mutable_attr()->set_gid(gid);
    return 0;
  });
}

int ScriptedFs::Truncate(const Context& ctx, const std::string& path,
                         off_t size, const FileInfo* fi) {
  if (Unimplemented("truncate")) {
    return FileSystem::Truncate(ctx, path, size, fi);
  }
  return OnNode("truncate", path, [size](conf::Node& node) {
    node.mutable_data()->resize(size, '\0');
    node.mutable_attr()->set_size(size);
    return 0;
  });
}

int ScriptedFs::Utimens(const Context& ctx, const std::string& path,
                        const TimeSpec& atime, const TimeSpec& mtime,
                        const FileInfo* fi) {
  if (Unimplemented("utimens")) {
    return FileSystem::Utimens(ctx, path, atime, mtime, fi);
  }
  // The current time would differ between runs and SDKs.
  EXPECT_FALSE(atime.now || mtime.now) << "cases must not use TimeSet.NOW";
  return OnNode("utimens", path, [&](conf::Node& node) {
    SetTime(atime, node.mutable_attr()->mutable_atime());
    SetTime(mtime, node.mutable_attr()->mutable_mtime());
    return 0;
  });
}

int ScriptedFs::Open(const Context& ctx, const std::string& path,
                     FileInfo* fi) {
  if (Unimplemented("open")) return FileSystem::Open(ctx, path, fi);
  return Handle("open", path, fi);
}

int ScriptedFs::Opendir(const Context& ctx, const std::string& path,
                        FileInfo* fi) {
  if (Unimplemented("opendir")) return FileSystem::Opendir(ctx, path, fi);
  return Handle("opendir", path, fi);
}

int ScriptedFs::Create(const Context& ctx, const std::string& path, mode_t mode,
                       FileInfo* fi) {
  if (Unimplemented("create")) return FileSystem::Create(ctx, path, mode, fi);
  int rc = Make("create", path);
  return rc != 0 ? rc : Handle("create", path, fi);
}

int ScriptedFs::Read(const Context& ctx, const std::string& path,
                     std::string* data, size_t size, off_t offset,
                     const FileInfo& fi) {
  if (Unimplemented("read")) {
    return FileSystem::Read(ctx, path, data, size, offset, fi);
  }
  return OnNode("read", path, [&](conf::Node& node) {
    const std::string& contents = node.data();
    if (static_cast<size_t>(offset) < contents.size()) {
      *data = spec_.read_ignores_size() ? contents.substr(offset)
                                        : contents.substr(offset, size);
    }
    return 0;
  });
}

int ScriptedFs::Write(const Context& ctx, const std::string& path,
                      const std::string& data, off_t offset, const FileInfo& fi,
                      size_t* written) {
  if (Unimplemented("write")) {
    return FileSystem::Write(ctx, path, data, offset, fi, written);
  }
  return OnNode("write", path, [&](conf::Node& node) {
    std::string* contents = node.mutable_data();
    const size_t end = static_cast<size_t>(offset) + data.size();
    if (contents->size() < end) contents->resize(end, '\0');
    contents->replace(offset, data.size(), data);
    node.mutable_attr()->set_size(contents->size());
    *written = data.size() + spec_.overclaim();
    return 0;
  });
}

int ScriptedFs::Statfs(const Context& ctx, const std::string& path,
                       struct statvfs* st) {
  if (Unimplemented("statfs")) return FileSystem::Statfs(ctx, path, st);
  if (int rc = Fails("statfs", {path})) return rc;
  const v1::StatfsReply& s = spec_.statfs();
  *st = {};
  st->f_bsize = s.bsize();
  st->f_frsize = s.frsize();
  st->f_blocks = s.blocks();
  st->f_bfree = s.bfree();
  st->f_bavail = s.bavail();
  st->f_files = s.files();
  st->f_ffree = s.ffree();
  st->f_favail = s.favail();
  st->f_namemax = s.namemax();
  return 0;
}

int ScriptedFs::Flush(const Context& ctx, const std::string& path,
                      const FileInfo& fi) {
  if (Unimplemented("flush")) return FileSystem::Flush(ctx, path, fi);
  return Fails("flush", {path});
}

int ScriptedFs::Release(const Context& ctx, const std::string& path,
                        const FileInfo& fi) {
  if (Unimplemented("release")) return FileSystem::Release(ctx, path, fi);
  return Fails("release", {path});
}

int ScriptedFs::Fsync(const Context& ctx, const std::string& path,
                      bool datasync, const FileInfo& fi) {
  if (Unimplemented("fsync")) return FileSystem::Fsync(ctx, path, datasync, fi);
  return Fails("fsync", {path});
}

int ScriptedFs::Setxattr(const Context& ctx, const std::string& path,
                         const std::string& name, const std::string& value,
                         int flags) {
  if (Unimplemented("setxattr")) {
    return FileSystem::Setxattr(ctx, path, name, value, flags);
  }
  return OnNode("setxattr", path, [&](conf::Node& node) {
    conf::Xattr* xattr = FindXattr(node, name);
    if (xattr == nullptr) {
      xattr = node.add_xattr();
      xattr->set_name(name);
    }
    xattr->set_value(value);
    return 0;
  });
}

int ScriptedFs::Getxattr(const Context& ctx, const std::string& path,
                         const std::string& name, std::string* value) {
  if (Unimplemented("getxattr")) {
    return FileSystem::Getxattr(ctx, path, name, value);
  }
  return OnNode("getxattr", path, [&](conf::Node& node) {
    const conf::Xattr* xattr = FindXattr(node, name);
    if (xattr == nullptr) return ENODATA;
    *value = xattr->value();
    return 0;
  });
}

int ScriptedFs::Listxattr(const Context& ctx, const std::string& path,
                          std::string* list) {
  if (Unimplemented("listxattr")) {
    return FileSystem::Listxattr(ctx, path, list);
  }
  return OnNode("listxattr", path, [list](conf::Node& node) {
    for (const conf::Xattr& xattr : node.xattr()) {
      list->append(xattr.name());
      list->push_back('\0');
    }
    return 0;
  });
}

int ScriptedFs::Removexattr(const Context& ctx, const std::string& path,
                            const std::string& name) {
  if (Unimplemented("removexattr")) {
    return FileSystem::Removexattr(ctx, path, name);
  }
  return OnNode("removexattr", path, [&name](conf::Node& node) {
    auto* xattrs = node.mutable_xattr();
    for (int i = 0; i < xattrs->size(); ++i) {
      if (xattrs->Get(i).name() == name) {
        xattrs->DeleteSubrange(i, 1);
        return 0;
      }
    }
    return ENODATA;
  });
}

int ScriptedFs::Readdir(const Context& ctx, const std::string& path,
                        off_t offset, const FileInfo& fi,
                        std::vector<DirEntry>* entries, bool* eof) {
  if (Unimplemented("readdir")) {
    return FileSystem::Readdir(ctx, path, offset, fi, entries, eof);
  }
  // Runs with the mutex held: it reads the other nodes.
  auto list = [&](conf::Node&) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Cookies are positions among the directory's children, from 1.
    uint64_t position = 0;
    for (const std::string& child : order_) {
      const conf::Node& node = nodes_[child];
      if (node.absent() || child == "/" || ParentPath(child) != path) continue;
      ++position;
      if (spec_.resumable_readdir() &&
          position <= static_cast<uint64_t>(offset)) {
        continue;
      }
      DirEntry entry;
      entry.name = std::string(BaseName(child));
      entry.st = StatOfAttr(node.attr());
      entry.has_attr = true;
      if (spec_.resumable_readdir()) entry.offset = position;
      if (spec_.readdir_lists_xattrs()) {
        entry.xattr_names_known = true;
        for (const conf::Xattr& xattr : node.xattr()) {
          entry.xattr_names.push_back(xattr.name());
        }
      }
      entries->push_back(std::move(entry));
    }
    *eof = true;
    return 0;
  };
  return OnNode("readdir", path, list);
}

int ScriptedFs::Releasedir(const Context& ctx, const std::string& path,
                           const FileInfo& fi) {
  if (Unimplemented("releasedir")) {
    return FileSystem::Releasedir(ctx, path, fi);
  }
  return Fails("releasedir", {path});
}

int ScriptedFs::Fsyncdir(const Context& ctx, const std::string& path,
                         bool datasync, const FileInfo& fi) {
  if (Unimplemented("fsyncdir")) {
    return FileSystem::Fsyncdir(ctx, path, datasync, fi);
  }
  return Fails("fsyncdir", {path});
}

int ScriptedFs::Access(const Context& ctx, const std::string& path, int mask) {
  if (Unimplemented("access")) return FileSystem::Access(ctx, path, mask);
  return Fails("access", {path});
}

int ScriptedFs::Lock(const Context& ctx, const std::string& path,
                     const FileInfo& fi, int cmd, struct flock* lock) {
  if (Unimplemented("lock")) return FileSystem::Lock(ctx, path, fi, cmd, lock);
  if (int rc = Fails("lock", {path})) return rc;
  // Nobody else holds a lock.
  if (cmd == F_GETLK) lock->l_type = F_UNLCK;
  return 0;
}

int ScriptedFs::Flock(const Context& ctx, const std::string& path,
                      const FileInfo& fi, int op) {
  if (Unimplemented("flock")) return FileSystem::Flock(ctx, path, fi, op);
  return Fails("flock", {path});
}

int ScriptedFs::Fallocate(const Context& ctx, const std::string& path, int mode,
                          off_t offset, off_t length, const FileInfo& fi) {
  if (Unimplemented("fallocate")) {
    return FileSystem::Fallocate(ctx, path, mode, offset, length, fi);
  }
  return Fails("fallocate", {path});
}

int ScriptedFs::CopyFileRange(const Context& ctx, const std::string& path_in,
                              const FileInfo& fi_in, off_t offset_in,
                              const std::string& path_out,
                              const FileInfo& fi_out, off_t offset_out,
                              size_t length, int flags, size_t* copied) {
  if (Unimplemented("copy_file_range")) {
    return FileSystem::CopyFileRange(ctx, path_in, fi_in, offset_in, path_out,
                                     fi_out, offset_out, length, flags, copied);
  }
  if (int rc = Fails("copy_file_range", {path_in, path_out})) return rc;
  *copied = length + spec_.overclaim();
  return 0;
}

int ScriptedFs::Lseek(const Context& ctx, const std::string& path, off_t offset,
                      int whence, const FileInfo& fi, off_t* result) {
  if (Unimplemented("lseek")) {
    return FileSystem::Lseek(ctx, path, offset, whence, fi, result);
  }
  if (int rc = Fails("lseek", {path})) return rc;
  *result = offset;
  return 0;
}

int ScriptedFs::Ioctl(const Context& ctx, const std::string& path,
                      uint32_t cmd, uint64_t arg, const FileInfo* fi,
                      uint32_t flags, const std::string& in, size_t out_size,
                      std::string* out, int* result) {
  if (Unimplemented("ioctl")) {
    return FileSystem::Ioctl(ctx, path, cmd, arg, fi, flags, in, out_size,
                             out, result);
  }
  if (int rc = Fails("ioctl", {path})) return rc;
  // The size and direction come from the command number, as a filesystem
  // serving a real command knows them.
  const size_t size = (cmd >> 16) & 0x3fff;
  const bool passes_back = (cmd >> 30) & 2;
  if (passes_back) {
    std::string data = in;
    data.resize(size, '\0');
    for (char& c : data) c = static_cast<char>(c + 1);
    data.append(spec_.overclaim(), '!');
    *out = std::move(data);
  }
  *result = static_cast<int>(arg % 256);
  return 0;
}

}  // namespace fusehost
