// Reopens the files and directories a restarted backend forgot.
//
// When an op carries a handle of a backend instance that is gone, it is held
// here while the file is reopened by the path the op names it by, as the
// caller that opened it and with its flags (HandleMap::ReopenOp); the op is
// then sent again with the new handle. Ops on one handle that arrive while
// it is being reopened wait for the same reopen.
//
// A file without a name (unlinked while open) or whose path no longer exists
// cannot be reopened: its handle is lost and its ops fail with ESTALE (EIO
// for any other refusal), with a log line. A reopen that fails because the
// backend is away again (ENOTCONN, ETIMEDOUT, ECANCELED) fails the held ops
// with that errno and leaves the handle to be reopened by a later op.
//
// Thread-safe. Callbacks may run on gRPC's threads: nothing here blocks.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_REOPENER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_REOPENER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

// An op on its way through the channel, and how often it was sent back
// because its handle had gone stale (bounded, so that a backend that keeps
// changing its instance cannot keep the daemon reopening forever).
struct RoutedOp {
  PendingOp pending;
  int reroutes = 0;
};

class HandleReopener {
 public:
  // Sends one reopen op (never through the handle map's tokens) and reports
  // its result with the instance that answered it (0 when none did).
  using SendOpen = std::function<void(
      v1::Op op, std::function<void(const v1::OpResult&, uint64_t)> done)>;
  // Sends held ops again, once their handle was reopened.
  using Resend = std::function<void(std::vector<RoutedOp>)>;

  // How often one op may be held for a reopen.
  static constexpr int kMaxReroutes = 3;

  HandleReopener(HandleMap* handles, SendOpen send_open, Resend resend,
                 std::string log_name);

  // Holds `op` until `token` is reopened. `path` is how `op` names its file.
  void Hold(uint64_t token, const std::string& path, RoutedOp op);

 private:
  void Finished(uint64_t token, const std::string& path,
                const v1::OpResult& result, uint64_t instance);
  void FailAll(std::vector<RoutedOp> ops, int posix_errno);

  HandleMap* const handles_;
  const SendOpen send_open_;
  const Resend resend_;
  const std::string log_name_;
  absl::Mutex mu_;
  // Ops waiting, per token being reopened.
  absl::flat_hash_map<uint64_t, std::vector<RoutedOp>> held_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_HANDLE_REOPENER_H_
