#include "client/invalidation_hub.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace fusehost {

InvalidationHub::~InvalidationHub() {
  absl::MutexLock lock(&mu_);
  if (!subscriptions_.empty()) {
    // A stream handler would write through a dangling hub: the FileSystem
    // was destroyed while a server still served it.
    std::fprintf(stderr,
                 "fusehost: FileSystem destroyed with %zu invalidation "
                 "stream(s) open; it must outlive its server\n",
                 subscriptions_.size());
    std::abort();
  }
}

void InvalidationHub::Publish(v1::Invalidation::Kind kind,
                              const std::string& path) {
  absl::MutexLock lock(&mu_);
  for (Subscription* subscription : subscriptions_) {
    subscription->Push(kind, path);
  }
}

void InvalidationHub::PublishExcept(uint64_t mount_id,
                                    v1::Invalidation::Kind kind,
                                    const std::string& path) {
  absl::MutexLock lock(&mu_);
  for (Subscription* subscription : subscriptions_) {
    if (subscription->mount_id_ != mount_id) subscription->Push(kind, path);
  }
}

std::unique_ptr<InvalidationHub::Subscription> InvalidationHub::Subscribe(
    uint64_t mount_id, size_t max_queued) {
  std::unique_ptr<Subscription> subscription(
      new Subscription(*this, mount_id, std::max<size_t>(max_queued, 1)));
  absl::MutexLock lock(&mu_);
  subscriptions_.insert(subscription.get());
  return subscription;
}

InvalidationHub::Subscription::Subscription(InvalidationHub& hub,
                                            uint64_t mount_id,
                                            size_t max_queued)
    : hub_(hub), mount_id_(mount_id), max_queued_(max_queued) {}

InvalidationHub::Subscription::~Subscription() {
  absl::MutexLock lock(&hub_.mu_);
  hub_.subscriptions_.erase(this);
}

void InvalidationHub::Subscription::Push(v1::Invalidation::Kind kind,
                                         const std::string& path) {
  if (closed_ || collapsed_) return;
  if (queue_.size() >= max_queued_) {
    // The daemon is not keeping up (or not reading): one notice that drops
    // everything is both smaller and correct, since a cache the daemon
    // rebuilds later sees the changes made meanwhile.
    queue_.clear();
    v1::Invalidation everything;
    everything.set_kind(v1::Invalidation::SUBTREE);
    everything.set_path("/");
    queue_.push_back(std::move(everything));
    collapsed_ = true;
    return;
  }
  v1::Invalidation notice;
  notice.set_kind(kind);
  notice.set_path(path);
  queue_.push_back(std::move(notice));
}

bool InvalidationHub::Subscription::Take(absl::Duration timeout,
                                         std::vector<v1::Invalidation>* out) {
  out->clear();
  absl::MutexLock lock(&hub_.mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_.mu_) {
    return closed_ || !queue_.empty();
  };
  hub_.mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closed_) return false;
  out->swap(queue_);
  collapsed_ = false;
  return true;
}

void InvalidationHub::Subscription::Close() {
  absl::MutexLock lock(&hub_.mu_);
  closed_ = true;
  queue_.clear();
}

}  // namespace fusehost
