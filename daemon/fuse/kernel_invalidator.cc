#include "daemon/fuse/kernel_invalidator.h"

#include <pthread.h>

#include <utility>

#include "common/paths.h"

namespace fusehost {

KernelInvalidator::KernelInvalidator(NodeTable* nodes, KernelNotify* notify)
    : nodes_(nodes), notify_(notify) {}

KernelInvalidator::~KernelInvalidator() { Stop(); }

void KernelInvalidator::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kernel-inval");  // for top -H
    Loop();
  });
}

void KernelInvalidator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void KernelInvalidator::Enqueue(Item item) {
  absl::MutexLock lock(&mu_);
  if (stop_ || sweep_) return;  // a sweep covers everything
  if (item.name.empty()) {
    auto [it, added] = queued_nodes_.emplace(item.node, item.data);
    if (!added) {
      it->second = it->second || item.data;  // the queued one does it
      return;
    }
  } else if (!queued_entries_.emplace(item.node, item.name).second) {
    return;
  }
  if (queue_.size() >= kMaxQueued) {
    queue_.clear();
    queued_nodes_.clear();
    queued_entries_.clear();
    sweep_ = true;
    return;
  }
  queue_.push_back(std::move(item));
}

size_t KernelInvalidator::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size() + (sweep_ ? 1 : 0);
}

void KernelInvalidator::Sweep() {
  std::vector<NodeTable::Link> links = nodes_->LinksBelow(NodeTable::kRootId);
  notify_->InvalidateNode(NodeTable::kRootId, /*data=*/true);
  for (const NodeTable::Link& link : links) {
    notify_->InvalidateNode(link.id, /*data=*/true);
    notify_->InvalidateEntry(link.parent, link.name);
  }
}

void KernelInvalidator::NodeChanged(uint64_t node, bool data) {
  Enqueue(Item{node, "", data});
}

void KernelInvalidator::EntryChanged(uint64_t parent, std::string name) {
  Enqueue(Item{parent, std::move(name), false});
}

void KernelInvalidator::PathChanged(const std::string& path) {
  uint64_t node = nodes_->Find(path);
  if (node != 0) NodeChanged(node, /*data=*/true);
  if (path == "/") return;
  // The name itself: it may be gone, or exist now where the kernel cached
  // its absence.
  uint64_t parent = nodes_->Find(ParentPath(path));
  if (parent != 0) EntryChanged(parent, std::string(BaseName(path)));
}

void KernelInvalidator::SubtreeChanged(const std::string& path) {
  PathChanged(path);
  uint64_t node = nodes_->Find(path);
  if (node == 0) return;
  for (const NodeTable::Link& link : nodes_->LinksBelow(node)) {
    NodeChanged(link.id, /*data=*/true);
    EntryChanged(link.parent, link.name);
  }
}

void KernelInvalidator::DirectoryChanged(const std::string& path) {
  uint64_t node = nodes_->Find(path);
  if (node != 0) NodeChanged(node, /*data=*/true);
}

uint64_t KernelInvalidator::HardLinkedFileAt(const std::string& path) {
  uint64_t node = nodes_->Find(path);
  return node == 0 ? 0 : nodes_->BackendIno(node);
}

void KernelInvalidator::HardLinksChanged(const std::string& path) {
  uint64_t node = nodes_->Find(path);
  if (node == 0) return;
  for (uint64_t sibling : nodes_->Siblings(node)) {
    NodeChanged(sibling, /*data=*/true);
  }
}

void KernelInvalidator::DropAttrsNow(const std::vector<uint64_t>& nodes) {
  // Cached pages follow by themselves: the kernel drops them when the fresh
  // attributes show a new size or mtime (auto_inval_data).
  for (uint64_t node : nodes) notify_->InvalidateNode(node, /*data=*/false);
}

void KernelInvalidator::Loop() {
  for (;;) {
    Item item;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](KernelInvalidator* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stop_ || self->sweep_ || !self->queue_.empty();
          },
          this));
      if (stop_) return;
      if (sweep_) {
        sweep_ = false;
        mu_.Unlock();
        Sweep();
        mu_.Lock();
        continue;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
      if (item.name.empty()) {
        item.data = queued_nodes_[item.node];
        queued_nodes_.erase(item.node);
      } else {
        queued_entries_.erase(std::make_pair(item.node, item.name));
      }
    }
    // Errors (ENOENT: the kernel already forgot the node) need no action.
    if (item.name.empty()) {
      notify_->InvalidateNode(item.node, item.data);
    } else {
      notify_->InvalidateEntry(item.node, item.name);
    }
  }
}

}  // namespace fusehost
