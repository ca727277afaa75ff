#include "daemon/pipeline/handle_map.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>

#include "daemon/pipeline/op_transport.h"

namespace fusehost {

bool HandleMap::SawInstance(uint64_t instance) {
  if (instance == 0) return false;  // a backend that predates instances
  absl::MutexLock lock(&mu_);
  const bool replaced = current_ != 0 && current_ != instance;
  if (current_ != instance && changes_ != nullptr) {
    changes_->InstanceSeen(instance);
  }
  current_ = instance;
  return replaced;
}

size_t HandleMap::size() const {
  absl::MutexLock lock(&mu_);
  return handles_.size();
}

bool HandleMap::ReadOnly(uint64_t token) const {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  return it != handles_.end() && !it->second.dir &&
         (it->second.flags & O_ACCMODE) == O_RDONLY;
}

bool HandleMap::StaleLocked(const Handle& h) const {
  return h.instance != 0 && current_ != 0 && h.instance != current_;
}

void HandleMap::IssueTokens(const v1::Op& op, uint64_t instance,
                            v1::OpResult* r) {
  if (r->posix_errno() != 0) return;
  v1::OpenReply* open = op.has_open() && r->has_open() ? r->mutable_open()
                        : op.has_create() && r->has_create()
                            ? r->mutable_create()->mutable_open()
                            : nullptr;
  v1::OpendirReply* dir =
      op.has_opendir() && r->has_opendir() ? r->mutable_opendir() : nullptr;
  if (open == nullptr && dir == nullptr) return;
  Handle h;
  h.instance = instance;
  h.caller = op.caller();
  absl::MutexLock lock(&mu_);
  const uint64_t token = next_++;
  if (open != nullptr) {
    h.fh = open->fh();
    h.flags = op.has_open() ? op.open().flags() : op.create().flags();
    open->set_fh(token);
  } else {
    h.fh = dir->fh();
    h.dir = true;
    h.flags = op.opendir().flags();
    dir->set_fh(token);
  }
  if (changes_ != nullptr) changes_->Issued(SavedOf(token, h));
  handles_[token] = std::move(h);
}

uint64_t HandleMap::IssueUnopened(uint32_t flags, const v1::Caller& caller) {
  Handle h;
  h.unopened = true;
  h.flags = flags;
  h.caller = caller;
  absl::MutexLock lock(&mu_);
  const uint64_t token = next_++;
  if (changes_ != nullptr) changes_->Issued(SavedOf(token, h));
  handles_[token] = std::move(h);
  return token;
}

bool HandleMap::FlushesHere(uint64_t token) const {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  return it != handles_.end() && FlushesHereLocked(it->second);
}

bool HandleMap::Unopened(uint64_t token) const {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  return it != handles_.end() && it->second.unopened;
}

bool HandleMap::RetireUnopened(uint64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end() || !it->second.unopened) return false;
  RetireLocked(it);
  return true;
}

bool HandleMap::ResolveFromEarlierOp(v1::Op* op, uint64_t token) {
  OpHandles tokens = HandlesOf(*op);
  if (tokens.count != 1 || tokens.fh[0] != token) return false;
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end() || !it->second.unopened) return false;
  // The backend never had it under this token: a release needs no more.
  if (EndsHandle(*op)) RetireLocked(it);
  OpHandles none;
  none.count = 1;
  SetHandles(op, none);
  op->clear_handle_instance();
  return true;
}

HandleRoute HandleMap::Resolve(v1::Op* op) {
  HandleRoute route;
  route.tokens = HandlesOf(*op);
  OpHandles resolved = route.tokens;
  uint64_t instance = 0;
  const bool ends = EndsHandle(*op);
  absl::MutexLock lock(&mu_);
  if (op->has_lock() || op->has_flock()) locks_seen_ = true;
  for (int i = 0; i < route.tokens.count; ++i) {
    const uint64_t token = route.tokens.fh[i];
    auto it = handles_.find(token);
    if (it == handles_.end()) {
      route.kind = HandleRoute::kAnswer;
      route.posix_errno = EBADF;
      return route;
    }
    const Handle& h = it->second;
    if (h.unopened) {
      if (ends) {
        RetireLocked(it);  // the backend never had it
        route.kind = HandleRoute::kAnswer;
      } else if (op->has_flush() && FlushesHereLocked(h)) {
        route.kind = HandleRoute::kAnswer;  // nothing to write back
      } else {
        route.kind = HandleRoute::kReopen;
        route.stale = token;
      }
      return route;
    }
    if (h.lost_errno != 0 || StaleLocked(h)) {
      if (ends) {
        // Nothing of it is left in the backend to release.
        RetireLocked(it);
        route.kind = HandleRoute::kAnswer;
        return route;
      }
      if (h.lost_errno != 0) {
        route.kind = HandleRoute::kAnswer;
        route.posix_errno = h.lost_errno;
      } else {
        route.kind = HandleRoute::kReopen;
        route.stale = token;
      }
      return route;
    }
    resolved.fh[i] = h.fh;
    instance = h.instance;
  }
  if (ends && route.tokens.count > 0) {
    RetireLocked(handles_.find(route.tokens.fh[0]));
  }
  SetHandles(op, resolved);
  op->set_handle_instance(instance);
  return route;
}

