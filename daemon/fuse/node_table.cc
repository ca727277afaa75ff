#include "daemon/fuse/node_table.h"
#include "common/log_line.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace fusehost {

size_t NodeTable::ChildHash::operator()(const ChildKey& key) const {
  return absl::Hash<std::pair<uint64_t, absl::string_view>>{}(
      {key.parent, key.name});
}

size_t NodeTable::ChildHash::operator()(uint64_t id) const {
  return (*this)(ChildEq{nodes}.KeyOf(id));
}

NodeTable::ChildKey NodeTable::ChildEq::KeyOf(uint64_t id) const {
  // Only attached nodes are in children_; a missing one cannot be (and
  // hashes as no name at all).
  auto it = nodes->find(id);
  if (it == nodes->end()) return ChildKey{0, {}};
  return ChildKey{it->second.parent, it->second.name.view()};
}

bool NodeTable::ChildEq::operator()(uint64_t id, const ChildKey& key) const {
  ChildKey mine = KeyOf(id);
  return mine.parent == key.parent && mine.name == key.name;
}

NodeTable::NodeTable() {
  absl::MutexLock lock(&mu_);
  // The kernel never forgets the root; one permanent reference keeps it.
  nodes_[kRootId] = Node{0, 1, ""};
}

std::optional<std::string> NodeTable::PathOfLocked(uint64_t id) const {
  if (id == kRootId) return std::string("/");
  std::vector<absl::string_view> parts;
  uint64_t cur = id;
  while (cur != kRootId) {
    auto it = nodes_.find(cur);
    if (it == nodes_.end()) {
      // Only the first node may be unknown; an unknown ancestor would mean a
      // parent was erased while a child still pointed at it.
      if (cur == id) return std::nullopt;
      return std::string();
    }
    if (it->second.parent == 0) return std::string();  // detached
    parts.push_back(it->second.name.view());
    cur = it->second.parent;
  }
  std::string path;
  for (auto p = parts.rbegin(); p != parts.rend(); ++p) {
    path += '/';
    path.append(p->data(), p->size());
  }
  return path;
}

std::optional<std::string> NodeTable::PathOf(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  return PathOfLocked(id);
}

std::optional<std::string> NodeTable::ChildPath(uint64_t parent,
                                                const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  std::optional<std::string> base = PathOfLocked(parent);
  if (!base || base->empty()) return base;
  if (*base != "/") *base += '/';
  *base += name;
  return base;
}

uint64_t NodeTable::Find(const std::string& path) const {
  absl::ReaderMutexLock lock(&mu_);
  uint64_t id = kRootId;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    id = ChildLocked(id, absl::string_view(path).substr(pos, end - pos));
    if (id == 0) return 0;
    pos = end + 1;
  }
  return id;
}

bool NodeTable::WouldCycleLocked(uint64_t id, uint64_t parent) const {
  // At most one step per node: a longer walk is a cycle already there.
  for (size_t steps = 0; steps <= nodes_.size(); ++steps) {
    if (parent == id) return true;
    if (parent == kRootId || parent == 0) return false;
    auto it = nodes_.find(parent);
    if (it == nodes_.end()) return false;
    parent = it->second.parent;
  }
  return true;
}

std::vector<NodeTable::Link> NodeTable::LinksBelow(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Link> out;
  for (const auto& [child, node] : nodes_) {
    if (node.parent == 0 || child == id) continue;
    // Walk up: is `id` an ancestor?
    for (uint64_t up = node.parent; up != 0;) {
      if (up == id) {
        out.push_back(Link{child, node.parent, node.name.str()});
        break;
      }
      if (up == kRootId) break;
      auto it = nodes_.find(up);
      if (it == nodes_.end()) break;
      up = it->second.parent;
    }
  }
  return out;
}

uint64_t NodeTable::AddLookup(uint64_t parent, const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (!nodes_.contains(parent)) return 0;
  uint64_t id = ChildLocked(parent, name);
  if (id == 0) {
    id = next_id_++;
    nodes_[id] = Node{};
    AttachLocked(id, parent, name);
  }
  nodes_[id].lookups++;
  if (changes_ != nullptr) changes_->Referenced(id, parent, name);
  return id;
}

void NodeTable::Forget(uint64_t id, uint64_t count) {
  if (id == kRootId) return;
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;  // already gone: nothing to drop
  if (it->second.lookups < count) {
    Log("lookup count underflow on node %llu (%llu < %llu)",
                 static_cast<unsigned long long>(id),
                 static_cast<unsigned long long>(it->second.lookups),
                 static_cast<unsigned long long>(count));
    std::abort();
  }
  it->second.lookups -= count;
  if (changes_ != nullptr) changes_->Forgot(id, count);
  if (it->second.lookups == 0) {
    EraseLocked(id);
  }
}

void NodeTable::Remove(uint64_t parent, const std::string& name) {
  absl::MutexLock lock(&mu_);
  uint64_t id = ChildLocked(parent, name);
  if (id == 0) return;
  DetachLocked(id);
  if (changes_ != nullptr) changes_->Removed(parent, name);
}

void NodeTable::Rename(uint64_t old_parent, const std::string& old_name,
                       uint64_t new_parent, const std::string& new_name,
                       bool exchange) {
  absl::MutexLock lock(&mu_);
  uint64_t src_id = ChildLocked(old_parent, old_name);
  uint64_t dst_id = ChildLocked(new_parent, new_name);
  // The kernel never moves a directory below itself; a replayed journal
  // that says so is not followed (a cycle would make PathOf loop).
  if (src_id && WouldCycleLocked(src_id, new_parent)) return;
  if (exchange && dst_id && WouldCycleLocked(dst_id, old_parent)) return;
  if (src_id) DetachLocked(src_id);
  if (dst_id) DetachLocked(dst_id);
  if (src_id) AttachLocked(src_id, new_parent, new_name);
  if (exchange && dst_id) AttachLocked(dst_id, old_parent, old_name);
  if (changes_ != nullptr && (src_id || dst_id)) {
    changes_->Renamed(old_parent, old_name, new_parent, new_name, exchange);
  }
}

