#include "daemon/pipeline/write_behind.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "common/log_line.h"
#include "common/paths.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace fusehost {
namespace {

// Times a directory's default ACL is asked for in a row, while its answer
// comes back to a cache that changed meanwhile.
constexpr int kAclTries = 4;

// Ops of one message, at most: what a message of the batcher holds. Also
// what the pace calls a full message.
constexpr size_t kMaxOpsPerMessage = 64;
// To a backend that runs messages in order, ops of one message at most: as
// many as may be queued (WriteBehind::Options::max_queued's default). With
// one message in flight, a backend behind a slow link would otherwise take
// the queue 64 ops a round trip: an untar at 10 ms made 512 messages, and
// the changes that found the queue full waited a round trip each. Nothing
// is lost locally, where messages seldom fill (a message's ops run one after
// another at the backend in either case).
constexpr size_t kMaxOpsInOrder = 1024;
// Write data in one message, at most (its first op goes whatever its size):
// well within the channel's message limit (64 MiB), whatever max_write is.
constexpr size_t kMaxWriteBytesPerMessage = 16 << 20;
// Queued ops looked at for one message: an op may overtake earlier ones
// that touch nothing it touches.
constexpr size_t kLookAhead = 256;
// Failures logged one by one per mount; the rest are only counted.
constexpr uint64_t kFailuresLogged = 20;

// `below` lies beneath `dir`.
bool Related(const std::string& a, const std::string& b) {
  return a == b || IsBelow(a, b) || IsBelow(b, a);
}

bool IsDeferrable(const v1::Op& op) {
  return op.has_chmod() || op.has_chown() || op.has_utimens() ||
         op.has_unlink() || op.has_rmdir() || op.has_rename();
}

// Ops that change nothing a later early answer is computed from.
bool ReadsOnly(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kGetattr:
    case v1::Op::kReadlink:
    case v1::Op::kRead:
    case v1::Op::kOpendir:
    case v1::Op::kReaddir:
    case v1::Op::kStatfs:
    case v1::Op::kGetxattr:
    case v1::Op::kListxattr:
    case v1::Op::kAccess:
    case v1::Op::kLseek:
    case v1::Op::kRelease:
    case v1::Op::kReleasedir:
    case v1::Op::kFlush:
    case v1::Op::OP_NOT_SET:  // a Settle() waiting in the queue
      return true;
    default:
      return false;
  }
}

// The error of a deferred op that is no failure: a backend without flush
// has nothing to write back at a close (the kernel would stop asking).
int IgnoredErrno(const v1::Op& op) { return op.has_flush() ? ENOSYS : 0; }

}  // namespace

bool WriteBehind::Clash(const Keys& a, const Keys& b) {
  for (uint64_t h : a.handles) {
    for (uint64_t other : b.handles) {
      if (h == other) return true;
    }
  }
  for (const std::string& p : a.paths) {
    for (const std::string& other : b.paths) {
      if (Related(p, other)) return true;
    }
  }
  return false;
}

WriteBehind::WriteBehind(Options options)
    : options_(std::move(options)), in_order_(options_.in_order) {
  if (options_.linger > absl::ZeroDuration()) {
    pacer_ = std::thread([this] { Pace(); });
  }
}

WriteBehind::~WriteBehind() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (pacer_.joinable()) pacer_.join();
}

void WriteBehind::Pace() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    // Sleeps until pace_at_ (re-armed whenever it changes) or stopping.
    const absl::Time armed = pace_at_;
    const auto changed = [this, armed]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || pace_at_ != armed;
    };
    if (mu_.AwaitWithDeadline(absl::Condition(&changed), armed)) {
      if (stopping_) return;
      continue;
    }
    pace_at_ = absl::InfiniteFuture();
    mu_.Unlock();
    Pump();
    mu_.Lock();
  }
}

bool WriteBehind::LingerLocked(absl::Time* until) const {
  if (options_.linger <= absl::ZeroDuration() || queue_.empty() ||
      deferred_queued_ >= kMaxOpsPerMessage || deferred_queued_ != pending_) {
    return false;
  }
  // Only changes answered early, which nobody waits for, are queued (a
  // Settle or a kernel request queued behind them counts in pending_ but
  // not in deferred_queued_).
  *until = queue_.front().queued_at + options_.linger;
  return absl::Now() < *until;
}

