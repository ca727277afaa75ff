// Small files' contents fetched ahead of their opens, for a backend whose opens
// are messages (any but one whose files the kernel reads through passthrough).
//
// `cat *`, `grep -r`, `tar c` and `cp -r` open the files of a directory one
// after the other, and each open is a round trip even when the file comes whole
// with it (OpenRequest.contents_up_to). When a read-only open of a small file
// has to go to the backend (Opened), a window of the small regular files listed
// after it in its directory's cached listing is opened at the backend with
// their contents, in one message sent beside it, and released again. The
// listing and the sizes it is chosen by may be past their lifetime (a backend
// with 1 s lifetimes, as fusepy's default, has them expire between `ls` and
// `cat`): they only say what to fetch; when the reader is half-way through the
// window, the next one goes out. The window takes every step-th name, the step
// being the reader's own from one open to the next in a directory (1 for
// `cat *`), so that a reader that skips is not sent what it skips. An open of
// one of them is then answered by the daemon (Take): the kernel's first read
// comes from the fetched contents, and the backend opens the file only if a
// later operation needs its handle (HandleMap::IssueUnopened). An open of a
// file whose fetch is under way waits for it (AwaitInFlight) instead of asking
// a second time.
//
// What a reader may see: fetched contents are served once, to the caller they
// were fetched as (uid, gid and groups: the backend checked that caller's
// access), and only while the daemon's cache shows, fresh, the attributes it
// held for the file before they were fetched (inode number, size, modification
// and change times). A change made through the daemon, or a backend's notice of
// one made behind it, drops or changes those attributes, so the contents are
// never older than the attributes the daemon shows for the file. Unused
// contents are not served after `max_age`, and the oldest go when `max_bytes`
// would be passed.
//
// Bounded: at most `files` files and `fetch_bytes` bytes (by their cached
// sizes) per window, none larger than `largest`, and at most `scan` names of
// the listing looked at.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_FUSE_CONTENTS_AHEAD_H_
#define FUSE_HOSTD_DAEMON_FUSE_CONTENTS_AHEAD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/fuse/open_contents.h"
#include "daemon/pipeline/cache_coherence.h"
#include "daemon/pipeline/listing.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class ContentsAhead {
 public:
  struct Options {
    // Files per window; 0: nothing is fetched ahead.
    size_t files = 0;
    size_t fetch_bytes = 1 << 20;
    size_t max_bytes = 16 << 20;
    uint32_t largest = kOpenContentsWanted;
    size_t scan = 1024;
    absl::Duration max_age = absl::Seconds(1);
    // Where a window's releases go, as ops that belong together
    // (OpTransport::SendAll); must outlive this object.
    std::function<void(std::vector<PendingOp>)> send_all;
    CacheCoherence* coherence = nullptr;
  };

  // A file's contents as fetched, and how the backend answered its open
  // (keep_cache, noflush; its handle was released).
  struct Fetched {
    std::string data;
    v1::OpenReply reply;
  };

  explicit ContentsAhead(Options options);
  ContentsAhead(const ContentsAhead&) = delete;
  ContentsAhead& operator=(const ContentsAhead&) = delete;

  bool enabled() const {
    return options_.files > 0 && options_.coherence != nullptr &&
           options_.send_all != nullptr;
  }

  // A read-only open of small file `path` as `caller`, `answered` with
  // contents fetched ahead or about to go to the backend. Learns the
  // reader's step through the directory; returns the opens of the files
  // listed after it (every step-th) when it goes to the backend, or of the
  // next window when the reader is half-way through the last one, for the
  // caller to send together (OpTransport::SendAll) once it answered or sent
  // this open. They count as on their way (AwaitInFlight) from now on, so a
  // reader quicker than the caller still waits for them.
  std::vector<PendingOp> Opened(const std::string& path,
                                const v1::Caller& caller, bool answered);

  // The contents fetched for `path` as `caller`, if they are still what the
  // cache shows: moved into *out and forgotten here. Contents fetched for
  // another caller are left for theirs.
  bool Take(const std::string& path, const v1::Caller& caller, Fetched* out);

  // If `path`'s contents are being fetched, runs `then` once that is over
  // (whatever came of it) and returns true; otherwise false.
  bool AwaitInFlight(const std::string& path, std::function<void()> then);

  // Files fetched ahead, and opens answered with them.
  uint64_t fetched() const { return fetched_.load(); }
  uint64_t served() const { return served_.load(); }
  // Bytes kept now.
  size_t kept_bytes() const;

 private:
  // The attributes a file had when its contents were asked for.
  struct Seen {
    uint64_t ino = 0;
    uint64_t size = 0;
    int64_t mtime_sec = 0;
    uint32_t mtime_nsec = 0;
    int64_t ctime_sec = 0;
    uint32_t ctime_nsec = 0;
    bool operator==(const Seen& o) const;
  };
  static Seen SeenOf(const v1::Attr& attr);
  // How many names after `from` `to` comes in `listing`, if within `cap`;
  // else 0.
  static size_t Distance(const Listing& listing, absl::string_view from,
                         absl::string_view to, size_t cap);
  static bool SameCaller(const v1::Caller& a, const v1::Caller& b);

  struct Kept {
    Fetched fetched;
    Seen seen;
    v1::Caller caller;
    absl::Time at;
    uint64_t seq = 0;  // its place in order_
  };
  struct InFlight {
    Seen seen;
    std::vector<std::function<void()>> waiting;
  };
  // One fetch's releases, sent together once every open is answered.
  struct Fetch;
  // A place in the walk through a directory's listing: just after `name`
  // of `dir` (before its first name if empty), or past its last one
  // (`at_end`), with the names passed since the last one taken.
  struct Cursor {
    std::string dir;
    std::string name;
    bool at_end = false;
    size_t counted = 0;
  };
  // A window goes on into at most this many directories after the first.
  static constexpr int kMaxDirectories = 8;
  // The directory after *dir in its parent's cached listing, and its cached
  // listing: false if there is none, or it is not listed yet.
  bool NextDirectory(std::string* dir,
                     std::shared_ptr<const Listing>* listing);

  // The open of `path` (asked as `caller`) came back.
  void Arrived(const std::string& path, const v1::Caller& caller,
               const v1::OpResult& result);
  // Makes room for `bytes`, dropping the oldest kept first; false if they
  // could never fit.
  bool RoomLocked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked(absl::flat_hash_map<std::string, Kept>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Kept> kept_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  // Kept paths, oldest first, with the seq they were kept with (a path
  // taken or kept again since is skipped).
  std::deque<std::pair<std::string, uint64_t>> order_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The reader: its last open (directory and name) and its step.
  std::string last_dir_ ABSL_GUARDED_BY(mu_);
  std::string last_name_ ABSL_GUARDED_BY(mu_);
  size_t stride_ ABSL_GUARDED_BY(mu_) = 1;
  // The window of files fetched ahead of it: where it ends (the next one
  // starts there), how many of its files the reader has not opened yet,
  // and its number (a window started since makes an older one's end moot).
  Cursor window_end_ ABSL_GUARDED_BY(mu_);
  size_t window_left_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t window_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> fetched_{0};
  std::atomic<uint64_t> served_{0};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_CONTENTS_AHEAD_H_
