#include "daemon/fuse/open_contents.h"

#include <utility>

namespace fusehost {

void OpenContents::Keep(uint64_t fh, uint64_t ino, std::string data) {
  absl::MutexLock lock(&mu_);
  if (bytes_ + data.size() > max_bytes_) return;
  auto [it, inserted] = by_handle_.try_emplace(fh, Kept{ino, std::string()});
  if (!inserted) bytes_ -= it->second.data.size();  // a reused handle number
  bytes_ += data.size();
  it->second = Kept{ino, std::move(data)};
}

bool OpenContents::TakeFirstRead(uint64_t fh, off_t off, size_t size,
                                 std::string* out) {
  absl::MutexLock lock(&mu_);
  auto it = by_handle_.find(fh);
  if (it == by_handle_.end()) return false;
  std::string data = std::move(it->second.data);
  bytes_ -= data.size();
  by_handle_.erase(it);
  // Serve-once either way: a first read elsewhere means a reader that
  // seeks, whose later reads should see the file as it is then.
  if (off != 0) return false;
  if (data.size() > size) data.resize(size);
  *out = std::move(data);
  return true;
}

void OpenContents::ForgetHandle(uint64_t fh) {
  absl::MutexLock lock(&mu_);
  auto it = by_handle_.find(fh);
  if (it == by_handle_.end()) return;
  bytes_ -= it->second.data.size();
  by_handle_.erase(it);
}

void OpenContents::ForgetInode(uint64_t ino) {
  absl::MutexLock lock(&mu_);
  if (by_handle_.empty()) return;
  for (auto it = by_handle_.begin(); it != by_handle_.end();) {
    if (it->second.ino == ino) {
      bytes_ -= it->second.data.size();
      by_handle_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace fusehost
