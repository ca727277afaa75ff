#include "daemon/survival/mount_state.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"

namespace fusehost {
namespace {

constexpr char kKeyPrefix[] = "mount-";

state::Record NodeRecord(uint64_t id, uint64_t parent, const std::string& name,
                         uint64_t lookups) {
  state::Record r;
  state::NodeRef* n = r.mutable_node();
  n->set_id(id);
  n->set_parent(parent);
  n->set_name(name);
  n->set_lookups(lookups);
  return r;
}

state::Record HandleRecord(uint64_t id, uint64_t fh, bool open) {
  state::Record r;
  state::NodeHandle* h = r.mutable_node_handle();
  h->set_id(id);
  h->set_fh(fh);
  h->set_open(open);
  return r;
}

state::Record TokenRecord(const HandleMap::Saved& s) {
  state::Record r;
  state::Token* t = r.mutable_token();
  t->set_token(s.token);
  t->set_fh(s.fh);
  t->set_instance(s.instance);
  t->set_dir(s.dir);
  t->set_flags(s.flags);
  *t->mutable_caller() = s.caller;
  t->set_unopened(s.unopened);
  t->set_lost_errno(s.lost_errno);
  return r;
}

state::Record BackingRecord(uint64_t node, int32_t id) {
  state::Record r;
  r.mutable_backing()->set_node(node);
  r.mutable_backing()->set_backing_id(id);
  return r;
}

HandleMap::Saved SavedOf(const state::Token& t) {
  HandleMap::Saved s;
  s.token = t.token();
  s.fh = t.fh();
  s.instance = t.instance();
  s.dir = t.dir();
  s.flags = t.flags();
  s.caller = t.caller();
  s.unopened = t.unopened();
  s.lost_errno = t.lost_errno();
  return s;
}

}  // namespace

std::string KeptMountKey(uint64_t mount_id) {
  return absl::StrCat(kKeyPrefix, mount_id);
}

uint64_t MountIdOfKey(const std::string& key) {
  uint64_t id = 0;
  if (!absl::StartsWith(key, kKeyPrefix) ||
      !absl::SimpleAtoi(key.substr(sizeof(kKeyPrefix) - 1), &id)) {
    return 0;
  }
  return id;
}

absl::StatusOr<JournalHead> HeadOf(const std::vector<state::Record>& records) {
  if (records.empty() || !records.front().has_mount()) {
    return absl::DataLossError("the journal does not say which mount it is");
  }
  JournalHead head;
  head.mount = records.front().mount();
  for (const state::Record& r : records) {
    if (r.has_kernel_init()) head.kernel_init = r.kernel_init();
  }
  return head;
}

void ReplayJournal(const std::vector<state::Record>& records, NodeTable* nodes,
                   HandleMap* handles, BackingIds* backing) {
  for (const state::Record& r : records) {
    switch (r.change_case()) {
      case state::Record::kNode:
        nodes->Restore(r.node().id(), r.node().parent(), r.node().name(),
                       r.node().lookups());
        break;
      case state::Record::kForget:
        nodes->RestoreForget(r.forget().id(), r.forget().count());
        break;
      case state::Record::kRemove:
        nodes->Remove(r.remove().parent(), r.remove().name());
        break;
      case state::Record::kRename:
        nodes->Rename(r.rename().old_parent(), r.rename().old_name(),
                      r.rename().new_parent(), r.rename().new_name(),
                      r.rename().exchange());
        break;
      case state::Record::kNodeHandle:
        if (r.node_handle().open()) {
          nodes->AddOpenHandle(r.node_handle().id(), r.node_handle().fh());
        } else {
          nodes->RemoveOpenHandle(r.node_handle().id(), r.node_handle().fh());
        }
        break;
      case state::Record::kToken:
        handles->Restore(SavedOf(r.token()));
        break;
      case state::Record::kTokenRetired:
        handles->RestoreRetired(r.token_retired());
        break;
      case state::Record::kTokenReopened:
        handles->RestoreReopened(r.token_reopened().token(),
                                 r.token_reopened().fh(),
                                 r.token_reopened().instance());
        break;
      case state::Record::kTokenLost:
        handles->RestoreLost(r.token_lost().token(),
                             r.token_lost().posix_errno());
        break;
      case state::Record::kInstance:
        handles->RestoreInstance(r.instance());
        break;
      case state::Record::kNextNode:
        nodes->RestoreNextId(r.next_node());
        break;
      case state::Record::kNextToken:
        handles->RestoreNextToken(r.next_token());
        break;
      case state::Record::kBacking:
        if (backing == nullptr) break;
        if (r.backing().backing_id() > 0) {
          (*backing)[r.backing().node()] = r.backing().backing_id();
        } else {
          backing->erase(r.backing().node());
        }
        break;
      default:
        break;  // the mount and INIT: read by HeadOf
    }
  }
}

MountState::MountState(Options options)
    : options_(std::move(options)),
      key_(KeptMountKey(options_.mount.mount_id())) {
  {
    absl::MutexLock lock(&mu_);
    kernel_init_ = options_.kernel_init;
  }
  absl::MutexLock lock(&backing_mu_);
  backing_ = std::move(options_.backing);
}

absl::StatusOr<std::unique_ptr<MountState>> MountState::Start(
    Options options) {
  std::unique_ptr<MountState> s(new MountState(std::move(options)));
  absl::Status started = absl::OkStatus();
  s->options_.nodes->Snapshot([&](const std::vector<NodeTable::Saved>& nodes,
                                  uint64_t next_node) {
    s->options_.handles->Snapshot(
        [&](uint64_t instance, uint64_t next_token,
            const std::vector<HandleMap::Saved>& tokens) {
          absl::MutexLock backing_lock(&s->backing_mu_);
          absl::StatusOr<std::unique_ptr<MountJournal>> journal =
              MountJournal::Create(s->SnapshotLocked(
                  nodes, next_node, instance, next_token, tokens));
          if (!journal.ok()) {
            started = journal.status();
            return;
          }
          s->journal_ = *std::move(journal);
        });
  });
  if (!started.ok()) return started;
  started = s->Publish(s->journal_->fd());
  if (!started.ok()) return started;
  // Nothing changes the tables yet (see Start's contract), so no change
  // falls between the snapshot and the first one recorded.
  s->options_.nodes->SetChanges(s.get());
  s->options_.handles->SetChanges(s.get());
  s->compactor_ = std::thread([self = s.get()] { self->CompactorLoop(); });
  return s;
}

MountState::~MountState() {
  options_.nodes->SetChanges(nullptr);
  options_.handles->SetChanges(nullptr);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (compactor_.joinable()) compactor_.join();
}

absl::Status MountState::Publish(int journal_fd) {
  // Never after Release: a compaction that was under way when the mount
  // ended must not hand the store back what it gave up.
  absl::MutexLock lock(&store_mu_);
  if (released_) {
    return absl::FailedPreconditionError("the mount was given up");
  }
  return options_.store->Put(key_, {options_.fuse_fd, journal_fd});
}

void MountState::Release() {
  absl::MutexLock lock(&store_mu_);
  if (released_) return;
  released_ = true;
  absl::Status st = options_.store->Remove(key_);
  if (!st.ok()) {
    Log("%s: the descriptor store still holds the ended mount: %s",
        options_.mount.mountpoint().c_str(), std::string(st.message()).c_str());
  }
}

uint64_t MountState::compactions() const {
  absl::MutexLock lock(&mu_);
  return compactions_;
}

void MountState::KernelInitRead(std::string request) {
  state::Record r;
  r.set_kernel_init(request);
  {
    absl::MutexLock lock(&mu_);
    kernel_init_ = std::move(request);
  }
  journal_->Append(r);
}

std::vector<state::Record> MountState::SnapshotLocked(
    const std::vector<NodeTable::Saved>& nodes, uint64_t next_node,
    uint64_t instance, uint64_t next_token,
    const std::vector<HandleMap::Saved>& tokens) {
  std::vector<state::Record> records;
  records.reserve(3 + nodes.size() + tokens.size());
  records.emplace_back();
  *records.back().mutable_mount() = options_.mount;
  {
    absl::MutexLock lock(&mu_);
    if (!kernel_init_.empty()) {
      records.emplace_back();
      records.back().set_kernel_init(kernel_init_);
    }
  }
  if (instance != 0) {
    records.emplace_back();
    records.back().set_instance(instance);
  }
  records.emplace_back();
  records.back().set_next_node(next_node);
  records.emplace_back();
  records.back().set_next_token(next_token);
  for (const NodeTable::Saved& n : nodes) {
    records.push_back(NodeRecord(n.id, n.parent, n.name, n.lookups));
    for (uint64_t fh : n.open_handles) {
      records.push_back(HandleRecord(n.id, fh, /*open=*/true));
    }
  }
  for (const HandleMap::Saved& t : tokens) records.push_back(TokenRecord(t));
  for (const auto& [node, id] : backing_) {
    records.push_back(BackingRecord(node, id));
  }
  return records;
}

absl::Status MountState::Compact() {
  absl::Status done = absl::OkStatus();
  options_.nodes->Snapshot([&](const std::vector<NodeTable::Saved>& nodes,
                               uint64_t next_node) {
    options_.handles->Snapshot(
        [&](uint64_t instance, uint64_t next_token,
            const std::vector<HandleMap::Saved>& tokens) {
          absl::MutexLock backing_lock(&backing_mu_);
          done = journal_->Rewrite(
              SnapshotLocked(nodes, next_node, instance, next_token, tokens),
              [this](int fd) { return Publish(fd); });
        });
  });
  return done;
}

void MountState::CompactorLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || compaction_wanted_;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      compaction_wanted_ = false;
    }
    absl::Status st = Compact();
    absl::MutexLock lock(&mu_);
    if (st.ok()) {
      ++compactions_;
    } else {
      Log("%s: cannot compact the mount's state journal: %s",
          options_.mount.mountpoint().c_str(),
          std::string(st.message()).c_str());
    }
  }
}