void NodeTable::NoteInode(uint64_t id, uint64_t backend_ino, bool multi_link) {
  absl::MutexLock lock(&mu_);
  if (!nodes_.contains(id)) return;
  auto known = backend_ino_.find(id);
  if (multi_link && known != backend_ino_.end() &&
      known->second == backend_ino) {
    return;
  }
  UntrackLocked(id);
  if (!multi_link || backend_ino == 0) return;
  backend_ino_[id] = backend_ino;
  by_backend_ino_[backend_ino].push_back(id);
}

std::vector<uint64_t> NodeTable::Siblings(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = backend_ino_.find(id);
  if (it == backend_ino_.end()) return {};
  auto group = by_backend_ino_.find(it->second);
  if (group == by_backend_ino_.end()) return {};
  std::vector<uint64_t> out;
  for (uint64_t other : group->second) {
    if (other != id) out.push_back(other);
  }
  return out;
}

uint64_t NodeTable::BackendIno(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = backend_ino_.find(id);
  return it == backend_ino_.end() ? 0 : it->second;
}

void NodeTable::UntrackLocked(uint64_t id) {
  auto it = backend_ino_.find(id);
  if (it == backend_ino_.end()) return;
  auto group = by_backend_ino_.find(it->second);
  if (group != by_backend_ino_.end()) {
    auto& v = group->second;
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
    if (v.empty()) by_backend_ino_.erase(group);
  }
  backend_ino_.erase(it);
}

void NodeTable::EraseLocked(uint64_t id) {
  DetachLocked(id);
  UntrackLocked(id);
  open_handles_.erase(id);
  nodes_.erase(id);
}

void NodeTable::AddOpenHandle(uint64_t id, uint64_t fh) {
  absl::MutexLock lock(&mu_);
  if (!nodes_.contains(id)) return;
  open_handles_[id].push_back(fh);
  if (changes_ != nullptr) changes_->HandleChanged(id, fh, /*open=*/true);
}

void NodeTable::RemoveOpenHandle(uint64_t id, uint64_t fh) {
  absl::MutexLock lock(&mu_);
  auto it = open_handles_.find(id);
  if (it == open_handles_.end()) return;
  std::vector<uint64_t>& handles = it->second;
  for (auto h = handles.begin(); h != handles.end(); ++h) {
    if (*h == fh) {
      handles.erase(h);
      if (handles.empty()) open_handles_.erase(it);
      if (changes_ != nullptr) changes_->HandleChanged(id, fh, /*open=*/false);
      return;
    }
  }
}

std::optional<uint64_t> NodeTable::AnyOpenHandle(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = open_handles_.find(id);
  if (it == open_handles_.end() || it->second.empty()) return std::nullopt;
  return it->second.front();
}

std::vector<uint64_t> NodeTable::OpenHandles(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = open_handles_.find(id);
  return it == open_handles_.end() ? std::vector<uint64_t>() : it->second;
}

void NodeTable::SetChanges(Changes* changes) {
  absl::MutexLock lock(&mu_);
  changes_ = changes;
}

void NodeTable::Restore(uint64_t id, uint64_t parent, const std::string& name,
                        uint64_t lookups) {
  if (id == kRootId || id == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    nodes_[id] = Node{};
    // A record that would make a node its own ancestor (a damaged journal)
    // leaves it detached.
    if (parent != 0 && !WouldCycleLocked(id, parent)) {
      // A name recorded twice (a torn journal) keeps the later node.
      uint64_t held = ChildLocked(parent, name);
      if (held != 0) DetachLocked(held);
      AttachLocked(id, parent, name);
    }
    it = nodes_.find(id);
  }
  it->second.lookups += lookups;
  next_id_ = std::max(next_id_, id + 1);
}

void NodeTable::RestoreForget(uint64_t id, uint64_t count) {
  uint64_t held = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    held = it->second.lookups;
  }
  Forget(id, std::min(count, held));
}

void NodeTable::RestoreNextId(uint64_t next_id) {
  absl::MutexLock lock(&mu_);
  next_id_ = std::max(next_id_, next_id);
}

void NodeTable::Snapshot(
    absl::FunctionRef<void(const std::vector<Saved>&, uint64_t)> with) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Saved> nodes;
  nodes.reserve(nodes_.size());
  for (const auto& [id, node] : nodes_) {
    if (id == kRootId) continue;
    auto handles = open_handles_.find(id);
    nodes.push_back(Saved{id, node.parent, node.name.str(), node.lookups,
                          handles == open_handles_.end()
                              ? std::vector<uint64_t>()
                              : handles->second});
  }
  with(nodes, next_id_);
}

size_t NodeTable::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return nodes_.size();
}

uint64_t NodeTable::ChildLocked(uint64_t parent, absl::string_view name) const {
  auto it = children_.find(ChildKey{parent, name});
  return it == children_.end() ? 0 : *it;
}

void NodeTable::DetachLocked(uint64_t id) {
  Node& node = nodes_[id];
  if (node.parent == 0) return;
  // Erased while the node still has the name it is hashed by.
  children_.erase(id);
  node.parent = 0;
  node.name = CompactString();
}

void NodeTable::AttachLocked(uint64_t id, uint64_t parent,
                             const std::string& name) {
  Node& node = nodes_[id];
  node.parent = parent;
  node.name = name;
  children_.insert(id);
}

}  // namespace fusehost
