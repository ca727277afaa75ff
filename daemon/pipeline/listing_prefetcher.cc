#include "daemon/pipeline/listing_prefetcher.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <memory>
#include <utility>

#include "common/paths.h"

namespace fusehost {
namespace {

// The prefetcher whose jobs this thread is starting: a job that fails at
// once (its callback runs inside Send) must not start the next one from
// inside the call, deeper and deeper; the loop that is running goes on
// with it.
thread_local const ListingPrefetcher* pumping = nullptr;

}  // namespace

ListingPrefetcher::ListingPrefetcher(Options options)
    : options_(std::move(options)) {}

bool ListingPrefetcher::CacheHasRoom() const {
  // Prefetching must not push out what the cache holds.
  return options_.cache->size() < options_.cache->max_entries() / 4 * 3;
}

void ListingPrefetcher::Listed(const std::string& dir,
                               const std::vector<std::string>& subdirs,
                               const v1::Caller& caller) {
  if (!CacheHasRoom()) return;
  std::vector<std::string> wanted;
  std::deque<std::string> later;
  for (const std::string& name : subdirs) {
    if (!later.empty() || !Want(dir, name, &wanted)) later.push_back(name);
  }
  KeepTail(dir, std::move(later), caller);
  Enqueue(std::move(wanted), caller);
}

void ListingPrefetcher::Listed(const std::string& dir, const Listing& listing,
                               const v1::Caller& caller) {
  if (!CacheHasRoom()) return;
  std::vector<std::string> subdirs;
  for (const auto& [name, entry] : listing) {
    if (entry.type == S_IFDIR) subdirs.push_back(name.str());
  }
  Listed(dir, subdirs, caller);
}

void ListingPrefetcher::KeepTail(const std::string& dir,
                                 std::deque<std::string> names,
                                 const v1::Caller& caller) {
  absl::MutexLock lock(&mu_);
  auto it = tails_.find(dir);
  if (it != tails_.end()) {
    tail_names_ -= it->second.names.size();
    tails_.erase(it);
  }
  if (names.empty() || stopped_ || tail_names_ + names.size() > kMaxTail) {
    return;
  }
  tail_names_ += names.size();
  tails_.emplace(dir, Tail{std::move(names), caller});
}

void ListingPrefetcher::Visited(const std::string& path) {
  if (path == "/") return;
  const std::string dir = ParentPath(path);
  std::vector<std::string> wanted;
  v1::Caller caller;
  {
    absl::MutexLock lock(&mu_);
    auto it = tails_.find(dir);
    if (it == tails_.end()) return;
    Tail& tail = it->second;
    caller = tail.caller;
    // One in for the one the walker took out; those cached meanwhile are
    // passed over.
    while (wanted.empty() && !tail.names.empty()) {
      std::string name = std::move(tail.names.front());
      tail.names.pop_front();
      --tail_names_;
      Want(dir, name, &wanted);
    }
    if (tail.names.empty()) tails_.erase(it);
  }
  if (CacheHasRoom()) Enqueue(std::move(wanted), caller);
}

bool ListingPrefetcher::Want(const std::string& dir, absl::string_view name,
                             std::vector<std::string>* wanted) const {
  if (wanted->size() >= options_.per_listing) return false;
  std::string path = ChildPathOf(dir, name);
  if (options_.cache->ShareListing(path) == nullptr) {
    wanted->push_back(std::move(path));
  }
  return true;
}

void ListingPrefetcher::Enqueue(std::vector<std::string> wanted,
                                const v1::Caller& caller) {
  if (wanted.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    for (std::string& path : wanted) {
      if (queue_.size() >= kMaxQueued) break;
      if (!pending_.try_emplace(path).second) continue;  // already coming
      queue_.push_back(Job{std::move(path), caller});
    }
  }
  Pump();
}

bool ListingPrefetcher::AwaitInFlight(const std::string& path,
                                      std::function<void()> then) {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(path);
  if (it == pending_.end()) return false;
  it->second.push_back(std::move(then));
  return true;
}

void ListingPrefetcher::Stop() {
  std::vector<std::function<void()>> waiting;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    tails_.clear();
    tail_names_ = 0;
    for (Job& job : queue_) {
      auto it = pending_.find(job.path);
      if (it == pending_.end()) continue;
      for (auto& w : it->second) waiting.push_back(std::move(w));
      pending_.erase(it);
    }
    queue_.clear();
  }
  // Those who waited for a prefetch that will not come ask for themselves.
  for (auto& w : waiting) w();
}

void ListingPrefetcher::Pump() {
  if (pumping == this) return;
  const ListingPrefetcher* outer = pumping;
  pumping = this;
  for (;;) {
    Job job;
    bool start = false;
    std::vector<std::function<void()>> dropped;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_ || queue_.empty() || running_ >= options_.max_in_flight) {
        break;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
      if (!CacheHasRoom()) {
        // Queued while there was room; not any more.
        auto it = pending_.find(job.path);
        if (it != pending_.end()) {
          dropped = std::move(it->second);
          pending_.erase(it);
        }
      } else {
        ++running_;
        start = true;
      }
    }
    for (auto& w : dropped) w();
    if (start) Run(std::move(job));
  }
  pumping = outer;
}

void ListingPrefetcher::Run(Job job) {
  if (options_.lists_by_path != nullptr && options_.lists_by_path->load()) {
    v1::Op read;
    *read.mutable_caller() = job.caller;
    read.mutable_readdir()->set_path(job.path);
    options_.send_readdir(std::move(read),
                          [this, job](const v1::OpResult& listed) {
                            Counted(listed);
                            Finished(job.path);
                          });
    return;
  }
  v1::Op open;
  *open.mutable_caller() = job.caller;
  open.mutable_opendir()->set_path(job.path);
  open.mutable_opendir()->set_flags(O_RDONLY | O_DIRECTORY);
  options_.next->Send(std::move(open), [this, job](const v1::OpResult& r) {
    if (r.posix_errno() != 0) {
      Finished(job.path);
      return;
    }
    const uint64_t fh = r.opendir().fh();
    v1::Op read;
    *read.mutable_caller() = job.caller;
    read.mutable_readdir()->set_path(job.path);
    read.mutable_readdir()->set_fh(fh);
    options_.send_readdir(
        std::move(read), [this, job, fh](const v1::OpResult& listed) {
          Counted(listed);
          v1::Op release;
          release.mutable_releasedir()->set_path(job.path);
          release.mutable_releasedir()->set_fh(fh);
          options_.next->Send(std::move(release), [](const v1::OpResult&) {});
          Finished(job.path);
        });
  });
}

void ListingPrefetcher::Counted(const v1::OpResult& listed) {
  // Counted when it could be cached: a whole listing.
  if (listed.posix_errno() == 0 && listed.readdir().eof()) {
    fetched_.fetch_add(1);
  }
}

void ListingPrefetcher::Finished(const std::string& path) {
  std::vector<std::function<void()>> waiting;
  {
    absl::MutexLock lock(&mu_);
    --running_;
    auto it = pending_.find(path);
    if (it != pending_.end()) {
      waiting = std::move(it->second);
      pending_.erase(it);
    }
  }
  for (auto& w : waiting) w();
  Pump();
}

}  // namespace fusehost
