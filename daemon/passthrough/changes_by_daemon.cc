#include "daemon/passthrough/changes_by_daemon.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <utility>

#include "common/paths.h"
#include "common/stat_convert.h"

namespace fusehost {
namespace {

// A TimeSet as utimensat(2) takes it; false for a kind this daemon does not
// know.
bool ToKernelTime(const v1::TimeSet& set, struct timespec* out) {
  switch (set.kind()) {
    case v1::TimeSet::OMIT:
      *out = {0, UTIME_OMIT};
      return true;
    case v1::TimeSet::NOW:
      *out = {0, UTIME_NOW};
      return true;
    case v1::TimeSet::SET:
      *out = TimespecFromProto(set.time());
      // Out of range would mean OMIT or NOW to the kernel.
      return out->tv_nsec >= 0 && out->tv_nsec < 1000000000;
    default:
      return false;
  }
}

// The change `op` asks for and the path it names; false for any other op.
bool ChangeOf(const v1::Op& op, AttributeChange* change,
              const std::string** path) {
  switch (op.op_case()) {
    case v1::Op::kChmod:
      change->mode = static_cast<mode_t>(op.chmod().mode() & 07777);
      *path = &op.chmod().path();
      return true;
    case v1::Op::kChown:
      if (op.chown().has_uid()) change->uid = op.chown().uid();
      if (op.chown().has_gid()) change->gid = op.chown().gid();
      *path = &op.chown().path();
      return true;
    case v1::Op::kUtimens:
      change->set_times = true;
      *path = &op.utimens().path();
      return ToKernelTime(op.utimens().atime(), &change->times[0]) &&
             ToKernelTime(op.utimens().mtime(), &change->times[1]);
    default:
      return false;
  }
}

}  // namespace

ChangesByDaemon::ChangesByDaemon(Options options)
    : options_(std::move(options)) {}

bool ChangesByDaemon::MakeHere(const v1::Op& op, v1::OpResult* result) {
  if (options_.root == nullptr || options_.cache == nullptr) return false;
  const bool removal = op.has_unlink() || op.has_rmdir();
  AttributeChange change;
  const std::string* path = nullptr;
  if (removal) {
    // Write-behind answers removals early itself, and a removal must not
    // pass what it still holds for the names below.
    if (options_.queued_at) return false;
    path = op.has_unlink() ? &op.unlink().path() : &op.rmdir().path();
  } else if (!ChangeOf(op, &change, &path)) {
    return false;
  }
  v1::Attr known;
  if (options_.cache->GetAttr(*path, &known) !=
      MetadataCache::AttrLookup::kHit) {
    return false;
  }
  if (options_.queued_at && options_.queued_at(*path)) return false;
  UserIdentity caller;
  caller.uid = op.caller().uid();
  caller.gid = op.caller().gid();
  caller.groups.assign(op.caller().groups().begin(),
                       op.caller().groups().end());
  if (removal) {
    std::optional<struct stat> parent;
    if (!options_.root->Remove(*path, caller, known.ino(), op.has_rmdir(),
                               &parent)) {
      return false;
    }
    result->set_id(op.id());
    if (parent) StatToProto(*parent, result->mutable_parent_attr());
    Remember(*path, /*removed=*/true);
    Remember(ParentPath(*path), /*removed=*/false);
    return true;
  }
  struct stat after;
  if (!options_.root->ChangeAttributes(*path, caller, known.ino(), change,
                                       &after)) {
    return false;
  }
  result->set_id(op.id());
  StatToProto(after, result->mutable_entry()->mutable_attr());
  Remember(*path, /*removed=*/false);
  return true;
}

void ChangesByDaemon::Remember(const std::string& path, bool removed) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (recent_.size() >= kMaxRecent) {
    absl::erase_if(recent_, [now](const auto& entry) {
      return now - entry.second.when > kRecent;
    });
    if (recent_.size() >= kMaxRecent) recent_.clear();
  }
  recent_[path] = Recent{now, removed};
}

bool ChangesByDaemon::NoNews(const v1::Invalidation& notice) {
  if (notice.kind() == v1::Invalidation::SUBTREE ||
      options_.root == nullptr || options_.cache == nullptr) {
    return false;
  }
  const std::string& path = notice.path();
  bool removed = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = recent_.find(path);
    if (it == recent_.end() || absl::Now() - it->second.when > kRecent) {
      return false;
    }
    removed = it->second.removed;
  }
  struct stat now;
  const bool exists = options_.root->Stat(path, &now);
  // A name the daemon removed, still gone (the cache knows it is). A file
  // it only changed and someone else removed is news.
  if (notice.kind() == v1::Invalidation::REMOVED) return removed && !exists;
  v1::Attr known;
  if (!exists || options_.cache->GetAttr(path, &known) !=
                     MetadataCache::AttrLookup::kHit) {
    return false;
  }
  v1::Attr host;
  StatToProto(now, &host);
  return host.ino() == known.ino() && host.mode() == known.mode() &&
         host.uid() == known.uid() && host.gid() == known.gid() &&
         host.size() == known.size() && host.nlink() == known.nlink() &&
         host.mtime().sec() == known.mtime().sec() &&
         host.mtime().nsec() == known.mtime().nsec() &&
         host.ctime().sec() == known.ctime().sec() &&
         host.ctime().nsec() == known.ctime().nsec();
}

void ChangesByDaemon::Send(v1::Op op, Done done) {
  v1::OpResult result;
  if (MakeHere(op, &result)) {
    done(result);
    return;
  }
  options_.next->Send(std::move(op), std::move(done));
}

void ChangesByDaemon::SendAll(std::vector<PendingOp> ops) {
  options_.next->SendAll(std::move(ops));
}

void ChangesByDaemon::SendInOrder(std::vector<PendingOp> ops) {
  options_.next->SendInOrder(std::move(ops));
}

void ChangesByDaemon::CancelAll() { options_.next->CancelAll(); }

void ChangesByDaemon::WaitIdle() { options_.next->WaitIdle(); }

}  // namespace fusehost