void MountState::Append(const state::Record& record) {
  if (!journal_->Append(record)) {
    // What the store holds no longer tells the whole story: a daemon that
    // resumed from it would not know nodes the kernel holds.
    Release();
    return;
  }
  if (journal_->wants_compaction()) {
    absl::MutexLock lock(&mu_);
    compaction_wanted_ = true;
  }
}

void MountState::Referenced(uint64_t id, uint64_t parent,
                            const std::string& name) {
  Append(NodeRecord(id, parent, name, 1));
}

void MountState::Forgot(uint64_t id, uint64_t count) {
  state::Record r;
  r.mutable_forget()->set_id(id);
  r.mutable_forget()->set_count(count);
  Append(r);
}

void MountState::Removed(uint64_t parent, const std::string& name) {
  state::Record r;
  r.mutable_remove()->set_parent(parent);
  r.mutable_remove()->set_name(name);
  Append(r);
}

void MountState::Renamed(uint64_t old_parent, const std::string& old_name,
                         uint64_t new_parent, const std::string& new_name,
                         bool exchange) {
  state::Record r;
  state::NodeRename* n = r.mutable_rename();
  n->set_old_parent(old_parent);
  n->set_old_name(old_name);
  n->set_new_parent(new_parent);
  n->set_new_name(new_name);
  n->set_exchange(exchange);
  Append(r);
}

