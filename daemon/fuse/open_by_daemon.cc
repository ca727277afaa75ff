// Read-only opens the daemon answers itself: a loopback backend handed over
// its root directory (InitReply.root_directory), so the daemon opens the
// file beneath it, as the user the backend would have opened it as, and
// gives it to the kernel as the open's backing file. The open costs no
// message to the backend; the backend opens the file only if an operation
// ever needs its handle (HandleMap::IssueUnopened).

#include <fcntl.h>

#include "daemon/fuse/request_handlers.h"
#include "daemon/passthrough/caller_identity.h"

namespace fusehost {

bool RequestHandlers::OpenHere(const Request& req, uint64_t node, int flags,
                               const std::string& path) {
  RootDirectory* root = options_.root;
  BackingFiles* backing = options_.backing;
  if (root == nullptr || options_.handles == nullptr || backing == nullptr ||
      !backing->available() || !PlainReadOnly(flags)) {
    return false;
  }
  // A change answered early (write_behind) may not have reached the
  // backend's file yet: the open waits behind it.
  if (options_.queued_at && options_.queued_at(path)) return false;
  v1::Caller caller;
  req->FillCaller(&caller);
  const UserIdentity who = UserIdentityOf(caller);
  struct stat st;
  // A regular file opened read-only: what CheckBackingDescriptor asks of a
  // backend's descriptor holds by construction.
  UniqueFd fd = root->OpenForReading(path, who, &st);
  if (!fd.valid()) return false;
  KernelOpenReply open;
  // The backend said its read-only open does nothing but open, so a flush
  // has nothing to write back; it would only release POSIX locks, and those
  // are the kernel's unless the backend keeps them.
  open.noflush = !options_.backend_posix_locks;
  open.fh = options_.handles->IssueUnopened(flags, caller);
  BackingFiles::Decision d =
      backing->Open(open.fh, node, std::move(fd), st, /*writable=*/false,
                    /*direct_io=*/false, /*daemons_own=*/true);
  if (d.backing_id <= 0) {
    // The node is open through the page cache, or the kernel refused the
    // file: the backend's open decides.
    backing->Release(open.fh);
    ReleaseOrphan(path, open.fh, flags);
    return false;
  }
  open.backing_id = d.backing_id;
  options_.nodes->AddOpenHandle(node, open.fh);
  bool refused = false;
  open.backing_refused = &refused;
  bool sent = req->ReplyOpen(open);
  AfterOpenReply(open.fh, sent, refused);
  if (!sent) {
    options_.nodes->RemoveOpenHandle(node, open.fh);
    ReleaseOrphan(path, open.fh, flags);
  }
  return true;
}

}  // namespace fusehost
