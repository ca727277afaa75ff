// The backend's end of passthrough: hands fuse-hostd the descriptors of
// files the FileSystem opened (FileInfo::passthrough_fd), over the Unix
// socket the daemon named in InitRequest.passthrough_socket, one socket per
// mount. Each message is the open's 8-byte tag with the descriptor attached
// (SCM_RIGHTS); it is sent before the open's reply, so the daemon finds it
// queued when the reply arrives. The FileSystem keeps its descriptor: the
// daemon receives a duplicate.
//
// Sends never block: a full or broken socket means no passthrough for that
// open (the daemon forwards it).
//
// Thread-safe.

#ifndef FUSE_HOSTD_CLIENT_DESCRIPTOR_SENDER_H_
#define FUSE_HOSTD_CLIENT_DESCRIPTOR_SENDER_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

class DescriptorSender {
 public:
  DescriptorSender() = default;
  ~DescriptorSender();
  DescriptorSender(const DescriptorSender&) = delete;
  DescriptorSender& operator=(const DescriptorSender&) = delete;

  // Connects mount `mount_id` to the daemon's socket at `path` (replacing
  // an earlier connection of that mount). False if it cannot.
  bool Connect(uint64_t mount_id, const std::string& path);
  // Sends `fd` for the open tagged `tag`; true once the daemon has it
  // queued.
  bool Send(uint64_t mount_id, uint64_t tag, int fd) const;
  // The mount is gone.
  void Forget(uint64_t mount_id);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, int> sockets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_DESCRIPTOR_SENDER_H_