void MountState::BackingChanged(uint64_t node, int32_t id) {
  absl::MutexLock lock(&backing_mu_);
  if (id > 0) {
    backing_[node] = id;
  } else {
    backing_.erase(node);
  }
  Append(BackingRecord(node, id));
}

void MountState::HandleChanged(uint64_t id, uint64_t fh, bool open) {
  Append(HandleRecord(id, fh, open));
}

void MountState::Issued(const HandleMap::Saved& token) {
  Append(TokenRecord(token));
}

void MountState::Retired(uint64_t token) {
  state::Record r;
  r.set_token_retired(token);
  Append(r);
}

void MountState::Reopened(uint64_t token, uint64_t fh, uint64_t instance) {
  state::Record r;
  r.mutable_token_reopened()->set_token(token);
  r.mutable_token_reopened()->set_fh(fh);
  r.mutable_token_reopened()->set_instance(instance);
  Append(r);
}

void MountState::Lost(uint64_t token, int posix_errno) {
  state::Record r;
  r.mutable_token_lost()->set_token(token);
  r.mutable_token_lost()->set_posix_errno(posix_errno);
  Append(r);
}

void MountState::InstanceSeen(uint64_t instance) {
  state::Record r;
  r.set_instance(instance);
  Append(r);
}

}  // namespace fusehost
