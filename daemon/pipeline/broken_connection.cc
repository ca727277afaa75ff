#include "daemon/pipeline/broken_connection.h"

#include <fcntl.h>
#include <poll.h>

namespace fusehost {

bool PeerHungUp(const UniqueFd& peer) {
  if (!peer.valid()) return false;
  pollfd p{peer.get(), POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool Repeatable(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kGetattr:
    case v1::Op::kReadlink:
    case v1::Op::kRead:
    case v1::Op::kOpendir:
    case v1::Op::kReaddir:
    case v1::Op::kStatfs:
    case v1::Op::kGetxattr:
    case v1::Op::kListxattr:
    case v1::Op::kAccess:
    case v1::Op::kLseek:
    case v1::Op::kRelease:
    case v1::Op::kReleasedir:
    // Changes to a value given in full: a second run sets the same.
    case v1::Op::kChmod:
    case v1::Op::kChown:
    case v1::Op::kUtimens:
      return true;
    case v1::Op::kOpen:
      return (op.open().flags() & (O_CREAT | O_TRUNC)) == 0;
    default:
      return false;
  }
}

}  // namespace fusehost
