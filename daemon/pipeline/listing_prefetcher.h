// Fetches the listings of a directory's subdirectories ahead of the caller
// that lists it, so that a walk (find, ls -R, du) over a backend far away
// pays a few round trips for a whole level instead of two per directory.
//
// When a directory's listing is handed out (Listed), each subdirectory in
// it whose listing the cache lacks is opened, read and released at the
// backend (only read, for a backend that lists by path), as the caller who
// listed its parent, up to `max_in_flight` at a
// time; the listings land in the daemon's cache like any other. Only one
// level ahead: a prefetched listing fetches nothing itself, but when the
// walker opens that directory and gets the listing, the next level starts.
// An opendir of a directory whose prefetch is under way waits for it
// (AwaitInFlight) instead of asking the backend a second time.
//
// Bounded: at most `per_listing` subdirectories of one listing at first,
// at most kMaxQueued directories waiting, none while the cache is three
// quarters full. The subdirectories of a wider listing wait in its tail
// (at most kMaxTail names in all): each time the walker opens one of the
// listing's subdirectories (Visited), the next in the tail is fetched, so
// that the window stays `per_listing` ahead of the walker across a
// directory of thousands. Stop() drops what is queued; what is in flight
// finishes.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_LISTING_PREFETCHER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_LISTING_PREFETCHER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/listing.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class ListingPrefetcher {
 public:
  struct Options {
    // Opendir and releasedir go here (below the cache).
    OpTransport* next = nullptr;
    // Readdir goes here: the caching layer's readdir, which caches a whole
    // listing (and must not prefetch from it in turn).
    std::function<void(v1::Op, OpTransport::Done)> send_readdir;
    MetadataCache* cache = nullptr;
    size_t per_listing = 64;
    size_t max_in_flight = 16;
    // The backend lists directories by path (InitReply.lists_by_path): a
    // listing is then fetched with its readdir alone. Null: it does not.
    const std::atomic<bool>* lists_by_path = nullptr;
  };
  static constexpr size_t kMaxQueued = 4096;
  static constexpr size_t kMaxTail = 65536;

  explicit ListingPrefetcher(Options options);

  // Directory `dir`'s listing was handed to `caller`, who gets its
  // subdirectories in the order of `subdirs` (their names): they are
  // fetched in that order, the one a walker visits them in. (A first
  // listing reaches the kernel in the backend's order, tmpfs's newest
  // first; fetched by name instead, the walker's first directory would
  // come last.)
  void Listed(const std::string& dir, const std::vector<std::string>& subdirs,
              const v1::Caller& caller);
  // The same for a listing handed out from the cache, in its name order.
  void Listed(const std::string& dir, const Listing& listing,
              const v1::Caller& caller);

  // The walker opened directory `path`: the next subdirectory waiting in
  // its parent's tail (see above) is fetched.
  void Visited(const std::string& path);

  // If `path`'s listing is being prefetched, runs `then` once that is over
  // (whatever came of it) and returns true; otherwise false.
  bool AwaitInFlight(const std::string& path, std::function<void()> then);

  // Nothing more is started.
  void Stop();

  // Listings fetched ahead so far.
  uint64_t fetched() const { return fetched_.load(); }

 private:
  struct Job {
    std::string path;
    v1::Caller caller;
  };
  // Starts queued jobs while there is room.
  void Pump();
  bool CacheHasRoom() const;
  // Adds `dir`/`name` to `wanted` unless its listing is cached; false,
  // adding nothing, once `wanted` holds per_listing.
  bool Want(const std::string& dir, absl::string_view name,
            std::vector<std::string>* wanted) const;
  // Subdirectories of `dir` left for later (see above), in the walker's
  // order; replaces what was left of an earlier listing of it.
  void KeepTail(const std::string& dir, std::deque<std::string> names,
                const v1::Caller& caller);
  struct Tail {
    std::deque<std::string> names;
    v1::Caller caller;
  };
  // Queues `wanted` as `caller` and starts what there is room for.
  void Enqueue(std::vector<std::string> wanted, const v1::Caller& caller);
  void Run(Job job);
  void Finished(const std::string& path);
  // Counts a listing fetched.
  void Counted(const v1::OpResult& listed);

  const Options options_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  // Queued or running, with who waits for each.
  absl::flat_hash_map<std::string, std::vector<std::function<void()>>>
      pending_ ABSL_GUARDED_BY(mu_);
  // Directory -> its subdirectories not fetched yet.
  absl::flat_hash_map<std::string, Tail> tails_ ABSL_GUARDED_BY(mu_);
  size_t tail_names_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> fetched_{0};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_LISTING_PREFETCHER_H_
