#include "daemon/pipeline/backend_session.h"

#include <pthread.h>

#include <vector>

namespace fusehost {
namespace {

thread_local bool on_session_thread = false;

}  // namespace

BackendSession::BackendSession(
    v1::FileSystem::Stub* stub,
    const google::protobuf::ArenaOptions& arena_options)
    : arena_options_(arena_options) {
  // The stream's headers go with its first batch: opening it never waits
  // for the connection.
  context_.set_initial_metadata_corked(true);
  stream_ = stub->Session(&context_);
  reader_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "backend-stream");  // for top -H
    on_session_thread = true;
    ReadLoop();
  });
  timer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "stream-timer");
    on_session_thread = true;
    TimerLoop();
  });
}

BackendSession::~BackendSession() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  context_.TryCancel();  // the reader's Read returns
  reader_.join();
  timer_.join();
}

bool BackendSession::OnSessionThread() { return on_session_thread; }

bool BackendSession::broken() const {
  absl::MutexLock lock(&mu_);
  return broken_ || stopping_;
}

bool BackendSession::finished() const {
  absl::MutexLock lock(&mu_);
  return threads_running_ == 0;
}

bool BackendSession::Send(v1::Batch* batch, absl::Time deadline, Done done,
                          std::atomic<uint64_t>* sequence) {
  // The size with its sequence, which takes at most 11 bytes.
  const size_t bytes = batch->ByteSizeLong() + 11;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    if (broken_ || stopping_ ||
        unanswered_bytes_ + bytes > kMaxUnansweredBytes) {
      return false;
    }
    unanswered_bytes_ += bytes;
    seq = ++next_sequence_;
    sequence->store(seq);
    waiting_.emplace(seq, Waiting{std::move(done), deadline, bytes});
    deadlines_.emplace(deadline, seq);
  }
  batch->set_sequence(seq);
  bool written = false;
  {
    absl::MutexLock write_lock(&write_mu_);
    // Not after the reader finished the stream (it holds write_mu_ then).
    bool broken;
    {
      absl::MutexLock lock(&mu_);
      broken = broken_;
    }
    if (!broken) written = stream_->Write(*batch);
  }
  if (written) return true;
  absl::MutexLock lock(&mu_);
  Waiting unsent;
  // Answered already if the broken stream failed it meanwhile.
  if (!Take(seq, &unsent)) return true;
  unanswered_bytes_ -= unsent.bytes;
  return false;
}

void BackendSession::Cancel(uint64_t sequence) {
  Waiting w;
  {
    absl::MutexLock lock(&mu_);
    if (!Abandon(sequence, &w)) return;
  }
  w.done(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), nullptr,
         nullptr);
}

bool BackendSession::Take(uint64_t sequence, Waiting* out) {
  auto it = waiting_.find(sequence);
  if (it == waiting_.end()) return false;
  deadlines_.erase({it->second.deadline, sequence});
  *out = std::move(it->second);
  waiting_.erase(it);
  return true;
}

bool BackendSession::Abandon(uint64_t sequence, Waiting* out) {
  if (!Take(sequence, out)) return false;
  abandoned_.emplace(sequence, out->bytes);
  return true;
}

void BackendSession::FailAll(const grpc::Status& status) {
  std::vector<Waiting> failed;
  {
    absl::MutexLock lock(&mu_);
    failed.reserve(waiting_.size());
    for (auto& [seq, w] : waiting_) failed.push_back(std::move(w));
    waiting_.clear();
    deadlines_.clear();
  }
  for (Waiting& w : failed) w.done(status, nullptr, nullptr);
}

void BackendSession::ReadLoop() {
  for (;;) {
    auto arena = std::make_unique<google::protobuf::Arena>(arena_options_);
    v1::BatchResult* result =
        google::protobuf::Arena::CreateMessage<v1::BatchResult>(arena.get());
    if (!stream_->Read(result)) break;
    Waiting w;
    {
      absl::MutexLock lock(&mu_);
      if (!Take(result->sequence(), &w)) {
        // Late (timed out, cancelled): its bytes were read after all. Or
        // never sent: dropped.
        auto late = abandoned_.find(result->sequence());
        if (late != abandoned_.end()) {
          unanswered_bytes_ -= late->second;
          abandoned_.erase(late);
        }
        continue;
      }
      unanswered_bytes_ -= w.bytes;
    }
    w.done(grpc::Status::OK, std::move(arena), result);
  }
  {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }
  grpc::Status status;
  {
    // No write is under way or starts after this (Send checks broken_).
    absl::MutexLock write_lock(&write_mu_);
    status = stream_->Finish();
  }
  if (status.ok()) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the backend ended the session stream");
  }
  FailAll(status);
  absl::MutexLock lock(&mu_);
  --threads_running_;
}

void BackendSession::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_ && !broken_) {
    const absl::Time next =
        deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
    // Wakes at the earliest deadline, or when an earlier one is added.
    struct Wake {
      BackendSession* s;
      absl::Time next;
      bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return s->stopping_ || s->broken_ ||
               (!s->deadlines_.empty() && s->deadlines_.begin()->first < next);
      }
    } wake{this, next};
    mu_.AwaitWithDeadline(absl::Condition(&wake), next);
    std::vector<Waiting> expired;
    const absl::Time now = absl::Now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      Waiting w;
      if (Abandon(deadlines_.begin()->second, &w)) {
        expired.push_back(std::move(w));
      } else {
        deadlines_.erase(deadlines_.begin());
      }
    }
    if (expired.empty()) continue;
    mu_.Unlock();
    for (Waiting& w : expired) {
      w.done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "Deadline Exceeded"),
             nullptr, nullptr);
    }
    mu_.Lock();
  }
  --threads_running_;
}

}  // namespace fusehost
