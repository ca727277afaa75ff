// Serves one Session stream (proto/filesystem.proto): reads batches and
// answers each, several at a time, without a hand-over per batch.
//
// Leader and followers: the thread that reads a batch runs it itself, after
// passing the reading on to an idle thread of the session's (made when none
// is idle, up to a bound). The next batch so wakes the thread already
// blocked reading, which is the one that runs it: one wake-up per batch, as
// a blocking unary call has, without the call's set-up, headers and
// trailers. A batch that blocks (a lock wait, a slow store) holds its own
// thread only.
//
// A template over the messages, so that the Python SDK's server, which
// passes them as bytes, runs the same code (client/python/native).
// Internal to the SDKs.

#ifndef FUSE_HOSTD_CLIENT_SESSION_RUNNER_H_
#define FUSE_HOSTD_CLIENT_SESSION_RUNNER_H_

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

// The two ends of the stream. Read is called by one thread at a time, and
// Write by one thread at a time, possibly while another reads.
template <typename Batch, typename Result>
class SessionStream {
 public:
  virtual ~SessionStream() = default;
  // False once the stream has ended or broken.
  virtual bool Read(Batch* batch) = 0;
  virtual bool Write(const Result& result) = 0;
};

// Answers every batch of `stream` with what `run` makes of it (which must
// say the batch's sequence), until the stream ends; returns once every
// batch read was answered (or its answer failed to be written) and every
// thread it made has ended. At most `max_threads` batches run at once
// (values below 1 mean 1), the calling thread being one of those threads.
template <typename Batch, typename Result>
void RunSession(SessionStream<Batch, Result>& stream, int max_threads,
                const std::function<void(const Batch&, Result*)>& run);

// Implementation.

namespace session_runner_internal {

template <typename Batch, typename Result>
class Session {
 public:
  Session(SessionStream<Batch, Result>& stream, int max_threads,
          const std::function<void(const Batch&, Result*)>& run)
      : stream_(stream), max_threads_(std::max(max_threads, 1)), run_(run) {}

  void Run() {
    Serve();
    // Every thread ends once the stream has; none is made after that
    // (threads are made only right after a batch was read).
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  // One thread's life: take the reading when it is free, read a batch,
  // pass the reading on, run the batch, answer it; again until the stream
  // ends.
  void Serve() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      // One idle thread is woken when the reading is free (a condition
      // would wake them all).
      ++idle_;
      while (reading_ && !ended_) reading_free_.Wait(&mu_);
      --idle_;
      if (ended_) {
        reading_free_.SignalAll();
        return;
      }
      reading_ = true;
      mu_.Unlock();
      Batch batch;
      const bool read = stream_.Read(&batch);
      mu_.Lock();
      reading_ = false;
      if (!read) {
        ended_ = true;
        reading_free_.SignalAll();
        return;
      }
      reading_free_.Signal();
      // Someone must be reading the next batch while this one runs.
      if (idle_ == 0 && threads_made_ + 1 < max_threads_) {
        ++threads_made_;
        threads_.emplace_back([this] { Serve(); });
      }
      mu_.Unlock();
      Result result;
      run_(batch, &result);
      bool written;
      {
        absl::MutexLock write_lock(&write_mu_);
        written = stream_.Write(result);
      }
      mu_.Lock();
      if (!written) {
        // The stream broke: the thread reading (if any) sees it too.
        ended_ = true;
        reading_free_.SignalAll();
        return;
      }
    }
  }

  SessionStream<Batch, Result>& stream_;
  const int max_threads_;
  const std::function<void(const Batch&, Result*)>& run_;
  absl::Mutex write_mu_;
  absl::Mutex mu_;
  absl::CondVar reading_free_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  int threads_made_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace session_runner_internal

template <typename Batch, typename Result>
void RunSession(SessionStream<Batch, Result>& stream, int max_threads,
                const std::function<void(const Batch&, Result*)>& run) {
  session_runner_internal::Session<Batch, Result>(stream, max_threads, run)
      .Run();
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_SESSION_RUNNER_H_
