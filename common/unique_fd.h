// An owned file descriptor, closed on destruction.
//
// Thread use: like any value type (one owner).

#ifndef FUSE_HOSTD_COMMON_UNIQUE_FD_H_
#define FUSE_HOSTD_COMMON_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace fusehost {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_COMMON_UNIQUE_FD_H_
