#include "daemon/fuse/dirent_buffer.h"

#include <fuse3/fuse_lowlevel.h>

#include <utility>

namespace fusehost {

// libfuse's fuse_add_direntry{,_plus} ignore their request argument: they
// only format, so they are called with none.

DirentBuffer::DirentBuffer(size_t size, bool plus) : plus_(plus), buf_(size, '\0') {}

size_t DirentBuffer::EntrySize(const std::string& name) const {
  if (plus_) {
    struct fuse_entry_param param = {};
    return fuse_add_direntry_plus(nullptr, nullptr, 0, name.c_str(), &param, 0);
  }
  return fuse_add_direntry(nullptr, nullptr, 0, name.c_str(), nullptr, 0);
}

bool DirentBuffer::Fits(const std::string& name) const {
  return EntrySize(name) <= buf_.size() - used_;
}

bool DirentBuffer::Add(const std::string& name, const KernelEntry& entry,
                       off_t next) {
  size_t room = buf_.size() - used_;
  size_t len;
  if (plus_) {
    struct fuse_entry_param param = {};
    param.ino = entry.node;  // 0: the kernel only learns the name and type
    param.attr = entry.attr;
    param.attr_timeout = entry.attr_timeout;
    param.entry_timeout = entry.entry_timeout;
    len = fuse_add_direntry_plus(nullptr, &buf_[used_], room, name.c_str(),
                                 &param, next);
  } else {
    len = fuse_add_direntry(nullptr, &buf_[used_], room, name.c_str(),
                            &entry.attr, next);
  }
  if (len > room) return false;
  used_ += len;
  return true;
}

std::string DirentBuffer::Take() {
  buf_.resize(used_);
  used_ = 0;
  return std::move(buf_);
}

}  // namespace fusehost
