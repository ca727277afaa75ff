// The loopback's open files and directories by handle.
//
// Handles are numbers this table gives out from a counter, never twice in a
// process, each mapped to the descriptor it owns. The descriptor number
// itself is no handle: the kernel gives a closed descriptor's number to the
// next open, so a handle that outlived its file (held by the kernel across
// a backend restart, or simply wrong) would reach whatever file got the
// number since, another user's included. A handle the table does not know
// is refused instead.
//
// Thread use: every method may be called concurrently from any thread. A
// descriptor stays open while any Ref to it lives, also after Remove, so an
// operation that found it keeps using that file even if the handle is
// released meanwhile, and never a descriptor reused for another file.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_HANDLE_TABLE_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_HANDLE_TABLE_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {

class HandleTable {
 public:
  // An open descriptor, shared by the table and the operations using it.
  using Ref = std::shared_ptr<const ScopedFd>;

  HandleTable() = default;
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;

  // Takes ownership of descriptor `fd` and returns its handle (never 0).
  uint64_t Add(int fd);
  // The descriptor of handle `fh`, or null when there is no such handle.
  Ref Find(uint64_t fh) const;
  // Forgets handle `fh`; its descriptor is closed when the last Ref to it
  // goes. Returns false when there was no such handle.
  bool Remove(uint64_t fh);

 private:
  mutable absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Ref> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_HANDLE_TABLE_H_
