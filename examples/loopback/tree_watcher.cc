#include "examples/loopback/tree_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "examples/loopback/host_tree.h"

namespace fusehost {
namespace examples {
namespace {

// What each directory's watch reports. IN_EXCL_UNLINK: writes to a file that
// is open but already unlinked would name a path that no longer is its.
constexpr uint32_t kWatchMask =
    IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
    IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
    IN_EXCL_UNLINK;

// Past this many unwatched directories, one kSubtree("/") replaces their
// periodic reports: thousands of notices every period would cost the daemon
// more than the cache it keeps.
constexpr size_t kMaxUnwatchedReports = 64;

// Room for hundreds of events per read(2), which never splits an event.
constexpr size_t kEventBufferBytes = 64 * 1024;

// "a/b" + "c" = "a/b/c"; "" is the root.
std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : absl::StrCat(dir, "/", name);
}

std::string ReadFirstLine(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line.empty() ? "?" : line;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TreeWatcher>> TreeWatcher::Start(
    Options options) {
  if (!options.sink) return absl::InvalidArgumentError("TreeWatcher: no sink");
  const int root_fd =
      open(options.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot open directory ", options.root));
  }
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) {
    const int error = errno;
    close(root_fd);
    return absl::ErrnoToStatus(
        error, error == EMFILE
                   ? "inotify_init1 (fs.inotify.max_user_instances reached?)"
                   : "inotify_init1");
  }
  const int stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd < 0) {
    const int error = errno;
    close(inotify_fd);
    close(root_fd);
    return absl::ErrnoToStatus(error, "eventfd");
  }
  const bool use_openat2 = Openat2Works(root_fd);
  std::unique_ptr<TreeWatcher> watcher(new TreeWatcher(
      std::move(options), root_fd, use_openat2, inotify_fd, stop_fd));
  // Before the thread starts, so that Start returns with the tree watched.
  watcher->WatchTree(-1, "", /*report=*/false);
  // The thread inherits a mask blocking every signal: a process-directed
  // signal then goes to a thread that expects it, e.g. to Serve()'s sigwait,
  // instead of killing the process here.
  sigset_t all;
  sigset_t old_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  watcher->thread_ = std::thread([w = watcher.get()] {
    pthread_setname_np(pthread_self(), "tree-watcher");  // for top -H
    w->Run();
  });
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return watcher;
}

TreeWatcher::TreeWatcher(Options options, int root_fd, bool use_openat2,
                         int inotify_fd, int stop_fd)
    : options_(std::move(options)),
      root_fd_(root_fd),
      use_openat2_(use_openat2),
      inotify_fd_(inotify_fd),
      stop_fd_(stop_fd),
      event_buffer_(kEventBufferBytes) {}

TreeWatcher::~TreeWatcher() {
  const uint64_t one = 1;
  // An eventfd write of 1 cannot fail short of overflowing the counter.
  (void)!write(stop_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(stop_fd_);
  close(inotify_fd_);  // drops every watch
  close(root_fd_);
}

void TreeWatcher::Run() {
  absl::Time flush_at = absl::InfiniteFuture();
  absl::Time unwatched_at = absl::Now() + options_.unwatched_period;
  for (;;) {
    const bool collecting = flush_at != absl::InfiniteFuture();
    absl::Time wake = flush_at;
    if (!unwatched_.empty()) wake = std::min(wake, unwatched_at);
    struct timespec timeout;
    struct timespec* timeout_ptr = nullptr;
    if (wake != absl::InfiniteFuture()) {
      timeout = absl::ToTimespec(std::max(wake - absl::Now(),
                                          absl::ZeroDuration()));
      timeout_ptr = &timeout;
    }
    // While a burst is being collected, its events stay in the kernel's
    // queue and are read in one go when the window ends: one wake-up per
    // burst rather than one per event, which is most of what watching costs.
    struct pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    if (ppoll(fds, collecting ? 1 : 2, timeout_ptr, nullptr) < 0 &&
        errno != EINTR) {
      std::fprintf(stderr, "loopback_fs: watching stopped: ppoll: %s\n",
                   std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    absl::Time now = absl::Now();
    if (fds[1].revents != 0 || now >= flush_at) {
      ReadEvents();
      now = absl::Now();
    }
    if (!unwatched_.empty() && now >= unwatched_at) {
      ReportUnwatched();
      unwatched_at = now + options_.unwatched_period;
    }
    if (!batch_.empty() && flush_at == absl::InfiniteFuture()) {
      flush_at = now + options_.coalesce;
    }
    if (now >= flush_at) {
      Flush();
      flush_at = absl::InfiniteFuture();
    }
  }
}

void TreeWatcher::ReadEvents() {
  char* const buffer = event_buffer_.data();
  for (;;) {
    const ssize_t n = read(inotify_fd_, buffer, event_buffer_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: all read
    for (ssize_t pos = 0; pos < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(
          buffer + pos);
      pos += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      // The name is NUL-padded to its slot; len 0 means no name.
      HandleEvent(event->wd, event->mask, event->cookie,
                  event->len > 0 ? std::string(event->name) : std::string());
    }
  }
}

void TreeWatcher::HandleEvent(int wd, uint32_t mask, uint32_t cookie,
                              const std::string& name) {
  using Kind = TreeChange::Kind;
  if (mask & IN_Q_OVERFLOW) {
    // Events were lost, new directories among them maybe: start over.
    Report(Kind::kSubtree, "");
    Rewatch();
    return;
  }
  auto dir_it = dirs_.find(wd);
  if (dir_it == dirs_.end()) return;  // a watch already given up
  if (mask & IN_IGNORED) {
    ForgetWatch(wd);
    return;
  }
  std::string dir;
  if (!RelPath(wd, &dir)) return;  // left the tree
  if (name.empty()) {
    // About the watched directory itself. Its renames and removal are
    // reported through its parent's events; only the root has none.
    if (mask & IN_ATTRIB) Report(Kind::kChanged, dir);
    if ((mask & IN_DELETE_SELF) && dir_it->second.parent == -1) {
      Report(Kind::kSubtree, "");
    }
    return;
  }
  const std::string path = Join(dir, name);
  const bool is_dir = (mask & IN_ISDIR) != 0;
  if (mask & IN_CREATE) {
    Report(Kind::kChanged, path);
    Report(Kind::kChanged, dir);
    if (is_dir) WatchTree(wd, name, /*report=*/true);
  }
  if (mask & IN_DELETE) {
    Report(Kind::kRemoved, path);
    Report(Kind::kChanged, dir);
    // A watched directory's own watch ends with IN_IGNORED.
    if (is_dir) unwatched_.erase(Entry(wd, name));
  }
  if (mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) {
    Report(Kind::kChanged, path);
  }
  if (mask & IN_MOVED_FROM) {
    Report(Kind::kRemoved, path);
    Report(Kind::kChanged, dir);
    if (is_dir) {
      Report(Kind::kSubtree, path);
      unwatched_.erase(Entry(wd, name));
      auto child = children_.find(Entry(wd, name));
      if (child != children_.end()) {
        // Detached until IN_MOVED_TO says where it went.
        moving_[cookie] = child->second;
        children_.erase(child);
      }
    }
  }
  if (mask & IN_MOVED_TO) {
    Report(Kind::kChanged, path);
    Report(Kind::kChanged, dir);
    if (is_dir) {
      Report(Kind::kSubtree, path);
      auto moved = moving_.find(cookie);
      if (moved != moving_.end() && dirs_.contains(moved->second)) {
        const int moved_wd = moved->second;
        moving_.erase(moved);
        // A directory it replaced keeps its watch until IN_IGNORED, which
        // only forgets the name if it still maps to that watch.
        dirs_[moved_wd] = Dir{wd, name};
        children_[Entry(wd, name)] = moved_wd;
      } else {
        // From outside the tree, or a split rename whose directory was
        // already given up: watch it as new (kSubtree is reported above).
        WatchTree(wd, name, /*report=*/false);
      }
    }
  }
}

void TreeWatcher::WatchTree(int parent, const std::string& name,
                            bool report) {
  // Names found below a new directory: they were made before the watches
  // that would have told of them existed. Reported one by one, or, past
  // kMaxNamesReported, as the whole subtree.
  std::vector<std::string> found;
  std::string top_rel;
  // Depth-first with an explicit stack: trees can be deeper than a thread's
  // stack is comfortable with.
  std::vector<Entry> pending = {Entry(parent, name)};
  bool top = true;
  while (!pending.empty()) {
    Entry next = std::move(pending.back());
    pending.pop_back();
    std::string rel;
    if (next.first != -1) {
      if (!RelPath(next.first, &rel)) continue;
      rel = Join(rel, next.second);
    }
    if (top) top_rel = rel;
    top = false;
    ScopedFd fd(OpenBeneath(root_fd_, rel.empty() ? "." : rel,
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC, use_openat2_));
    // Gone already, or replaced by something that is not a directory.
    if (fd.get() < 0) continue;
    const int wd = AddWatch(fd.get(), next.first, next.second);
    if (wd < 0) continue;
    std::vector<RawEntry> entries;
    if (ReadAllEntries(fd.get(), &entries) != 0) continue;
    for (RawEntry& entry : entries) {
      if (report && found.size() <= kMaxNamesReported) {
        found.push_back(Join(rel, entry.name));
      }
      bool is_dir = entry.type == DT_DIR;
      struct stat st;
      if (entry.type == DT_UNKNOWN &&
          fstatat(fd.get(), entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) ==
              0) {
        is_dir = S_ISDIR(st.st_mode);
      }
      if (is_dir) pending.emplace_back(wd, std::move(entry.name));
    }
  }
  if (found.size() > kMaxNamesReported) {
    Report(TreeChange::Kind::kSubtree, top_rel);
    return;
  }
  // Each by name (untar makes names in a directory it just made, faster
  // than the watch on it is added): as precise as the events would have
  // been.
  for (const std::string& path : found) {
    Report(TreeChange::Kind::kChanged, path);
  }
}

int TreeWatcher::AddWatch(int dir_fd, int parent, const std::string& name) {
  int wd = -1;
  int error = ENOSPC;
  if (options_.max_watches == 0 || dirs_.size() < options_.max_watches) {
    // Through the descriptor: a path could have been swapped for a symlink
    // since the directory was opened.
    wd = inotify_add_watch(inotify_fd_, ProcFdPath(dir_fd).c_str(),
                           kWatchMask);
    error = errno;
  }
  if (wd < 0) {
    if (error == ENOSPC) {
      unwatched_.insert(Entry(parent, name));
      std::string rel;
      if (parent == -1 || RelPath(parent, &rel)) {
        LogLimitOnce(parent == -1 ? "" : Join(rel, name));
      }
    }
    return -1;
  }
  // inotify returns the existing watch for a directory watched already:
  // then only its place changed.
  auto known = dirs_.find(wd);
  if (known != dirs_.end()) {
    auto child = children_.find(Entry(known->second.parent,
                                      known->second.name));
    if (child != children_.end() && child->second == wd) children_.erase(child);
  }
  dirs_[wd] = Dir{parent, name};
  if (parent != -1) children_[Entry(parent, name)] = wd;
  unwatched_.erase(Entry(parent, name));
  return wd;
}

void TreeWatcher::UnwatchTree(int wd) {
  std::vector<int> doomed;
  for (const auto& [candidate, dir] : dirs_) {
    // Walks up to `wd` or the root; bounded in case stale entries loop.
    int at = candidate;
    for (size_t steps = 0; at != -1 && at != wd && steps <= dirs_.size();
         ++steps) {
      auto it = dirs_.find(at);
      at = it == dirs_.end() ? -1 : it->second.parent;
    }
    if (at == wd) doomed.push_back(candidate);
  }
  for (int gone : doomed) inotify_rm_watch(inotify_fd_, gone);
  for (int gone : doomed) ForgetWatch(gone);
}

void TreeWatcher::Rewatch() {
  for (const auto& [wd, dir] : dirs_) inotify_rm_watch(inotify_fd_, wd);
  dirs_.clear();
  children_.clear();
  unwatched_.clear();
  moving_.clear();
  WatchTree(-1, "", /*report=*/false);
}

void TreeWatcher::ForgetWatch(int wd) {
  auto it = dirs_.find(wd);
  if (it == dirs_.end()) return;
  auto child = children_.find(Entry(it->second.parent, it->second.name));
  if (child != children_.end() && child->second == wd) children_.erase(child);
  dirs_.erase(it);
  // Unwatched directories inside it went with it.
  absl::erase_if(unwatched_,
                 [wd](const Entry& entry) { return entry.first == wd; });
}

void TreeWatcher::ResolveMoves() {
  for (const auto& [cookie, wd] : moving_) {
    if (dirs_.contains(wd)) UnwatchTree(wd);
  }
  moving_.clear();
}

bool TreeWatcher::RelPath(int wd, std::string* rel) const {
  std::vector<const std::string*> names;
  for (int at = wd; at != -1;) {
    auto it = dirs_.find(at);
    // Detached (renamed away) or dropped on the way: no path.
    if (it == dirs_.end() || names.size() > dirs_.size()) return false;
    if (it->second.parent != -1) {
      auto child = children_.find(Entry(it->second.parent, it->second.name));
      if (child == children_.end() || child->second != at) return false;
      names.push_back(&it->second.name);
    }
    at = it->second.parent;
  }
  rel->clear();
  for (auto name = names.rbegin(); name != names.rend(); ++name) {
    if (!rel->empty()) rel->push_back('/');
    rel->append(**name);
  }
  return true;
}

void TreeWatcher::LogLimitOnce(const std::string& rel) {
  if (limit_logged_) return;
  limit_logged_ = true;
  const std::string limit =
      options_.max_watches != 0
          ? absl::StrCat("max_watches = ", options_.max_watches)
          : absl::StrCat(
                "fs.inotify.max_user_watches = ",
                ReadFirstLine("/proc/sys/fs/inotify/max_user_watches"));
  std::fprintf(stderr,
               "loopback_fs: inotify watch limit reached (%s) at \"/%s\": "
               "directories left unwatched are reported as changed every "
               "%s instead; raise the limit to cache them\n",
               limit.c_str(), rel.c_str(),
               absl::FormatDuration(options_.unwatched_period).c_str());
}

void TreeWatcher::Report(TreeChange::Kind kind, const std::string& rel) {
  batch_.push_back(TreeChange{kind, absl::StrCat("/", rel)});
}

void TreeWatcher::ReportUnwatched() {
  if (unwatched_.size() > kMaxUnwatchedReports) {
    Report(TreeChange::Kind::kSubtree, "");
    return;
  }
  for (const Entry& entry : unwatched_) {
    std::string rel;
    if (entry.first == -1) {
      Report(TreeChange::Kind::kSubtree, "");
    } else if (RelPath(entry.first, &rel)) {
      Report(TreeChange::Kind::kSubtree, Join(rel, entry.second));
    }
  }
}

void TreeWatcher::Flush() {
  ResolveMoves();
  std::vector<TreeChange> out;
  const TreeChange everything{TreeChange::Kind::kSubtree, "/"};
  if (std::find(batch_.begin(), batch_.end(), everything) != batch_.end()) {
    out.push_back(everything);
  } else {
    // Each change once, where it last happened: a name created, removed and
    // created again ends as "changed", as it is.
    absl::flat_hash_set<std::pair<TreeChange::Kind, absl::string_view>> seen;
    for (auto change = batch_.rbegin(); change != batch_.rend(); ++change) {
      if (seen.insert({change->kind, change->path}).second) {
        out.push_back(*change);
      }
    }
    std::reverse(out.begin(), out.end());
  }
  batch_.clear();
  if (!out.empty()) options_.sink(out);
}

}  // namespace examples
}  // namespace fusehost
