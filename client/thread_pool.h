// A small fixed-size thread pool for running a batch's operations side by
// side.
//
// Internal to the SDK.

#ifndef FUSE_HOSTD_CLIENT_THREAD_POOL_H_
#define FUSE_HOSTD_CLIENT_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

// Runs closures on `threads` worker threads, in the order they were queued.
//
// Thread use: Schedule may be called from any thread, including from a
// closure. The destructor runs every closure still queued, then joins the
// workers; nothing may call Schedule once destruction has begun.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Schedule(std::function<void()> task);

  int size() const { return static_cast<int>(workers_.size()); }

 private:
  void Work();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Written only by the constructor and destructor.
  std::vector<std::thread> workers_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_THREAD_POOL_H_
