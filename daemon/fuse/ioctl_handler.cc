// ioctl: the kernel's restricted ioctls of open files and directories,
// forwarded with the data their command numbers describe (IoctlRequest in
// filesystem.proto).

#include <sys/ioctl.h>

#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

#include "daemon/fuse/request_handlers.h"

namespace fusehost {
namespace {

constexpr uint32_t kTerminalIoctlType = 'T';

}  // namespace

void RequestHandlers::Ioctl(Request req, uint64_t node, uint64_t fh,
                            const KernelIoctl& io) {
  // Only CUSE devices get unrestricted ioctls: what their argument points
  // to is unknown, so nothing of it could be carried.
  // A backend without ioctl knows no command (ENOTTY is ioctl(2)'s answer
  // for that): programs ask every file they open whether it is a
  // terminal, which costs no round trip then.
  if (io.unrestricted || !options_.backend_ioctl) {
    req->ReplyError(ENOTTY);
    return;
  }
  // Nor is a file or directory of a mount a terminal, whatever its backend
  // says: the terminal commands (type 'T': TCGETS, TIOCGWINSZ, ...) are
  // answered here, so that isatty(), which Python's open() and many tools
  // call on every file they open, costs no round trip and does not drop the
  // file's cached contents (below) on a backend that implements ioctl.
  if (_IOC_TYPE(io.cmd) == kTerminalIoctlType) {
    req->ReplyError(ENOTTY);
    return;
  }
  // The kernel never sends more than a command number can encode; a
  // request that claims more is not forwarded.
  if (io.in.size() > v1::LIMIT_MAX_IOCTL_SIZE ||
      io.out_size > v1::LIMIT_MAX_IOCTL_SIZE) {
    req->ReplyError(EINVAL);
    return;
  }
  v1::Op op = NewOp(*req);
  v1::IoctlRequest* r = op.mutable_ioctl();
  r->set_path(HandlePath(node));
  if (io.directory) {
    std::optional<uint64_t> backend_fh = DirBackendHandle(fh);
    if (backend_fh) r->set_fh(*backend_fh);
  } else {
    r->set_fh(fh);
    // A command may change the file: contents an open kept are stale.
    ForgetContents(node);
  }
  r->set_cmd(io.cmd);
  r->set_arg(io.arg);
  r->set_flags(io.flags);
  r->set_in_data(io.in.data(), io.in.size());
  r->set_out_size(io.out_size);
  Send(std::move(op), [this, req, node](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    // What a command changed is not known here: the kernel asks for the
    // attributes of the file (and of its other names) again.
    std::vector<uint64_t> stale = StaleSiblings(node);
    stale.push_back(node);
    const v1::IoctlReply& reply = res.ioctl();
    AfterSiblingsDropped(stale, [req, &reply] {
      req->ReplyIoctl(reply.result(), reply.out_data());
    });
  });
}

}  // namespace fusehost
