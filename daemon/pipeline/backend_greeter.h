// Says Init to each new run of a mount's backend.
//
// A backend that restarts (a new process on the same socket, a new
// InitReply.instance) is found by the channel in the first reply the new
// run sends; the ops of the mount go on meanwhile. The new process has
// never been told of the mount: its filesystem's init never ran, and it
// knows no passthrough socket, so its opens could never be passed through
// again. The greeter sends it the mount's InitRequest, on a thread of its
// own (the channel reports new instances on gRPC's threads, which must not
// wait for a call).
//
// The kernel was told at mount time what the backend does (locks, ACLs,
// ioctl, lifetimes) and cannot be told again: a new run that answers
// differently is logged, and the mount keeps what it started with.
//
// Thread use: NewInstance from any thread; Stop from the owner.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_GREETER_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_GREETER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/pipeline/backend_channel.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

class BackendGreeter {
 public:
  struct Options {
    BackendChannel* channel = nullptr;  // must outlive the greeter
    v1::InitRequest request;            // what the mount was made with
    v1::InitReply first_reply;          // what its first run answered
    std::string log_name;
    // Called on the greeter's thread with each new run's answer to Init
    // (after the descriptors it sent with it arrived). May be empty.
    std::function<void(const v1::InitReply&)> on_greeted;
  };

  explicit BackendGreeter(Options options);
  ~BackendGreeter();  // Stop()s.

  // A reply came from run `instance` of the backend, not the one last
  // greeted.
  void NewInstance(uint64_t instance);
  void Stop();

  // How many new runs were greeted (Init answered), for statistics.
  uint64_t greeted() const;

 private:
  void Run();
  // The differences that matter between `reply` and the first one, as
  // "posix_locks, ioctl"; empty when none.
  std::string Differences(const v1::InitReply& reply) const;

  const Options options_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The run last greeted (or the first), and the newest seen.
  uint64_t greeted_instance_ ABSL_GUARDED_BY(mu_);
  uint64_t newest_instance_ ABSL_GUARDED_BY(mu_);
  uint64_t greeted_ ABSL_GUARDED_BY(mu_) = 0;
  // Greetings logged about (only the greeting thread touches it).
  static constexpr uint64_t kGreetingsLogged = 20;
  uint64_t logged_ = 0;
  std::thread thread_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_GREETER_H_
