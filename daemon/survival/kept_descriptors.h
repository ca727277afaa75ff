// What the keeper keeps, and its answers to the daemon's requests
// (keeper_protocol.h): the keeper's side of the protocol without its
// socket, so that it can be checked without a process to serve.
//
// Entries outlive the daemon that put them: the next daemon takes them with
// GET. Descriptors are closed when their entry is replaced or deleted, and
// all of them with the object.
//
// Thread use: one thread (the keeper's loop).

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_KEPT_DESCRIPTORS_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_KEPT_DESCRIPTORS_H_

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace fusehost {

class KeptDescriptors {
 public:
  struct Reply {
    std::string header;
    // The kept descriptors themselves, not copies: sending them gives the
    // daemon its own. Valid until the next Handle.
    std::vector<int> fds;
  };

  KeptDescriptors() = default;
  KeptDescriptors(const KeptDescriptors&) = delete;
  KeptDescriptors& operator=(const KeptDescriptors&) = delete;

  // Carries out one request, taking `fds` (closed unless kept), and
  // returns the replies to send, in order. Every request gets at least
  // one.
  std::vector<Reply> Handle(absl::string_view header,
                            std::vector<UniqueFd> fds);

  size_t size() const { return entries_.size(); }

  // Whether the daemon said READY since the last call (which clears it).
  bool TakeReady() { return std::exchange(ready_, false); }

 private:
  Reply Put(const std::string& key, std::vector<UniqueFd> fds);

  // Ordered: GET answers in key order.
  std::map<std::string, std::vector<UniqueFd>> entries_;
  bool ready_ = false;
};

// Receives one request on `socket` (waiting at most `wait`), handles it and
// sends the replies, each allowed `send_timeout`. A message the kernel cut
// short is answered with ERR. OK once a request was answered;
// DeadlineExceeded when none came; Unavailable once the peer closed its
// end; Aborted when it took no reply in time; other errors when the socket
// failed.
absl::Status ServeKeeperRequest(int socket, absl::Duration wait,
                                absl::Duration send_timeout,
                                KeptDescriptors* kept);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_KEPT_DESCRIPTORS_H_
