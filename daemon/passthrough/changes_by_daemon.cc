#include "daemon/passthrough/changes_by_daemon.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <utility>

#include "common/paths.h"
#include "common/stat_convert.h"
#include "daemon/passthrough/caller_identity.h"

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

// The paths a change the daemon may make itself changes: the file, and for
// a name made or removed its directory. None for any other op.
std::vector<std::string> PathsChanged(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kChmod:
      return {op.chmod().path()};
    case v1::Op::kChown:
      return {op.chown().path()};
    case v1::Op::kUtimens:
      return {op.utimens().path()};
    case v1::Op::kUnlink:
      return {op.unlink().path(), ParentPath(op.unlink().path())};
    case v1::Op::kRmdir:
      return {op.rmdir().path(), ParentPath(op.rmdir().path())};
    case v1::Op::kCreate:
      return {op.create().path(), ParentPath(op.create().path())};
    default:
      return {};
  }
}

}  // namespace

ChangesByDaemon::ChangesByDaemon(Options options)
    : options_(std::move(options)) {}

bool ChangesByDaemon::MakeHere(const v1::Op& op, v1::OpResult* result) {
  if (options_.root == nullptr || options_.cache == nullptr) return false;
  if (op.has_create())
    return CreateHere(op, UserIdentityOf(op.caller()), result);
  const bool removal = op.has_unlink() || op.has_rmdir();
  AttributeChange change;
  const std::string* path = nullptr;
  if (removal) {
    // (A removal must not pass what write-behind still holds for the name
    // or those below it: see queued_at below.)
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
  const UserIdentity caller = UserIdentityOf(op.caller());
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

bool ChangesByDaemon::CreateHere(const v1::Op& op, const UserIdentity& caller,
                                 v1::OpResult* result) {
  const v1::CreateRequest& c = op.create();
  // Without a tag the descriptor could not reach the open's reply.
  if (options_.handles == nullptr || options_.inbox == nullptr ||
      c.passthrough_tag() == 0) {
    return false;
  }
  // A change answered early (write_behind) of the name or a directory
  // above it comes first.
  if (options_.queued_at && options_.queued_at(c.path())) return false;
  struct stat st;
  std::optional<struct stat> parent_after;
  UniqueFd file =
      options_.root->Create(c.path(), caller, static_cast<int>(c.flags()),
                            static_cast<mode_t>(c.mode()), &st, &parent_after);
  if (!file.valid()) return false;
  result->set_id(op.id());
  v1::CreateReply* created = result->mutable_create();
  StatToProto(st, created->mutable_attr());
  if (parent_after) StatToProto(*parent_after, result->mutable_parent_attr());
  v1::OpenReply* open = created->mutable_open();
  open->set_fh(options_.handles->IssueUnopened(c.flags(), op.caller()));
  open->set_noflush(!options_.backend_posix_locks);
  open->set_passthrough(true);
  options_.inbox->Put(c.passthrough_tag(), std::move(file));
  Remember(c.path(), /*removed=*/false);
  Remember(ParentPath(c.path()), /*removed=*/false);
  return true;
}

void ChangesByDaemon::Begin(const std::vector<std::string>& paths) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  TrimLocked(now);
  for (const std::string& path : paths) {
    Recent& r = recent_[path];
    if (r.in_progress == 0 && now - r.when > kRecent) r.removed = false;
    r.when = now;
    ++r.in_progress;
  }
}

void ChangesByDaemon::End(const std::vector<std::string>& paths) {
  absl::MutexLock lock(&mu_);
  for (const std::string& path : paths) {
    auto it = recent_.find(path);
    if (it != recent_.end() && it->second.in_progress > 0) {
      --it->second.in_progress;
    }
  }
}

void ChangesByDaemon::TrimLocked(absl::Time now) {
  if (recent_.size() < kMaxRecent) return;
  // Never one whose change is under way (its End must find it) or whose
  // notices are parked (they wait for it).
  const auto idle = [](const Recent& r) {
    return r.in_progress == 0 && r.parked == 0;
  };
  absl::erase_if(recent_, [now, &idle](const auto& entry) {
    return idle(entry.second) && now - entry.second.when > kRecent;
  });
  if (recent_.size() >= kMaxRecent) {
    absl::erase_if(recent_,
                   [&idle](const auto& entry) { return idle(entry.second); });
  }
}

void ChangesByDaemon::Remember(const std::string& path, bool removed) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  TrimLocked(now);
  Recent& r = recent_[path];
  r.when = now;
  r.removed = removed;
}