bool HandleMap::ReopenOp(uint64_t token, const std::string& path,
                         int64_t deadline_unix_ms, v1::Op* op) const {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return false;
  const Handle& h = it->second;
  op->Clear();
  *op->mutable_caller() = h.caller;
  op->set_deadline_unix_ms(deadline_unix_ms);
  if (h.dir) {
    op->mutable_opendir()->set_path(path);
    op->mutable_opendir()->set_flags(h.flags);
  } else {
    // Reopening must never create, or empty, the file again.
    op->mutable_open()->set_path(path);
    op->mutable_open()->set_flags(h.flags & ~(O_CREAT | O_EXCL | O_TRUNC));
  }
  return true;
}

void HandleMap::Adopt(uint64_t token, uint64_t from) {
  absl::MutexLock lock(&mu_);
  auto to = handles_.find(token);
  auto it = handles_.find(from);
  if (it == handles_.end() || token == from) return;
  if (to == handles_.end()) {
    // Released in the message that created it: the backend closed it.
    RetireLocked(it);
    return;
  }
  Handle& h = to->second;
  h.fh = it->second.fh;
  h.instance = it->second.instance;
  h.unopened = false;
  if (changes_ != nullptr) changes_->Reopened(token, h.fh, h.instance);
  RetireLocked(it);
}

void HandleMap::Reopened(uint64_t token, uint64_t fh, uint64_t instance) {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return;  // released meanwhile
  Handle& h = it->second;
  h.fh = fh;
  h.instance = instance;
  h.unopened = false;
  if (changes_ != nullptr) changes_->Reopened(token, fh, instance);
  if (h.unsynced) {
    h.unproven = true;
    h.unsynced = false;
  }
}

void HandleMap::Lose(uint64_t token, int posix_errno) {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return;
  it->second.lost_errno = posix_errno;
  // Nothing is to be opened any more: its ops fail.
  it->second.unopened = false;
  if (changes_ != nullptr) changes_->Lost(token, posix_errno);
}

HandleMap::Saved HandleMap::SavedOf(uint64_t token, const Handle& h) {
  Saved s;
  static_cast<TokenState&>(s) = h;
  s.token = token;
  return s;
}

void HandleMap::RetireLocked(
    absl::flat_hash_map<uint64_t, Handle>::iterator it) {
  if (changes_ != nullptr) changes_->Retired(it->first);
  handles_.erase(it);
}

void HandleMap::SetChanges(Changes* changes) {
  absl::MutexLock lock(&mu_);
  changes_ = changes;
}

void HandleMap::Restore(const Saved& s) {
  absl::MutexLock lock(&mu_);
  static_cast<TokenState&>(handles_[s.token]) = s;
  next_ = std::max(next_, s.token + 1);
}

void HandleMap::RestoreRetired(uint64_t token) {
  absl::MutexLock lock(&mu_);
  handles_.erase(token);
  next_ = std::max(next_, token + 1);
}

void HandleMap::RestoreReopened(uint64_t token, uint64_t fh,
                                uint64_t instance) {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return;
  it->second.fh = fh;
  it->second.instance = instance;
  it->second.unopened = false;
}

void HandleMap::RestoreLost(uint64_t token, int posix_errno) {
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return;
  it->second.lost_errno = posix_errno;
  it->second.unopened = false;
}

void HandleMap::RestoreInstance(uint64_t instance) {
  absl::MutexLock lock(&mu_);
  current_ = instance;
}

void HandleMap::RestoreNextToken(uint64_t next_token) {
  absl::MutexLock lock(&mu_);
  next_ = std::max(next_, next_token);
}

void HandleMap::Snapshot(
    absl::FunctionRef<void(uint64_t, uint64_t, const std::vector<Saved>&)>
        with) const {
  absl::MutexLock lock(&mu_);
  std::vector<Saved> tokens;
  tokens.reserve(handles_.size());
  for (const auto& [token, h] : handles_) tokens.push_back(SavedOf(token, h));
  with(current_, next_, tokens);
}

void HandleMap::NoteResult(const v1::Op& op, const OpHandles& tokens,
                           v1::OpResult* r) {
  const bool writes = op.has_write() || op.has_copy_file_range() ||
                      op.has_fallocate();
  if (tokens.count == 0 || !(writes || op.has_fsync())) return;
  const uint64_t token = op.has_copy_file_range() ? tokens.fh[1] : tokens.fh[0];
  absl::MutexLock lock(&mu_);
  auto it = handles_.find(token);
  if (it == handles_.end()) return;
  Handle& h = it->second;
  if (writes) {
    if (r->posix_errno() == 0) h.unsynced = true;
    return;
  }
  if (h.unproven) {
    // Reported once, as a failed writeback is.
    h.unproven = false;
    h.unsynced = false;
    if (r->posix_errno() == 0) *r = ErrorResult(r->id(), EIO);
    return;
  }
  if (r->posix_errno() == 0) h.unsynced = false;
}

}  // namespace fusehost
