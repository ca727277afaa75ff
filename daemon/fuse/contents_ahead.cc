#include "daemon/fuse/contents_ahead.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "common/paths.h"

namespace fusehost {

struct ContentsAhead::Fetch {
  absl::Mutex mu;
  size_t waiting ABSL_GUARDED_BY(mu) = 0;
  std::vector<PendingOp> releases ABSL_GUARDED_BY(mu);
};

bool ContentsAhead::Seen::operator==(const Seen& o) const {
  return ino == o.ino && size == o.size && mtime_sec == o.mtime_sec &&
         mtime_nsec == o.mtime_nsec && ctime_sec == o.ctime_sec &&
         ctime_nsec == o.ctime_nsec;
}

ContentsAhead::Seen ContentsAhead::SeenOf(const v1::Attr& attr) {
  Seen s;
  s.ino = attr.ino();
  s.size = attr.size();
  s.mtime_sec = attr.mtime().sec();
  s.mtime_nsec = attr.mtime().nsec();
  s.ctime_sec = attr.ctime().sec();
  s.ctime_nsec = attr.ctime().nsec();
  return s;
}

bool ContentsAhead::SameCaller(const v1::Caller& a, const v1::Caller& b) {
  if (a.uid() != b.uid() || a.gid() != b.gid() ||
      a.groups_size() != b.groups_size()) {
    return false;
  }
  for (int i = 0; i < a.groups_size(); ++i) {
    if (a.groups(i) != b.groups(i)) return false;
  }
  return true;
}

ContentsAhead::ContentsAhead(Options options) : options_(std::move(options)) {}

size_t ContentsAhead::kept_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t ContentsAhead::Distance(const Listing& listing, absl::string_view from,
                               absl::string_view to, size_t cap) {
  size_t d = 1;
  for (auto it = listing.upper_bound(from); it != listing.end() && d <= cap;
       ++it, ++d) {
    if (it->first.view() == to) return d;
  }
  return 0;
}

bool ContentsAhead::NextDirectory(std::string* dir,
                                  std::shared_ptr<const Listing>* listing) {
  if (*dir == "/") return false;
  const std::string parent = ParentPath(*dir);
  std::shared_ptr<const Listing> siblings =
      options_.coherence->LastListing(parent);
  if (siblings == nullptr) return false;
  size_t looked = 0;
  for (auto it = siblings->upper_bound(BaseName(*dir));
       it != siblings->end() && looked < options_.scan; ++it, ++looked) {
    std::string next = ChildPathOf(parent, it->first.view());
    uint32_t type = it->second.type;
    if (type == 0) {
      // A listing of names only (fusepy's readdir): the attributes say.
      std::optional<v1::Attr> attr = options_.coherence->LastAttr(next);
      if (!attr) return false;  // nothing known of it
      type = attr->mode() & S_IFMT;
    }
    if (type != S_IFDIR) continue;
    std::shared_ptr<const Listing> l = options_.coherence->LastListing(next);
    // Not listed: nothing known of its files yet.
    if (l == nullptr) return false;
    *dir = std::move(next);
    *listing = std::move(l);
    return true;
  }
  return false;
}

std::vector<PendingOp> ContentsAhead::Opened(const std::string& path,
                                             const v1::Caller& caller,
                                             bool answered) {
  if (!enabled()) return {};
  const std::string dir = ParentPath(path);
  const absl::string_view name = BaseName(path);
  std::shared_ptr<const Listing> listing = options_.coherence->LastListing(dir);
  if (listing == nullptr) return {};
  Cursor c;
  size_t stride = 1;
  uint64_t window = 0;
  {
    absl::MutexLock lock(&mu_);
    // The reader's step, in names of the listing, from its last open in the
    // same directory: 1 for `cat *`, more for one that skips.
    if (dir == last_dir_) {
      size_t d = Distance(*listing, last_name_, name, options_.scan / 4);
      if (d > 0) stride_ = d;
    }
    last_dir_ = dir;
    last_name_ = std::string(name);
    stride = stride_;
    if (!answered) {
      // A file nothing was fetched for: a new window from here.
      c.dir = dir;
      c.name = last_name_;
      window_left_ = 0;
      window = ++window_;
    } else if (window_left_ > 0 && --window_left_ <= options_.files / 2 &&
               !window_end_.dir.empty()) {
      // Half the window read: the next one, before the reader gets there.
      c = window_end_;
      window = window_;
    } else {
      return {};
    }
  }
  if (c.dir != dir) {
    listing = options_.coherence->LastListing(c.dir);
    if (listing == nullptr) return {};
  }
  struct Wanted {
    std::string path;
    Seen seen;
    // Its attributes were past their lifetime: fetched anew beside it, so
    // that the reader's lookup finds them (and the contents can be served).
    bool refresh;
  };
  std::vector<Wanted> wanted;
  size_t bytes = 0;
  size_t scanned = 0;
  // Names after it, every `stride`-th: the order a shell's glob, ls, tar
  // and grep -r go in (the daemon hands out listings in this order), on
  // into the next directories of the parent (`cat */*`, a recursive
  // reader), counting on across them.
  for (int dirs = 0; dirs <= kMaxDirectories; ++dirs) {
    if (c.at_end) {
      std::string next = c.dir;
      if (dirs == kMaxDirectories || !NextDirectory(&next, &listing)) break;
      c.dir = std::move(next);
      c.name.clear();
      c.at_end = false;
    }
    bool full = false;
    for (auto it = listing->upper_bound(c.name); it != listing->end(); ++it) {
      if (wanted.size() >= options_.files || scanned >= options_.scan) {
        full = true;
        break;
      }
      ++scanned;
      const bool taken = c.counted + 1 >= stride;
      std::string child;
      std::optional<v1::Attr> attr;
      bool expired = false;
      if (taken && (it->second.type == 0 || it->second.type == S_IFREG)) {
        child = ChildPathOf(c.dir, it->first.view());
        attr = options_.coherence->LastAttr(child);
        expired = attr && attr->ttl_ms() == 0;
      }
      const bool small = attr && S_ISREG(attr->mode()) &&
                         attr->size() <= options_.largest;
      if (small && bytes + attr->size() > options_.fetch_bytes) {
        full = true;  // left for the next window
        break;
      }
      c.name = std::string(it->first.view());
      c.counted = taken ? 0 : c.counted + 1;
      if (!small) continue;
      bytes += attr->size();
      wanted.push_back(Wanted{std::move(child), SeenOf(*attr), expired});
    }
    if (full) break;
    c.at_end = true;
  }
  {
    absl::MutexLock lock(&mu_);
    if (window == window_) {
      window_end_ = std::move(c);
      window_left_ += wanted.size();
    }
  }
  if (wanted.empty()) return {};

  auto fetch = std::make_shared<Fetch>();
  std::vector<PendingOp> ops;
  std::vector<PendingOp> refreshes;
  {
    absl::MutexLock lock(&mu_);
    for (Wanted& w : wanted) {
      if (kept_.contains(w.path)) continue;
      if (!in_flight_.try_emplace(w.path, InFlight{w.seen, {}}).second) {
        continue;
      }
      if (w.refresh) {
        // Answered into the daemon's cache on its way back.
        PendingOp getattr;
        *getattr.op.mutable_caller() = caller;
        getattr.op.mutable_getattr()->set_path(w.path);
        getattr.done = [](const v1::OpResult&) {};
        refreshes.push_back(std::move(getattr));
      }
      PendingOp p;
      *p.op.mutable_caller() = caller;
      v1::OpenRequest* open = p.op.mutable_open();
      open->set_path(w.path);
      open->set_flags(O_RDONLY);
      open->set_contents_up_to(options_.largest);
      p.done = [this, fetch, caller, path = w.path](const v1::OpResult& r) {
        Arrived(path, caller, r);
        std::vector<PendingOp> releases;
        {
          absl::MutexLock lock(&fetch->mu);
          if (r.posix_errno() == 0) {
            PendingOp release;
            release.op.mutable_release()->set_path(path);
            release.op.mutable_release()->set_fh(r.open().fh());
            release.op.mutable_release()->set_flags(O_RDONLY);
            release.done = [](const v1::OpResult&) {};
            fetch->releases.push_back(std::move(release));
          }
          if (--fetch->waiting == 0) releases = std::move(fetch->releases);
        }
        if (!releases.empty()) options_.send_all(std::move(releases));
      };
      ops.push_back(std::move(p));
    }
  }
  if (ops.empty()) return {};
  {
    absl::MutexLock lock(&fetch->mu);
    fetch->waiting = ops.size();
  }
  for (PendingOp& r : refreshes) ops.push_back(std::move(r));
  return ops;
}

void ContentsAhead::Arrived(const std::string& path, const v1::Caller& caller,
                            const v1::OpResult& result) {
  std::vector<std::function<void()>> waiting;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(path);
    if (it == in_flight_.end()) return;
    const Seen seen = it->second.seen;
    waiting = std::move(it->second.waiting);
    in_flight_.erase(it);
    const v1::OpenReply& open = result.open();
    // All of the file as its attributes said, to be read through the page
    // cache: anything else is left to the backend's own open.
    if (result.posix_errno() == 0 && open.has_contents() &&
        open.contents().size() == seen.size && !open.direct_io() &&
        !open.nonseekable() && RoomLocked(open.contents().size())) {
      Kept k;
      k.fetched.data = open.contents();
      k.fetched.reply.set_keep_cache(open.keep_cache());
      k.fetched.reply.set_noflush(open.noflush());
      k.seen = seen;
      k.caller = caller;
      k.at = absl::Now();
      k.seq = ++seq_;
      bytes_ += k.fetched.data.size();
      auto [at, inserted] = kept_.try_emplace(path);
      if (!inserted) bytes_ -= at->second.fetched.data.size();
      at->second = std::move(k);
      order_.emplace_back(path, seq_);
      fetched_.fetch_add(1);
    }
  }
  for (auto& w : waiting) w();
}

