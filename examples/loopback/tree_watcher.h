// Watches a host directory tree with inotify and reports what changed in it,
// in the terms of the daemon's caches (FileSystem::Notify*), so that changes
// made directly in a loopback's backing directory show through the mount
// within milliseconds instead of after cache timeouts.
//
// How events become changes (paths are the mount's: "/" is the root):
// * created, written, closed after writing, attributes changed: kChanged of
//   the file; a name that appeared also kChanged of its directory, whose
//   listing and mtime changed.
// * deleted, renamed away: kRemoved of the name and kChanged of its
//   directory; renamed to: kChanged of the new name and of its directory.
// * a directory renamed: also kSubtree of the old and the new name, since
//   every path below both changed.
// * the kernel's event queue overflowed: kSubtree("/"), and the tree is
//   walked again to repair the watches.
//
// Every directory needs its own inotify watch, added when the directory
// appears (and the directory is then read, because entries made before the
// watch existed produce no events: kChanged of each name found below the
// new directory, or kSubtree of it when there are many). Watches
// follow directory renames. When the kernel's limit
// (fs.inotify.max_user_watches) is reached, one line goes to stderr and the
// directories left unwatched are reported as kSubtree every
// Options::unwatched_period instead, which keeps the mount correct at the
// cost of caching less there.
//
// Events come in bursts (a write through the mount alone makes a few), so
// they are collected for Options::coalesce after the first one and reported
// together, each distinct change once. That also absorbs the events of
// changes made through the mount itself, which inotify reports like any
// other: their notices are harmless (the daemon drops a cache entry it would
// have updated anyway) but should not flood it.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_TREE_WATCHER_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_TREE_WATCHER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fusehost {
namespace examples {

// One thing the daemon should forget; see FileSystem::NotifyChanged,
// NotifyRemoved and NotifySubtreeChanged.
struct TreeChange {
  enum class Kind { kChanged, kRemoved, kSubtree };

  Kind kind;
  // Absolute within the tree: "/" for the root, "/dir/file" below it.
  std::string path;

  bool operator==(const TreeChange& other) const {
    return kind == other.kind && path == other.path;
  }
};

// Thread use: Start and the destructor run on the owner's thread; everything
// else happens on the watcher's own thread, which is the only one to touch
// the watch tables once Start has returned. The sink runs on that thread,
// one batch at a time. The thread blocks all signals, so it may be started
// before Serve() (which expects process signals to reach its sigwait).
class TreeWatcher {
 public:
  using Sink = std::function<void(const std::vector<TreeChange>&)>;

  struct Options {
    // The directory to watch. Opened once, in Start; "/proc/self/fd/N"
    // watches what descriptor N refers to.
    std::string root;
    // Receives each batch of changes (never empty), in the order they
    // happened, each change once per batch. Must not block for long: events
    // wait meanwhile, and the kernel's queue may overflow.
    Sink sink;
    // How long events are collected after the first of a burst.
    absl::Duration coalesce = absl::Milliseconds(5);
    // How often unwatched directories are reported as kSubtree.
    absl::Duration unwatched_period = absl::Milliseconds(100);
    // Watch at most this many directories (0: as many as the kernel allows).
    // Lets tests reach the limit without changing a system-wide setting.
    size_t max_watches = 0;
  };

  // Watches every directory below `options.root` and starts the watcher
  // thread. Changes made once Start has returned are reported. Fails when
  // the root cannot be opened or inotify is unavailable (e.g.
  // fs.inotify.max_user_instances reached).
  static absl::StatusOr<std::unique_ptr<TreeWatcher>> Start(Options options);

  // Stops the thread; a batch being collected is dropped.
  ~TreeWatcher();

  TreeWatcher(const TreeWatcher&) = delete;
  TreeWatcher& operator=(const TreeWatcher&) = delete;

 private:
  // A watched directory: where it is, as its parent's watch and its name.
  // The root has parent -1 and an empty name. Storing the parent rather
  // than the path makes renaming a directory one update, whatever lies
  // below it.
  struct Dir {
    int parent;
    std::string name;
  };
  // A name in a watched directory: (parent watch, name).
  using Entry = std::pair<int, std::string>;

  TreeWatcher(Options options, int root_fd, bool use_openat2, int inotify_fd,
              int stop_fd);

  void Run();
  // Reads and handles every event queued now.
  void ReadEvents();
  void HandleEvent(int wd, uint32_t mask, uint32_t cookie,
                   const std::string& name);

  // Adds watches for directory `name` in watched directory `parent` (or the
  // root, for parent -1) and everything below. With `report`, the names
  // found below it are reported (they appeared before the watches could see
  // them): kChanged of each, or, past kMaxNamesReported, kSubtree of the
  // directory.
  void WatchTree(int parent, const std::string& name, bool report);
  static constexpr size_t kMaxNamesReported = 256;
  // Adds one watch; -1 when the directory stays unwatched.
  int AddWatch(int dir_fd, int parent, const std::string& name);
  // Removes the watches of directory `wd` and everything below it.
  void UnwatchTree(int wd);
  // Drops every watch and watches the whole tree again (after an overflow,
  // when watches may point at the wrong places).
  void Rewatch();
  // Forgets a watch the kernel dropped (directory deleted, watch removed).
  void ForgetWatch(int wd);
  // Directories renamed away without a matching "renamed to" event left the
  // tree: stop watching them.
  void ResolveMoves();

  // The tree-relative path ("" for the root, "a/b") of watched directory
  // `wd`; false when it is no longer attached to the root.
  bool RelPath(int wd, std::string* rel) const;
  // One line on stderr the first time a directory stays unwatched.
  void LogLimitOnce(const std::string& rel);

  void Report(TreeChange::Kind kind, const std::string& rel);
  void ReportUnwatched();
  // Hands the collected batch to the sink, deduplicated.
  void Flush();

  const Options options_;
  const int root_fd_;
  const bool use_openat2_;
  const int inotify_fd_;
  // An eventfd the destructor writes to stop the thread.
  const int stop_fd_;

  absl::flat_hash_map<int, Dir> dirs_;
  absl::flat_hash_map<Entry, int> children_;
  // Directories left unwatched at the limit, whose parent is watched (their
  // own subdirectories are not even looked at).
  absl::flat_hash_set<Entry> unwatched_;
  bool limit_logged_ = false;
  // Directories renamed away, by rename cookie, until the matching "renamed
  // to" event (if any: none when they left the tree).
  absl::flat_hash_map<uint32_t, int> moving_;
  // Changes collected since the last flush, in order, with repeats.
  std::vector<TreeChange> batch_;
  // Where read(2) puts inotify events; allocated once.
  std::vector<char> event_buffer_;

  std::thread thread_;
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_TREE_WATCHER_H_
