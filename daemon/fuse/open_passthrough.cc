// Opens answered with a backend's descriptor (passthrough): the kernel then
// reads and writes the backend's file itself and this daemon never sees
// those requests. See daemon/passthrough for the hand-over and the checks.

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "common/log_line.h"
#include "common/paths.h"
#include "daemon/fuse/request_handlers.h"
#include "daemon/passthrough/descriptor_check.h"

namespace fusehost {
namespace {

// Refused descriptors are logged, but not without end.
constexpr uint64_t kRefusalsLogged = 20;

}  // namespace

uint64_t RequestHandlers::PassthroughTag() {
  if (options_.inbox == nullptr || options_.backing == nullptr ||
      !options_.backing->available()) {
    return 0;
  }
  return next_passthrough_tag_.fetch_add(1);
}

bool RequestHandlers::PlanPassthrough(uint64_t node, uint64_t tag, int flags,
                                      bool offered, KernelOpenReply* open) {
  BackingFiles* backing = options_.backing;
  if (backing == nullptr) return true;
  UniqueFd fd;
  struct stat st = {};
  if (offered && tag != 0) {
    fd = options_.inbox->Take(tag);
    absl::Status checked =
        fd.valid() ? CheckBackingDescriptor(fd.get(), flags, &st)
                   : absl::NotFoundError("no descriptor arrived for the open");
    if (!checked.ok()) {
      fd.reset();  // closed: never registered
      uint64_t n = backing->refused();
      backing->CountRefused();
      if (n < kRefusalsLogged) {
        Log("passthrough refused for node %d: %s; forwarding instead",
            static_cast<long long>(node), std::string(checked.message()));
      }
    }
  }
  bool writable = (flags & O_ACCMODE) != O_RDONLY;
  BackingFiles::Decision d = backing->Open(open->fh, node, std::move(fd), st,
                                           writable, open->direct_io);
  if (d.needs_new_node) return false;
  open->backing_id = d.backing_id;
  if (d.direct_io) open->direct_io = true;
  if (d.backing_id > 0) {
    // The kernel reads the backing file itself: contents kept from the
    // open would never be asked for.
    open_contents_.ForgetHandle(open->fh);
  }
  return true;
}

void RequestHandlers::AnswerReplaced(const Request& req, uint64_t node,
                                     const std::string& path, uint64_t fh,
                                     int flags) {
  ReleaseOrphan(path, fh, flags);
  const uint64_t parent = options_.nodes->Find(ParentPath(path));
  const std::string name(BaseName(path));
  // Unless the name went to another node meanwhile (a rename).
  if (parent != 0 && options_.nodes->Find(path) == node) {
    options_.nodes->Remove(parent, name);
    options_.invalidator->EntryChanged(parent, name);
  }
  req->ReplyError(ESTALE);
}

void RequestHandlers::AfterOpenReply(uint64_t fh, bool sent, bool refused) {
  BackingFiles* backing = options_.backing;
  if (backing == nullptr) return;
  if (!sent) {
    backing->Release(fh);
  } else if (refused) {
    backing->NotPassedThrough(fh);
  }
}

bool RequestHandlers::WritesBypassDaemon(uint64_t node) const {
  return options_.backing != nullptr &&
         options_.backing->WritablePassthrough(node);
}

bool RequestHandlers::LearnWrittenAround(uint64_t node,
                                         const std::string& path) {
  if (path.empty()) return false;
  struct stat st;
  const bool known = options_.backing->StatWritten(node, &st);
  options_.coherence->WrittenAround(path, known ? &st : nullptr);
  return known;
}

void RequestHandlers::AfterPassthroughWrites(uint64_t node) {
  if (!WritesBypassDaemon(node)) return;
  // The kernel dropped the node's own attributes with each write. The
  // daemon's cache of its path takes the size and times the writes left
  // from the backing file, held while such opens last (without it they are
  // dropped): what else it knows of the file stays, so that a change after
  // the close (rm after tar x, answered early with write_behind) needs no
  // round trip first. The other names of the file (hard links, each a node
  // of its own) are as stale as a forwarded write would have left them.
  if (std::optional<std::string> p = options_.nodes->PathOf(node)) {
    if (!p->empty()) {
      struct stat st;
      const bool known = options_.backing->StatWritten(node, &st);
      options_.coherence->WritesAroundDone(*p, known ? &st : nullptr);
    }
  }
  std::vector<uint64_t> siblings = StaleSiblings(node);
  if (!siblings.empty()) options_.invalidator->DropAttrsNow(siblings);
}

}  // namespace fusehost