bool ChangesByDaemon::NoNews(const v1::Invalidation& notice) {
  if (notice.kind() == v1::Invalidation::SUBTREE ||
      options_.root == nullptr || options_.cache == nullptr) {
    return false;
  }
  const std::string& path = notice.path();
  Recent did;
  {
    absl::MutexLock lock(&mu_);
    auto it = recent_.find(path);
    if (it == recent_.end() || absl::Now() - it->second.when > kRecent) {
      return false;
    }
    did = it->second;
  }
  struct stat now;
  const bool exists = options_.root->Stat(path, &now);
  // A name the daemon removed, still gone (the cache knows it is), whatever
  // the notice says happened to it before: a change inside a directory
  // reported after the daemon removed the directory as well. A file it
  // only changed and someone else removed is news.
  if (notice.kind() == v1::Invalidation::REMOVED || !exists) {
    return did.removed && !exists;
  }
  v1::Attr known;
  if (options_.cache->GetAttr(path, &known) !=
      MetadataCache::AttrLookup::kHit) {
    return false;
  }
  v1::Attr host;
  StatToProto(now, &host);
  if (host.ino() != known.ino() || host.mode() != known.mode() ||
      host.uid() != known.uid() || host.gid() != known.gid()) {
    return false;
  }
  // A directory's times, size and links change with the names made and
  // removed in it, and a name that anyone else makes or removes there has
  // a notice of its own (which is news, and drops the directory's listing
  // and attributes as well).
  if (S_ISDIR(now.st_mode)) return true;
  // A file written through a backing descriptor the daemon holds: its
  // size and times are taken from that descriptor (which sees every
  // change of the inode, from anywhere) whenever they are asked for.
  if (options_.written_through && options_.written_through(path)) return true;
  return host.size() == known.size() && host.nlink() == known.nlink() &&
         host.mtime().sec() == known.mtime().sec() &&
         host.mtime().nsec() == known.mtime().nsec() &&
         host.ctime().sec() == known.ctime().sec() &&
         host.ctime().nsec() == known.ctime().nsec();
}

ChangesByDaemon::~ChangesByDaemon() { StopFiltering(); }

void ChangesByDaemon::Filter(v1::Invalidation notice, Apply apply) {
  {
    absl::MutexLock lock(&mu_);
    auto it = recent_.find(notice.path());
    if (!stopping_ && it != recent_.end() &&
        (it->second.in_progress > 0 || it->second.parked > 0)) {
      ++it->second.parked;
      parked_.push_back(Parked{std::move(notice), std::move(apply)});
      if (!judge_.joinable()) judge_ = std::thread([this] { JudgeParked(); });
      return;
    }
  }
  if (!NoNews(notice)) apply(notice);
}

void ChangesByDaemon::JudgeParked() {
  // The first parked notice is judged once its path's changes have ended
  // (the caches have their answers); the rest wait behind it.
  const auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return true;
    if (parked_.empty()) return false;
    auto it = recent_.find(parked_.front().notice.path());
    return it == recent_.end() || it->second.in_progress == 0;
  };
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(&ready));
    if (stopping_) return;
    Parked next = std::move(parked_.front());
    parked_.pop_front();
    auto it = recent_.find(next.notice.path());
    if (it != recent_.end() && it->second.parked > 0) --it->second.parked;
    mu_.Unlock();
    if (!NoNews(next.notice)) next.apply(next.notice);
    mu_.Lock();
  }
}

void ChangesByDaemon::StopFiltering() {
  std::thread judge;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    judge = std::move(judge_);
  }
  if (judge.joinable()) judge.join();
  absl::MutexLock lock(&mu_);
  for (const Parked& p : parked_) {
    auto it = recent_.find(p.notice.path());
    if (it != recent_.end() && it->second.parked > 0) --it->second.parked;
  }
  parked_.clear();
}

bool ChangesByDaemon::LookUpHere(const v1::Op& op, const Done& done) {
  const v1::GetattrRequest& g = op.getattr();
  // Through a handle (fstat of a file that may have lost its name) the
  // backend answers, and a change write-behind holds for the path must
  // reach the backend before the file beneath shows it.
  if (options_.root == nullptr || g.has_fh() || g.path().empty() ||
      (options_.queued_at && options_.queued_at(g.path()))) {
    return false;
  }
  struct stat st;
  const RootDirectory::Found found =
      options_.root->LookUp(g.path(), UserIdentityOf(op.caller()), &st);
  if (found == RootDirectory::Found::kDeclined) return false;
  v1::OpResult result;
  result.set_id(op.id());
  if (found == RootDirectory::Found::kAbsent) {
    result.set_posix_errno(ENOENT);
  } else {
    StatToProto(st, result.mutable_getattr()->mutable_attr());
  }
  done(result);
  return true;
}

void ChangesByDaemon::Send(v1::Op op, Done done) {
  if (op.has_getattr() && LookUpHere(op, done)) return;
  std::vector<std::string> paths = PathsChanged(op);
  if (paths.empty() || options_.root == nullptr || options_.cache == nullptr) {
    options_.next->Send(std::move(op), std::move(done));
    return;
  }
  Begin(paths);
  v1::OpResult result;
  const bool here = MakeHere(op, &result);
  // The caches take the answer before the change's notices are judged.
  if (here) done(result);
  End(paths);
  if (here) return;
  // Write-behind would answer a change of times early from the cached
  // attributes: a write through the backing file after that answer would
  // reach the file before the change it follows. Without them it waits.
  if (op.has_utimens() && options_.queued_at && options_.written_through &&
      options_.written_through(op.utimens().path())) {
    options_.cache->DropAttr(op.utimens().path());
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
