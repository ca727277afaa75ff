// The backing files of a mount's passthrough opens: registering a
// backend's descriptor with the kernel (FUSE_DEV_IOC_BACKING_OPEN), which
// backing id answers which open, and closing ids when the last open using
// one is released.
//
// The kernel's rules this follows (fs/fuse/iomode.c): all passthrough opens
// of one inode must name the same backing file, and an inode is either in
// passthrough mode or has cached opens, never both; an open reply breaking
// this fails the caller's open(2) with EIO. So per node:
//   - the first passthrough open registers the descriptor; later ones reuse
//     that id if their descriptor is the same file (device and inode);
//   - no passthrough while the node has cached opens;
//   - while it has passthrough opens, an open that cannot share their id
//     cannot be answered on the node at all (Decision::needs_new_node): its
//     descriptor is another file (the backend's file was replaced under the
//     name) or none the kernel may take (none sent, or refused); the kernel
//     refuses even direct I/O beside them;
//   - other opens the backend asked direct I/O for get it.
// The daemon learns of a release only after the kernel has dropped the
// file, so its counts lag behind the kernel's in the safe direction.
//
// After a restart or a hand-over (daemon/survival) the kernel still holds
// the opens the previous daemon answered, and the backing ids it
// registered (on_change tells the journal of each). Such opens are
// inherited: with the node's id, which new opens share and the last
// release closes; or, where the node had none, as cached opens.
//
// The first registration the kernel refuses (no CAP_SYS_ADMIN, a kernel
// without passthrough) turns passthrough off for the mount, with one log
// line.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_BACKING_FILES_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_BACKING_FILES_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"

namespace fusehost {

class BackingFiles {
 public:
  struct Options {
    int fuse_fd = -1;  // the mount's /dev/fuse connection (not owned)
    // Whether the kernel took passthrough at INIT (ReplyPatcher::enabled).
    std::function<bool()> kernel_enabled;
    // Registers `fd` with the kernel: the backing id, or -errno. Empty:
    // the FUSE_DEV_IOC_BACKING_OPEN ioctl on fuse_fd. Tests swap it.
    std::function<int(int fd)> register_backing;
    std::function<void(int32_t id)> unregister_backing;
    // Told, under the object's lock and so in order, of each id registered
    // for a node and of each closed (id 0). May be empty.
    std::function<void(uint64_t node, int32_t id)> on_change;
    std::string log_name;
  };

  explicit BackingFiles(Options options);
  ~BackingFiles();  // CloseAll()

  // Closes every backing id still registered and passes nothing through
  // from now on (the session is ending).
  void CloseAll();

  // Opens may be passed through (the kernel agreed; nothing failed yet).
  bool available() const;

  struct Decision {
    int32_t backing_id = 0;  // > 0: answer with passthrough
    bool direct_io = false;  // answer with direct I/O
    // The node has passthrough opens and this open cannot share their
    // backing file: the kernel would refuse any answer on this node.
    // Nothing is recorded.
    bool needs_new_node = false;
  };
  // Open `fh` of `node` is about to be answered. `fd`: the backend's
  // descriptor, checked (CheckBackingDescriptor), with its fstat `st`, or
  // invalid. `direct_io`: what the backend asked for. `daemons_own`: the
  // daemon opened the file itself (no backend handle stands behind the
  // open). The descriptor is closed before this returns (the kernel keeps
  // what it registered), unless the open is passed through and is writable
  // or the daemon's own, and the node has no descriptor kept yet: then it is
  // kept while such opens of the node last, for StatWritten and StatOpen.
  Decision Open(uint64_t fh, uint64_t node, UniqueFd fd, const struct stat& st,
                bool writable, bool direct_io, bool daemons_own = false);
  // Opens of `node` the kernel holds from a previous daemon, which had
  // registered `backing_id` for it (0: none; they are then taken as cached
  // opens). An id no open uses any more is closed.
  struct InheritedOpen {
    uint64_t fh = 0;
    bool writable = false;
  };
  void Inherit(uint64_t node, int32_t backing_id,
               const std::vector<InheritedOpen>& opens);
  // The reply for `fh` went out without the backing id (as direct I/O).
  void NotPassedThrough(uint64_t fh);
  // `fh` was released (or its open never reached the kernel).
  void Release(uint64_t fh);
  // Some passthrough open of `node` may write: the daemon does not see its
  // writes.
  bool WritablePassthrough(uint64_t node) const;
  // fstat of the backing file of `node`'s writable passthrough opens: its
  // size and times, which writes the daemon does not see changed. False if
  // there is none (or fstat failed).
  bool StatWritten(uint64_t node, struct stat* st) const;
  // fstat of the file the daemon's own passthrough opens of `node` read,
  // which is the node's file: what a stat of the node must show, which its
  // name may no longer lead to (the file was replaced behind the daemon).
  // False if there is no such open (or fstat failed).
  bool StatOpen(uint64_t node, struct stat* st) const;

  // A descriptor the backend sent was refused (wrong type or mode).
  void CountRefused() { refused_.fetch_add(1); }

  uint64_t passed_through() const { return passed_through_.load(); }
  uint64_t refused() const { return refused_.load(); }
  size_t registered() const;  // backing ids held now

 private:
  enum class Kind { kPassthrough, kCached, kDirect };
  struct File {
    uint64_t node;
    Kind kind;
    bool writable;
    bool own = false;  // counted in Node::own
  };
  struct Node {
    int32_t backing_id = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    int passthrough = 0;  // opens using backing_id
    int writable = 0;     // of those, opened for writing
    int own = 0;          // of those, the daemon's own (never writable)
    int cached = 0;       // opens through the page cache
    // The file backing_id stands for is not known (inherited): the first
    // descriptor an open brings is taken as it.
    bool file_unknown = false;
    // The backing file, kept while there are writable or own opens.
    UniqueFd file;
  };

  int32_t Register(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(int32_t id);
  // Closes `n`'s id (of node `node`) and says so.
  void CloseId(uint64_t node, Node& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets `f`'s part in its node; closes the id with the last opener.
  void Drop(const File& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  std::atomic<bool> disabled_{false};
  std::atomic<uint64_t> passed_through_{0};
  std::atomic<uint64_t> refused_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Node> nodes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, File> files_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_BACKING_FILES_H_