WriteBehind::Keys WriteBehind::KeysOf(const v1::Op& op) {
  namespace pb = google::protobuf;
  Keys keys;
  keys.barrier = op.has_fsync() || op.has_fsyncdir();
  const pb::OneofDescriptor* oneof = op.GetDescriptor()->FindOneofByName("op");
  const pb::FieldDescriptor* field =
      op.GetReflection()->GetOneofFieldDescriptor(op, oneof);
  if (field == nullptr) return keys;
  const pb::Message& request = op.GetReflection()->GetMessage(op, field);
  const pb::Descriptor* d = request.GetDescriptor();
  const pb::Reflection* r = request.GetReflection();
  // Every request names what it acts on in fields called so (symlink's
  // `target` is not a path of the mount).
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    const std::string& name = f->name();
    if (f->type() == pb::FieldDescriptor::TYPE_BYTES &&
        (name == "path" || name == "old_path" || name == "new_path" ||
         name == "path_in" || name == "path_out")) {
      std::string path = r->GetString(request, f);
      if (!path.empty()) keys.paths.push_back(std::move(path));
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_UINT64 &&
               (name == "fh" || name == "fh_in" || name == "fh_out")) {
      const bool set = f->has_presence() ? r->HasField(request, f)
                                         : r->GetUInt64(request, f) != 0;
      if (set) keys.handles.push_back(r->GetUInt64(request, f));
    }
  }
  return keys;
}

bool WriteBehind::Touched::Conflicts(const Keys& keys) const {
  if (ops == 0) return false;
  if (keys.barrier) return true;
  for (uint64_t h : keys.handles) {
    if (handles.contains(h)) return true;
  }
  for (const std::string& p : keys.paths) {
    // The path itself, or one above it.
    for (std::string up = p;; up = ParentPath(up)) {
      if (paths.count(up) != 0) return true;
      if (up == "/") break;
    }
    // One below it.
    if (p == "/") return !paths.empty();
    auto it = paths.lower_bound(p + "/");
    if (it != paths.end() && IsBelow(it->first, p)) return true;
  }
  return false;
}

void WriteBehind::Touched::Add(const Keys& keys, int delta) {
  ops += delta;
  for (const std::string& p : keys.paths) {
    int& n = paths[p];
    n += delta;
    if (n == 0) paths.erase(p);
  }
  for (uint64_t h : keys.handles) {
    int& n = handles[h];
    n += delta;
    if (n == 0) handles.erase(h);
  }
}

void WriteBehind::IndexLocked(const Keys& keys, int delta, bool changing) {
  all_.Add(keys, delta);
  if (changing) waiting_.Add(keys, delta);
}

OpTransport::Done WriteBehind::Deferred(const v1::Op& op) {
  Keys keys = KeysOf(op);
  std::vector<std::string> paths = keys.paths;
  // An unlink or rmdir answered early also changed its directory.
  if (op.has_unlink()) paths.push_back(ParentPath(op.unlink().path()));
  if (op.has_rmdir()) paths.push_back(ParentPath(op.rmdir().path()));
  // A create answered early made its directory show the name.
  if (op.has_create()) paths.push_back(ParentPath(op.create().path()));
  // A rename answered early moved a name out of one directory into
  // another (or the same).
  if (op.has_rename()) {
    paths.push_back(ParentPath(op.rename().old_path()));
    if (ParentPath(op.rename().new_path()) != paths.back()) {
      paths.push_back(ParentPath(op.rename().new_path()));
    }
  }
  if (op.has_release()) return [](const v1::OpResult&) {};
  const char* what = op.has_unlink()   ? "unlink"
                     : op.has_rmdir()  ? "rmdir"
                     : op.has_rename() ? "rename"
                     : op.has_chmod()  ? "chmod"
                     : op.has_chown()  ? "chown"
                     : op.has_create() ? "create"
                     : op.has_write()  ? "write"
                     : op.has_flush()  ? "flush"
                                       : "utimens";
  const int ignored = IgnoredErrno(op);
  return [this, paths = std::move(paths), what,
          ignored](const v1::OpResult& result) {
    const int err = result.posix_errno();
    if (err == 0 || err == ignored) return;
    // The error itself was recorded for the next fsync with the op's end
    // (Pump), under the same lock.
    const uint64_t n = ++failed_;
    if (n <= kFailuresLogged) {
      Log("%s: write-behind: %s of %s failed at the backend: %s%s",
          options_.log_name.c_str(), what,
          paths.empty() ? "?" : paths.front().c_str(), std::strerror(err),
          n == kFailuresLogged ? " (further failures are only counted)" : "");
    }
    if (options_.on_failure) options_.on_failure(paths);
  };
}

