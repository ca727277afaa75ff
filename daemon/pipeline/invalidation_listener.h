// Keeps the backend's Invalidations stream open for the life of a mount and
// hands each notice to a callback (which drops the daemon's cache entries and
// the kernel's). When the stream breaks it is reopened with a short backoff;
// every (re)open first runs `on_open`, because notices sent while no stream
// was open are lost, so nothing cached before can be trusted. A backend that
// does not implement the stream (UNIMPLEMENTED) is not asked again.
//
// A mount waits (bounded) for the first attempt to open the stream before it
// is handed to its user, so that what is cached from then on stays cached
// until a notice or its lifetime says otherwise: were the stream opened later,
// its `on_open` would drop entries the user already relies on.
//
// Thread use: Start/Stop/AwaitFirstAttempt from the owner; callbacks run on
// the listener's own thread.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_INVALIDATION_LISTENER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_INVALIDATION_LISTENER_H_

#include <functional>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/pipeline/backend_channel.h"
#include "proto/filesystem.grpc.pb.h"

namespace fusehost {

class InvalidationListener {
 public:
  struct Options {
    BackendChannel* channel = nullptr;  // must outlive the listener
    uint64_t mount_id = 0;
    std::function<void()> on_open;
    std::function<void(const v1::Invalidation&)> on_notice;
  };

  explicit InvalidationListener(Options options);
  ~InvalidationListener();  // Stop()s.

  void Start();
  void Stop();
  // Waits until the first attempt to open the stream has ended (open, refused
  // or failed), at most `limit`. True if it ended in time.
  bool AwaitFirstAttempt(absl::Duration limit);

 private:
  void Run();
  void FirstAttemptEnded();

  const Options options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool first_attempt_done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_INVALIDATION_LISTENER_H_
