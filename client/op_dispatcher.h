// Turns one wire operation (v1::Op) into a call on a FileSystem and its
// answer into a v1::OpResult.
//
// This is the one place where the SDK converts op results for the wire
// (DESIGN.md, "convert in exactly one place per edge"): every return value of
// the FileSystem goes through SanitizeErrno, and a failed result carries
// nothing but its id and errno, so half-filled replies never reach the daemon.
//
// Internal to the SDK; backends use filesystem.h only.

#ifndef FUSE_HOSTD_CLIENT_OP_DISPATCHER_H_
#define FUSE_HOSTD_CLIENT_OP_DISPATCHER_H_

#include <cstdint>

#include "client/descriptor_sender.h"
#include "client/filesystem.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// Thread use: Dispatch keeps no state of its own and may run concurrently on
// any number of threads; the FileSystem must be thread-safe (filesystem.h
// requires that of every backend) and must outlive the dispatcher.
class OpDispatcher {
 public:
  // `instance`: the backend instance this SDK answers as (nonzero; see
  // BackendService::instance()).
  // `sender` (may be null): where Open/Create's passthrough descriptors
  // go.
  OpDispatcher(FileSystem& fs, uint64_t instance,
               const DescriptorSender* sender = nullptr)
      : fs_(fs), instance_(instance), sender_(sender) {}

  // Runs `op`, which belongs to mount `mount_id`, and fills `result` (which
  // is cleared first). Never fails as a whole: every problem, including an
  // unknown or unset operation (ENOSYS), becomes result->posix_errno().
  //
  // An op carrying a handle issued by another backend instance
  // (op.handle_instance() neither 0 nor `instance`) answers EBADF without
  // reaching the FileSystem: that handle may name another file now.
  //
  // Operations that create a name or change attributes also call Getattr
  // afterwards and put the attributes into the reply, which saves the daemon
  // a round trip; if that Getattr fails, the attributes are left unset and
  // the operation still succeeds.
  void Dispatch(uint64_t mount_id, const v1::Op& op,
                v1::OpResult* result) const;

 private:
  // Returns the FileSystem's errno, not yet sanitized.
  int Run(const Context& ctx, const v1::Op& op, v1::OpResult* result) const;
  // After a successful op that added or removed a name: the attributes of
  // its directory (OpResult.parent_attr), when Getattr is cheap.
  void FillParentAttrs(const Context& ctx, const v1::Op& op,
                       v1::OpResult* result) const;

  FileSystem& fs_;
  const uint64_t instance_;
  const DescriptorSender* const sender_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_OP_DISPATCHER_H_