bool ContentsAhead::RoomLocked(size_t bytes) {
  if (bytes > options_.max_bytes) return false;
  // The oldest go first: a reader that skipped them has moved on.
  while (bytes_ + bytes > options_.max_bytes && !order_.empty()) {
    auto it = kept_.find(order_.front().first);
    if (it != kept_.end() && it->second.seq == order_.front().second) {
      DropLocked(it);
    }
    order_.pop_front();
  }
  // Taken ones leave their place in the order behind: bounded here.
  if (order_.size() > 2 * kept_.size() + 1024) {
    std::deque<std::pair<std::string, uint64_t>> live;
    for (auto& [path, seq] : order_) {
      auto it = kept_.find(path);
      if (it != kept_.end() && it->second.seq == seq) {
        live.emplace_back(std::move(path), seq);
      }
    }
    order_ = std::move(live);
  }
  return true;
}

void ContentsAhead::DropLocked(
    absl::flat_hash_map<std::string, Kept>::iterator it) {
  bytes_ -= it->second.fetched.data.size();
  kept_.erase(it);
}

bool ContentsAhead::Take(const std::string& path, const v1::Caller& caller,
                         Fetched* out) {
  Kept k;
  {
    absl::MutexLock lock(&mu_);
    auto it = kept_.find(path);
    if (it == kept_.end() || !SameCaller(it->second.caller, caller)) {
      return false;
    }
    k = std::move(it->second);
    bytes_ -= k.fetched.data.size();
    kept_.erase(it);
  }
  if (absl::Now() - k.at > options_.max_age) return false;
  std::optional<v1::Attr> now = options_.coherence->CachedAttr(path);
  if (!now || !(SeenOf(*now) == k.seen)) return false;
  *out = std::move(k.fetched);
  served_.fetch_add(1);
  return true;
}

bool ContentsAhead::AwaitInFlight(const std::string& path,
                                  std::function<void()> then) {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(path);
  if (it == in_flight_.end()) return false;
  it->second.waiting.push_back(std::move(then));
  return true;
}

}  // namespace fusehost
