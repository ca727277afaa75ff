#include "daemon/passthrough/backing_files.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "common/log_line.h"
#include "daemon/passthrough/fuse_passthrough_abi.h"

namespace fusehost {

BackingFiles::BackingFiles(Options options) : options_(std::move(options)) {}

BackingFiles::~BackingFiles() { CloseAll(); }

void BackingFiles::CloseAll() {
  disabled_.store(true);
  absl::MutexLock lock(&mu_);
  for (auto& [node, n] : nodes_) {
    if (n.backing_id > 0) CloseId(node, n);
  }
}

bool BackingFiles::available() const {
  return !disabled_.load() &&
         (!options_.kernel_enabled || options_.kernel_enabled());
}

int32_t BackingFiles::Register(int fd) {
  int id;
  if (options_.register_backing) {
    id = options_.register_backing(fd);
  } else {
    fuse_abi::BackingMap map = {};
    map.fd = fd;
    id = ioctl(options_.fuse_fd, fuse_abi::kDevIocBackingOpen, &map);
    if (id < 0) id = -errno;
  }
  if (id > 0) return id;
  // Refusals that will not change for this connection: stop asking.
  if (id == -EPERM || id == -ENOTTY || id == -EOPNOTSUPP || id == -EINVAL) {
    if (!disabled_.exchange(true)) {
      Log("%s: the kernel refuses backing files (%s): passthrough off, "
          "file data is forwarded",
          options_.log_name.c_str(), std::strerror(-id));
    }
  }
  return 0;
}

void BackingFiles::Unregister(int32_t id) {
  if (options_.unregister_backing) {
    options_.unregister_backing(id);
    return;
  }
  uint32_t arg = static_cast<uint32_t>(id);
  ioctl(options_.fuse_fd, fuse_abi::kDevIocBackingClose, &arg);
}

void BackingFiles::CloseId(uint64_t node, Node& n) {
  // Told first: a daemon that dies between the two must not take a closed
  // id for a live one (a leaked id costs nothing but the kernel's memory).
  if (options_.on_change) options_.on_change(node, 0);
  Unregister(n.backing_id);
  n.backing_id = 0;
}

BackingFiles::Decision BackingFiles::Open(uint64_t fh, uint64_t node,
                                          UniqueFd fd, const struct stat& st,
                                          bool writable, bool direct_io,
                                          bool daemons_own) {
  Decision d;
  absl::MutexLock lock(&mu_);
  Node& n = nodes_[node];
  File f{node, Kind::kCached, writable};
  if (n.backing_id > 0 && n.file_unknown && fd.valid()) {
    n.dev = st.st_dev;
    n.ino = st.st_ino;
    n.file_unknown = false;
  }
  if (fd.valid() && available() && n.cached == 0) {
    if (n.backing_id > 0) {
      // Same file as the node's other passthrough opens: share the id.
      if (n.dev != st.st_dev || n.ino != st.st_ino) {
        d.needs_new_node = true;
        return d;
      }
      d.backing_id = n.backing_id;
    } else if (int32_t id = Register(fd.get()); id > 0) {
      n.backing_id = id;
      n.dev = st.st_dev;
      n.ino = st.st_ino;
      d.backing_id = id;
      if (options_.on_change) options_.on_change(node, id);
    }
  }
  if (d.backing_id > 0) {
    f.kind = Kind::kPassthrough;
    passed_through_.fetch_add(1);
    ++n.passthrough;
    if (writable) ++n.writable;
    if (daemons_own) {
      f.own = true;
      ++n.own;
    }
    if ((writable || daemons_own) && !n.file.valid()) n.file = std::move(fd);
  } else if (n.passthrough > 0) {
    d.needs_new_node = true;
    return d;
  } else if (direct_io) {
    f.kind = Kind::kDirect;
    d.direct_io = true;
  } else {
    ++n.cached;
  }
  files_[fh] = f;
  return d;
}

void BackingFiles::Inherit(uint64_t node, int32_t backing_id,
                           const std::vector<InheritedOpen>& opens) {
  absl::MutexLock lock(&mu_);
  Node& n = nodes_[node];
  if (backing_id > 0 && n.backing_id == 0) {
    n.backing_id = backing_id;
    n.file_unknown = true;
  }
  for (const InheritedOpen& o : opens) {
    if (files_.contains(o.fh)) continue;
    File f{node, Kind::kCached, o.writable};
    if (n.backing_id > 0) {
      f.kind = Kind::kPassthrough;
      ++n.passthrough;
      // Its descriptor is not known here; the next writer's is kept while
      // this one lasts too.
      n.writable += o.writable;
    } else {
      ++n.cached;
    }
    files_[o.fh] = f;
  }
  if (n.backing_id > 0 && n.passthrough == 0) CloseId(node, n);
  if (n.passthrough == 0 && n.cached == 0 && n.backing_id == 0) {
    nodes_.erase(node);
  }
}

void BackingFiles::Drop(const File& f) {
  auto it = nodes_.find(f.node);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  switch (f.kind) {
    case Kind::kPassthrough:
      --n.passthrough;
      if (f.writable) --n.writable;
      if (f.own) --n.own;
      if (n.writable == 0 && n.own == 0) n.file.reset();
      if (n.passthrough == 0 && n.backing_id > 0) CloseId(f.node, n);
      break;
    case Kind::kCached:
      --n.cached;
      break;
    case Kind::kDirect:
      break;
  }
  if (n.passthrough == 0 && n.cached == 0 && n.backing_id == 0) {
    nodes_.erase(it);
  }
}

void BackingFiles::NotPassedThrough(uint64_t fh) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(fh);
  if (it == files_.end() || it->second.kind != Kind::kPassthrough) return;
  Drop(it->second);
  it->second.kind = Kind::kDirect;
  passed_through_.fetch_sub(1);
}

void BackingFiles::Release(uint64_t fh) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(fh);
  if (it == files_.end()) return;
  Drop(it->second);
  files_.erase(it);
}

bool BackingFiles::WritablePassthrough(uint64_t node) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.writable > 0;
}

bool BackingFiles::StatWritten(uint64_t node, struct stat* st) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.writable > 0 &&
         it->second.file.valid() && fstat(it->second.file.get(), st) == 0;
}

bool BackingFiles::StatOpen(uint64_t node, struct stat* st) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.own > 0 && it->second.file.valid() &&
         fstat(it->second.file.get(), st) == 0;
}

size_t BackingFiles::registered() const {
  absl::MutexLock lock(&mu_);
  size_t count = 0;
  for (const auto& [node, n] : nodes_) count += n.backing_id > 0;
  return count;
}

}  // namespace fusehost
