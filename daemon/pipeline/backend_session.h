// One Session stream (proto/filesystem.proto) on one backend connection:
// batches written on it, each answered by a result that names the batch's
// sequence number. It replaces an Execute call per batch for a backend that
// serves it (InitReply.serves_session): no call set-up, headers or trailers
// per batch, and a thread of its own that blocks reading the stream, so a
// result wakes the one thread that handles it.
//
// What a unary call's ClientContext did per message is done here:
//   - deadlines: a timer thread fails a batch whose deadline passed
//     (DEADLINE_EXCEEDED); a result that comes later is dropped;
//   - cancellation: Cancel fails one batch (CANCELLED);
//   - a broken stream (backend gone, connection cut, stream refused) fails
//     every batch waiting with the stream's status, UNAVAILABLE when it
//     ended without one.
// A result whose sequence is unknown (never sent, already answered, timed
// out) is the backend's bug or a late answer, and is dropped.
//
// A write never waits for the backend: the bytes written and not yet
// answered stay below half of HTTP/2's initial stream window, so flow
// control never holds a write back. A batch that would pass that is
// refused (Send returns false; the channel sends it as an Execute call,
// which never blocks its caller). Bytes of a batch that timed out or was
// cancelled stay counted until its late result comes: the backend may not
// have read them. So a backend that stops reading its stream costs that
// stream, not the daemon's threads.
//
// Each batch's `done` runs exactly once, on the reader thread (a result, a
// broken stream), the timer thread (a deadline), or the caller's (Cancel,
// the destructor). Callbacks must not write to this session: a Send from
// its own threads could wait for flow control that only its reader frees
// (see OnSessionThread).
//
// Thread-safe. The destructor cancels the stream and waits for both
// threads: never destroy a session on one of its own threads.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_SESSION_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_SESSION_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

class BackendSession {
 public:
  // The batch's result (owned by `arena`) when `status` is OK; otherwise
  // null, and `status` says why there is none.
  using Done = std::function<void(
      const grpc::Status& status,
      std::unique_ptr<google::protobuf::Arena> arena, v1::BatchResult* result)>;

  // Opens the stream on `stub` (the channel must outlive the session).
  // `arena_options`: for the arena each result is parsed into.
  BackendSession(v1::FileSystem::Stub* stub,
                 const google::protobuf::ArenaOptions& arena_options);
  ~BackendSession();

  BackendSession(const BackendSession&) = delete;
  BackendSession& operator=(const BackendSession&) = delete;

  // Writes `batch` (its sequence set here, and stored in *sequence before
  // the write) and returns true: `done` will run, maybe before Send returns.
  // False when the stream is broken, the batch would pass the bound on
  // unanswered bytes, or the write failed before anyone else answered the
  // batch: `done` will not run, and the batch must go another way.
  bool Send(v1::Batch* batch, absl::Time deadline, Done done,
            std::atomic<uint64_t>* sequence);

  // Fails the batch with CANCELLED if it is still waiting.
  void Cancel(uint64_t sequence);

  // The stream has ended: a new one is needed.
  bool broken() const;
  // Both threads have ended (the destructor will not wait).
  bool finished() const;

  // True on the reader or timer thread of any session.
  static bool OnSessionThread();

  // Whoever is about to Send holds a use, so that its owner does not
  // destroy the session meanwhile (in_use()).
  void Use() { uses_.fetch_add(1); }
  void Unuse() { uses_.fetch_sub(1); }
  bool in_use() const { return uses_.load() != 0; }

 private:
  struct Waiting {
    Done done;
    absl::Time deadline;
    size_t bytes = 0;
  };

  // Below the 64 KiB initial HTTP/2 stream window, with room for framing.
  static constexpr size_t kMaxUnansweredBytes = 32 * 1024;

  void ReadLoop();
  void TimerLoop();
  // Removes and returns the batch's entry if it is still waiting.
  bool Take(uint64_t sequence, Waiting* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Take, for a batch given up on before its result came.
  bool Abandon(uint64_t sequence, Waiting* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fails everything waiting, once the stream is broken.
  void FailAll(const grpc::Status& status);

  const google::protobuf::ArenaOptions arena_options_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::Batch, v1::BatchResult>> stream_;

  absl::Mutex write_mu_;  // one writer at a time

  mutable absl::Mutex mu_;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, uint64_t>> deadlines_ ABSL_GUARDED_BY(mu_);
  // Written and not answered with a result (see above), and of those the
  // batches given up on (timed out, cancelled), by sequence.
  size_t unanswered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, size_t> abandoned_ ABSL_GUARDED_BY(mu_);
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int threads_running_ ABSL_GUARDED_BY(mu_) = 2;

  std::atomic<int> uses_{0};

  std::thread reader_;
  std::thread timer_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_SESSION_H_
