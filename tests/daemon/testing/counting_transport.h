// A base for fake OpTransports in the daemon's tests: counts CancelAll and
// WaitIdle calls (which return at once); subclasses implement Send.
// Thread-safe.

#ifndef FUSE_HOSTD_TESTS_DAEMON_TESTING_COUNTING_TRANSPORT_H_
#define FUSE_HOSTD_TESTS_DAEMON_TESTING_COUNTING_TRANSPORT_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

class CountingTransport : public OpTransport {
 public:
  void CancelAll() override {
    absl::MutexLock lock(&count_mu_);
    ++cancels_;
  }
  void WaitIdle() override {
    absl::MutexLock lock(&count_mu_);
    ++waits_;
  }

  int cancels() {
    absl::MutexLock lock(&count_mu_);
    return cancels_;
  }
  int waits() {
    absl::MutexLock lock(&count_mu_);
    return waits_;
  }

 private:
  absl::Mutex count_mu_;
  int cancels_ ABSL_GUARDED_BY(count_mu_) = 0;
  int waits_ ABSL_GUARDED_BY(count_mu_) = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_TESTS_DAEMON_TESTING_COUNTING_TRANSPORT_H_
