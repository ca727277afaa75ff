// Tells the loopback's own changes apart from outside ones in what inotify
// reports, and which mount made each of its own.
//
// inotify reports a change made through the mount like any other. Passed on,
// such a notice makes the daemon drop the attributes and listing entry it has
// just updated, and tell the kernel to forget them, so the next stat costs a
// backend round trip: untarring through the mount made about twice the
// round trips it needed.
//
// Only to the mount that made it, though: a backend serving several mounts
// must tell the others, whose caches the change made stale. So every record
// names the mount whose operation made the change (Context::mount_id), and
// ExplainedBy says which mount a notice is no news to; the loopback sends it
// to every other one (FileSystem::Notify*Except).
//
// After each change the loopback makes on the host it records the state that
// change left (lstat of each path it touched, or "absent"). A notice about a
// path is explained, and not passed on, when the path is still in exactly
// that state: any later change by someone else moves ctime (and usually
// mtime or size), so the notice for it still goes out. What this cannot see
// is an outside change that lands while a change of the loopback to the same
// path is under way (its syscall and the lstat after it: microseconds on a
// local filesystem; a change through another mount of the same backend is
// such an outside change to this one), or one that leaves every compared field
// equal on a filesystem with coarse timestamps (Linux before 6.13, or a
// filesystem without fine-grained ctime); such a change shows after the
// cache lifetime instead.
//
// Thread-safe: ops record from their threads, the watcher asks from its own.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_OWN_CHANGES_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_OWN_CHANGES_H_

#include <sys/stat.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fusehost {
namespace examples {

class OwnChanges {
 public:
  // `root_fd`: the backing directory (not owned). Records are kept for
  // `keep`, long enough for the watcher to see their events.
  explicit OwnChanges(int root_fd, absl::Duration keep = absl::Seconds(2));

  // Records the state of `path` ("/" or "/dir/name", as the mount names it)
  // after an operation of mount `mount_id` changed it, as seen by the
  // calling thread; a path the thread cannot stat is forgotten instead (its
  // notices go out to every mount).
  void Record(uint64_t mount_id, const std::string& path);
  // The mount a notice about `path` is no news to: the one whose operation
  // left `path` in the state the last record of it says, or whose change to
  // it is under way (its events may be seen before its record exists: a
  // directory gets events while files are being made in it one after
  // another). nullopt when no change of ours explains it, or when changes
  // of several mounts to it are under way: then every mount must hear.
  std::optional<uint64_t> ExplainedBy(const std::string& path);

  // One change of ours, by an operation of mount `mount_id`, from before
  // its syscalls to after them: marks its paths as changing, then Records
  // them.
  class Scope {
   public:
    Scope(OwnChanges& owner, uint64_t mount_id,
          std::initializer_list<std::string> paths);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    OwnChanges& owner_;
    const uint64_t mount_id_;
    const std::vector<std::string> paths_;
  };

 private:
  struct State {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    nlink_t nlink = 0;
    off_t size = 0;
    struct timespec mtime = {};
    struct timespec ctime = {};

    bool operator==(const State& other) const;
  };
  struct Entry {
    State state;
    absl::Time until;
    uint64_t mount_id = 0;  // whose operation left `state`
  };
  // How many changes of one mount to a path are under way.
  struct Changing {
    uint64_t mount_id;
    int count;
  };

  // The state of `path` now; false if it cannot be read.
  bool StateOf(const std::string& path, State* state) const;
  static State FromStat(const struct stat& st);

  const int root_fd_;
  const absl::Duration keep_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> records_ ABSL_GUARDED_BY(mu_);
  // Changes under way, by path: almost always of one mount.
  absl::flat_hash_map<std::string, absl::InlinedVector<Changing, 1>> changing_
      ABSL_GUARDED_BY(mu_);
  absl::Time next_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_OWN_CHANGES_H_
