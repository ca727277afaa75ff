#include "daemon/pipeline/batcher.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace fusehost {
namespace {

// The data an op carries to the backend or asks back from it.
size_t PayloadBytes(const v1::Op& op) {
  if (op.has_write()) return op.write().data().size();
  if (op.has_read()) return op.read().size();
  return 0;
}

// A listing fetched ahead of a walker (ListingPrefetcher): an opendir or a
// readdir that no kernel request asked for, so it carries no deadline.
bool IsListingAhead(const v1::Op& op) {
  return op.deadline_unix_ms() == 0 && (op.has_opendir() || op.has_readdir());
}

}  // namespace

Batcher::Batcher(Options options, BatchSink* sink, OpTransport* transport)
    : options_(options), sink_(sink), transport_(transport) {
  if (options_.hold_releases > absl::ZeroDuration()) {
    timer_ = std::thread([this] { SendHeldWhenDue(); });
  }
}

Batcher::~Batcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (timer_.joinable()) timer_.join();
}

bool Batcher::Holds(const v1::Op& op) const {
  return options_.hold_releases > absl::ZeroDuration() &&
         (op.has_release() || op.has_releasedir());
}

void Batcher::Send(v1::Op op, Done done) {
  if (PayloadBytes(op) >= options_.alone_bytes) {
    // Outside the in-flight count: transport_->WaitIdle covers it.
    std::vector<PendingOp> message;
    message.push_back(PendingOp{std::move(op), std::move(done)});
    Deliver(
        std::move(message), [] {}, /*in_order=*/false);
    return;
  }
  if (IsListingAhead(op)) {
    {
      absl::MutexLock lock(&mu_);
      ahead_queue_.push_back(PendingOp{std::move(op), std::move(done)});
      if (ahead_in_flight_ >= options_.max_in_flight) return;
      ++ahead_in_flight_;
    }
    SendAhead();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (Holds(op)) {
      if (held_.empty()) held_since_ = absl::Now();
      held_.push_back(PendingOp{std::move(op), std::move(done)});
      return;  // the next message or the timer sends it
    }
    queue_.push_back(PendingOp{std::move(op), std::move(done)});
    if (in_flight_ >= options_.max_in_flight) return;  // a completion sends it
    ++in_flight_;
  }
  SendQueued();
}

void Batcher::SendAll(std::vector<PendingOp> ops) {
  const size_t per_message = static_cast<size_t>(options_.max_ops_together > 0
                                                     ? options_.max_ops_together
                                                     : options_.max_ops);
  size_t next = 0;
  while (next < ops.size()) {
    size_t end = std::min(ops.size(), next + per_message);
    std::vector<PendingOp> message;
    message.reserve(end - next);
    for (size_t i = next; i < end; ++i) message.push_back(std::move(ops[i]));
    next = end;
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;  // given back by MessageDone, like any message
    }
    Deliver(
        std::move(message), [this] { MessageDone(); },
        /*in_order=*/false);
  }
}

void Batcher::SendInOrder(std::vector<PendingOp> ops) {
  if (ops.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;  // given back by MessageDone, like any message
  }
  Deliver(
      std::move(ops), [this] { MessageDone(); }, /*in_order=*/true);
}

void Batcher::SendQueued() {
  std::vector<PendingOp> batch;
  std::vector<PendingOp> expired;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    size_t bytes = 0;
    while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_ops) {
      // An op whose kernel request has run out of time while it waited
      // here is not sent at all.
      int64_t deadline = queue_.front().op.deadline_unix_ms();
      if (deadline != 0 && deadline <= now_ms) {
        expired.push_back(std::move(queue_.front()));
        queue_.pop_front();
        continue;
      }
      size_t next = PayloadBytes(queue_.front().op);
      if (!batch.empty() && bytes + next > options_.max_bytes) break;
      bytes += next;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    // Held releases ride along.
    while (!batch.empty() && !held_.empty() &&
           static_cast<int>(batch.size()) < options_.max_ops) {
      batch.push_back(std::move(held_.back()));
      held_.pop_back();
    }
    if (batch.empty()) --in_flight_;  // the slot taken is not needed
  }
  for (PendingOp& p : expired) p.done(ErrorResult(p.op.id(), ETIMEDOUT));
  if (batch.empty()) return;
  Deliver(
      std::move(batch), [this] { MessageDone(); }, /*in_order=*/false);
}

void Batcher::SendAhead() {
  std::vector<PendingOp> batch;
  {
    absl::MutexLock lock(&mu_);
    while (!ahead_queue_.empty() && batch.size() < ahead_next_size_) {
      batch.push_back(std::move(ahead_queue_.front()));
      ahead_queue_.pop_front();
    }
    if (batch.empty()) {
      // Idle again: the next walk's first listing goes alone.
      if (--ahead_in_flight_ == 0) ahead_next_size_ = 1;
      return;
    }
    ahead_next_size_ =
        std::min(ahead_next_size_ * 2, kMaxListingsAheadPerMessage);
  }
  // The finished message's slot passes to the next listings, if any.
  Deliver(
      std::move(batch), [this] { SendAhead(); }, /*in_order=*/false);
}

void Batcher::Deliver(std::vector<PendingOp> message,
                      std::function<void()> sent, bool in_order) {
  // Ops get ids unique within their message, so each message numbers its
  // own.
  for (size_t i = 0; i < message.size(); ++i) message[i].op.set_id(i + 1);
  sink_->SendBatch(std::move(message), std::move(sent), in_order);
}

bool Batcher::UnholdLocked() {
  if (held_.empty()) return false;
  for (PendingOp& p : held_) queue_.push_back(std::move(p));
  held_.clear();
  if (in_flight_ >= options_.max_in_flight) return false;  // a completion will
  ++in_flight_;
  return true;
}

void Batcher::SendHeldWhenDue() {
  mu_.Lock();
  while (!stopping_) {
    if (held_.empty()) {
      mu_.Await(absl::Condition(
          +[](Batcher* b) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return b->stopping_ || !b->held_.empty();
          },
          this));
      continue;
    }
    const absl::Time due = held_since_ + options_.hold_releases;
    if (absl::Now() < due) {
      // Woken early only to stop; a release that rode along meanwhile is
      // seen as an empty hold on the next turn.
      mu_.AwaitWithDeadline(absl::Condition(&stopping_), due);
      continue;
    }
    if (UnholdLocked()) {
      mu_.Unlock();
      SendQueued();
      mu_.Lock();
    }
  }
  mu_.Unlock();
}

void Batcher::MessageDone() {
  // The finished message's slot passes straight to the queued ops, if any.
  SendQueued();
}

void Batcher::CancelAll() {
  std::deque<PendingOp> queued;
  std::vector<PendingOp> held;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(queue_);
    held.swap(held_);
    for (PendingOp& p : ahead_queue_) queued.push_back(std::move(p));
    ahead_queue_.clear();
  }
  for (PendingOp& p : queued) p.done(ErrorResult(p.op.id(), ECANCELED));
  for (PendingOp& p : held) p.done(ErrorResult(p.op.id(), ECANCELED));
  transport_->CancelAll();
}

void Batcher::WaitIdle() {
  bool send;
  {
    absl::MutexLock lock(&mu_);
    send = UnholdLocked();  // no waiting for the timer
  }
  if (send) SendQueued();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Batcher* b) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return b->in_flight_ == 0 && b->queue_.empty() && b->held_.empty() &&
                 b->ahead_in_flight_ == 0 && b->ahead_queue_.empty();
        },
        this));
  }
  transport_->WaitIdle();
}

}  // namespace fusehost