int WriteBehind::TakeErrorLocked() {
  int err = 0;
  std::swap(err, unreported_errno_);
  return err;
}

OpTransport::Done WriteBehind::Syncing(const v1::Op& op, Done done) {
  std::atomic<bool>* unsupported = op.has_fsync() ? &no_fsync_ : &no_fsyncdir_;
  return [this, unsupported, done = std::move(done)](
             const v1::OpResult& result) {
    int own = result.posix_errno();
    if (own == ENOSYS) {
      // Nothing to sync at the backend; what counts is that the queue is
      // through.
      unsupported->store(true);
      own = 0;
    }
    int err = 0;
    {
      absl::MutexLock lock(&mu_);
      err = TakeErrorLocked();
      // The sync's own error goes first; the other waits for the next.
      if (err != 0 && own != 0) std::swap(err, unreported_errno_);
    }
    if (own != 0) {
      done(result);
    } else if (err != 0) {
      done(ErrorResult(result.id(), err));
    } else {
      v1::OpResult ok = result;
      ok.set_posix_errno(0);
      done(ok);
    }
  };
}

void WriteBehind::Settle(std::function<void(int)> then) {
  int err = 0;
  {
    absl::MutexLock lock(&mu_);
    if (pending_ != 0) {
      Keys keys;
      keys.barrier = true;
      QueueLocked(PendingOp{}, std::move(keys), /*deferred=*/false);
      queue_.back().settled = std::move(then);
      then = nullptr;
    } else {
      err = TakeErrorLocked();
    }
  }
  if (then) {
    then(err);
  } else {
    Pump();
  }
}

void WriteBehind::Send(v1::Op op, Done done) {
  if (op.has_fsync() || op.has_fsyncdir()) {
    if ((op.has_fsync() ? no_fsync_ : no_fsyncdir_).load()) {
      // The backend has no fsync: waiting for the queue is all there is.
      Settle([id = op.id(), done = std::move(done)](int err) {
        v1::OpResult result = ErrorResult(id, err);
        if (err == 0) result.mutable_empty();
        done(result);
      });
      return;
    }
    done = Syncing(op, std::move(done));
  }
  enum { kForward, kQueued, kAnswered } how = kForward;
  v1::OpResult early;
  std::string ask_acl;
  v1::Caller caller;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t released = op.has_release() ? op.release().fh() : 0;
    if ((op.has_create() || op.has_mkdir()) && options_.posix_acl) {
      caller = op.caller();
    }
    // A directory made where the default ACL is known gets it known too
    // (CachingTransport: none where its parent has none), and creates in it
    // are answered early from the first: asked now, while the mkdir goes.
    if (op.has_mkdir() && options_.posix_acl) {
      const std::string parent = ParentPath(op.mkdir().path());
      std::string value;
      if (options_.cache->GetXattr(parent, MetadataCache::kDefaultAclXattr,
                                   &value) ==
          MetadataCache::AttrLookup::kMiss) {
        AskDefaultAclLaterLocked(parent);
      }
    }
    const bool deferrable =
        IsDeferrable(op) || (op.has_create() && options_.handles != nullptr) ||
        (!created_.empty() &&
         (op.has_write() || op.has_flush() || op.has_release()));
    // The common case of reads, nothing queued: no keys to work out.
    if (pending_ != 0 || deferrable) {
      Keys keys = KeysOf(op);
      if (deferrable && deferred_queued_ < options_.max_queued &&
          !waiting_.Conflicts(keys) && Answer(op, &early)) {
        how = kAnswered;
        early.set_id(op.id());
        // It serves no kernel request any more: no deadline to miss.
        op.set_deadline_unix_ms(0);
        uint64_t created = 0;
        if (op.has_create()) {
          // The backend makes the file as the kernel asked, and hands no
          // descriptor over: the file is not passed through.
          created = early.create().open().fh();
          keys.handles.push_back(created);
          op.mutable_create()->set_passthrough_tag(0);
        }
        const size_t bytes = op.has_write() ? op.write().data().size() : 0;
        const bool reports = !op.has_release();
        const int ignored = IgnoredErrno(op);
        Done deferred = Deferred(op);
        ++deferred_queued_;
        deferred_bytes_ += bytes;
        ++deferred_;
        QueueLocked(PendingOp{std::move(op), std::move(deferred), nullptr},
                    std::move(keys), /*deferred=*/true);
        queue_.back().created = created;
        queue_.back().bytes = bytes;
        queue_.back().reports = reports;
        queue_.back().ignored_errno = ignored;
      } else if (ConflictsLocked(keys)) {
        how = kQueued;
        QueueLocked(PendingOp{std::move(op), std::move(done), nullptr},
                    std::move(keys), /*deferred=*/false);
      }
    }
    if (released != 0) created_.erase(released);
    ask_acl.swap(acl_unknown_);
  }
  // Asked before the create goes on: the answer is kept only if it comes
  // back before the create's changes the cache.
  if (!ask_acl.empty()) AskDefaultAcl(ask_acl, caller, kAclTries);
  if (how == kForward) {
    options_.next->Send(std::move(op), std::move(done));
    return;
  }
  if (how == kAnswered) done(early);
  Pump();
}

void WriteBehind::QueueLocked(PendingOp op, Keys keys, bool deferred) {
  const bool changing = !deferred && !ReadsOnly(op.op);
  IndexLocked(keys, +1, changing);
  ++pending_;
  queue_.push_back(Queued{std::move(op), std::move(keys), deferred, changing});
  // Only the pace reads it (LingerLocked).
  if (options_.linger > absl::ZeroDuration()) {
    queue_.back().queued_at = absl::Now();
  }
}

void WriteBehind::SendAll(std::vector<PendingOp> ops) {
  std::vector<PendingOp> go_on;
  for (PendingOp& p : ops) {
    bool queued = false;
    {
      absl::MutexLock lock(&mu_);
      if (pending_ != 0 && !IsDeferrable(p.op)) {
        Keys keys = KeysOf(p.op);
        if (ConflictsLocked(keys)) {
          QueueLocked(std::move(p), std::move(keys), /*deferred=*/false);
          queued = true;
        }
      }
    }
    if (queued) continue;
    if (IsDeferrable(p.op)) {
      Send(std::move(p.op), std::move(p.done));
    } else {
      go_on.push_back(std::move(p));
    }
  }
  if (!go_on.empty()) options_.next->SendAll(std::move(go_on));
  Pump();
}

void WriteBehind::Pump() {
  std::vector<PendingOp> message;
  bool in_order = false;
  // Settle()s reached, with the error each reports.
  std::vector<std::pair<std::function<void(int)>, int>> settled;
  {
    absl::MutexLock lock(&mu_);
    if (in_flight_) return;
    absl::Time until;
    if (LingerLocked(&until)) {
      // The pacer sends it then, or whoever queues the op that fills it
      // (or that someone waits for) sends it before.
      pace_at_ = std::min(pace_at_, until);
      return;
    }
    in_order = in_order_.load();
    // Ops on a file created early may follow its create in the message.
    const bool creates_share = in_order &&
                               options_.takes_handles_from_earlier_ops &&
                               options_.takes_handles_from_earlier_ops();
    while (!queue_.empty() && queue_.front().settled) {
      IndexLocked(queue_.front().keys, -1, queue_.front().changing);
      --pending_;
      settled.emplace_back(std::move(queue_.front().settled),
                           TakeErrorLocked());
      queue_.pop_front();
    }
    // Ops that stay queued ahead of those looked at, and those taken: an op
    // may go only if it touches none of them.
    std::vector<const Keys*> ahead;
    auto remaining = std::make_shared<size_t>(0);
    // In order, nothing is passed over (so no clash is looked for).
    const size_t max_ops = in_order ? kMaxOpsInOrder : kMaxOpsPerMessage;
    const size_t look_ahead = in_order ? kMaxOpsInOrder : kLookAhead;
    size_t looked = 0;
    size_t write_bytes = 0;
    bool message_deferred = false;
    for (auto it = queue_.begin();
         it != queue_.end() && message.size() < max_ops && looked < look_ahead;
         ++looked) {
      Queued& q = *it;
      // A Settle() waits for what is before it, sent or not.
      if (q.settled) break;
      // Changes answered early and kernel requests that waited behind them
      // go in messages of their own: a message's deadline is its earliest
      // op's, and a request that waited long must not cut short the
      // changes (nor they hold the request past its own).
      if (!message.empty() && q.deferred != message_deferred) break;
      message_deferred = q.deferred;
      // A backend that runs the message in order keeps the queue's order
      // itself: everything goes as it came.
      if (!in_order) {
        // fsync, fsyncdir: alone, after everything before them.
        if (q.keys.barrier && !ahead.empty()) break;
        bool clash = false;
        for (const Keys* a : ahead) clash = clash || Clash(*a, q.keys);
        if (clash) {
          ahead.push_back(&q.keys);
          ++it;
          continue;
        }
      }
      const size_t op_bytes =
          q.op.op.has_write() ? q.op.op.write().data().size() : 0;
      if (op_bytes > 0 && !message.empty() &&
          write_bytes + op_bytes > kMaxWriteBytesPerMessage) {
        break;
      }
      write_bytes += op_bytes;
      const bool barrier = q.keys.barrier;
      // A create answered early ends its message, unless the backend fills
      // its handle into the ops after it that carry its token: they need
      // the handle its answer brings.
      const bool ends_message = q.created != 0 && !creates_share;
      const uint64_t creates_token = creates_share ? q.created : 0;
      auto keys = std::make_shared<Keys>(std::move(q.keys));
      ahead.push_back(keys.get());
      message.push_back(PendingOp{
          std::move(q.op.op),
          [this, keys, remaining, deferred = q.deferred, changing = q.changing,
           created = q.created, bytes = q.bytes, reports = q.reports,
           ignored = q.ignored_errno,
           done = std::move(q.op.done)](const v1::OpResult& result) {
            // Bound before the next message can carry its token.
            if (created != 0) Created(created, result);
            bool last = false;
            {
              absl::MutexLock lock(&mu_);
              // Recorded before the op stops counting as pending, so that
              // an fsync that finds the queue empty finds its error too.
              if (deferred && reports && result.posix_errno() != 0 &&
                  result.posix_errno() != ignored && unreported_errno_ == 0) {
                unreported_errno_ = result.posix_errno();
              }
              IndexLocked(*keys, -1, changing);
              --pending_;
              deferred_bytes_ -= bytes;
              if (deferred) --deferred_queued_;
              last = --*remaining == 0;
              if (last) in_flight_ = false;
            }
            done(result);
            if (last) Pump();
          },
          std::move(q.op.check), creates_token});
      it = queue_.erase(it);
      if (barrier && !in_order) break;
      if (ends_message) break;
    }
    *remaining = message.size();
    in_flight_ = !message.empty();
  }
  for (auto& [then, err] : settled) then(err);
  if (message.empty()) return;
  if (in_order) {
    options_.next->SendInOrder(std::move(message));
  } else {
    options_.next->SendAll(std::move(message));
  }
}

void WriteBehind::CancelAll() {
  std::list<Queued> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(queue_);
    for (Queued& q : dropped) {
      IndexLocked(q.keys, -1, q.changing);
      --pending_;
      deferred_bytes_ -= q.bytes;
      if (q.deferred) {
        --deferred_queued_;
        if (q.reports && unreported_errno_ == 0) unreported_errno_ = ECANCELED;
      }
    }
  }
  for (Queued& q : dropped) {
    if (q.created != 0) {
      Created(q.created, ErrorResult(q.op.op.id(), ECANCELED));
    }
    if (q.settled) {
      q.settled(ECANCELED);
    } else {
      q.op.done(ErrorResult(q.op.op.id(), ECANCELED));
    }
  }
  options_.next->CancelAll();
}

bool WriteBehind::Drain(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return pending_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void WriteBehind::WaitIdle() {
  Drain(absl::InfiniteFuture());
  options_.next->WaitIdle();
}

bool WriteBehind::Touches(const std::string& path) const {
  Keys keys;
  keys.paths.push_back(path);
  absl::MutexLock lock(&mu_);
  return ConflictsLocked(keys);
}

size_t WriteBehind::queued() const {
  absl::MutexLock lock(&mu_);
  return pending_;
}

}  // namespace fusehost
