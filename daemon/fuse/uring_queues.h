// FUSE over io_uring (mount option `uring`; Linux 6.14 and later, with the
// fuse module's enable_uring parameter set): the kernel hands each request
// to a queue of the CPU its caller runs on, and a thread held on that CPU
// takes it and answers it there. Over /dev/fuse, a request wakes whichever
// libfuse worker is waiting, often on the other CPU, and on a VM whose idle
// CPUs halt that wake-up costs more than a cached answer itself.
//
// The kernel expects one queue per possible CPU and uses the rings once
// every queue has an entry registered; until then, and for FORGET and
// INTERRUPT always, requests still come through /dev/fuse, which libfuse's
// loop keeps reading.
//
// A request taken from a ring is laid out as /dev/fuse would deliver it
// (header, then arguments) and handed to `process`, which is libfuse's
// fuse_session_process_buf: the handlers are the same. libfuse writes the
// reply through the session's device i/o (kernel_session_device.cc), which
// hands it to Reply(): a reply to a request taken from a ring is committed
// on that ring, on whichever thread it is written.
//
// Thread-safe.

#ifndef FUSE_HOSTD_DAEMON_FUSE_URING_QUEUES_H_
#define FUSE_HOSTD_DAEMON_FUSE_URING_QUEUES_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

class UringQueues {
 public:
  struct Options {
    int fuse_fd = -1;  // the connection, initialized (INIT answered)
    // Entries per queue: requests of one CPU handled at once. More wait in
    // the kernel.
    size_t depth = 16;
    // Each entry's payload buffer; the kernel wants room for the largest
    // write or read of the connection (max_write, max_pages).
    size_t payload_size = 0;
    // Handles one request, `size` bytes at `request` as /dev/fuse frames
    // it. Called on the queue's thread.
    std::function<void(char* request, size_t size)> process;
    std::string log_name;
  };

  // Makes a ring per CPU and the buffers of its entries. Before the INIT
  // reply offers the kernel rings: once offered, the kernel holds every
  // request until the rings are registered or a registration fails.
  static absl::StatusOr<std::unique_ptr<UringQueues>> Create(Options options);

  // After the INIT reply: starts each queue's thread, which holds itself on
  // its CPU and registers the entries. An error if the kernel refused them
  // (it then goes on with /dev/fuse alone).
  absl::Status Register();

  // Stops the threads and closes the rings (the kernel drops idle entries
  // with them). Replies written after that are dropped.
  ~UringQueues();

  // A reply as libfuse writes it (iov[0] the fuse_out_header). If it
  // answers a request taken from a ring, it is committed there and the
  // result is what a writev(2) of it to /dev/fuse would return; otherwise
  // nothing is done and the result is -1 with `taken` false.
  ssize_t Reply(const struct iovec* iov, int count, bool* taken);

  size_t queues() const { return queues_.size(); }
  // Requests taken from the rings so far.
  uint64_t requests() const { return requests_.load(); }

 private:
  struct Queue;
  struct Entry;

  explicit UringQueues(Options options);
  absl::Status Setup(Queue* q);
  void Serve(Queue* q);
  void TakeRequest(Queue* q, Entry* e);
  // Puts `e`'s command (register or commit) on the ring; the queue's
  // thread only, which submits after its batch.
  void PushCommand(Queue* q, Entry* e, uint32_t cmd_op, uint64_t commit_id);
  // Polls the queue's eventfd, by which other threads hand it replies.
  void ArmWake(Queue* q);

  const Options options_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::atomic<uint64_t> requests_{0};
  absl::Mutex mu_;
  // Requests taken from a ring and not answered: unique -> entry.
  absl::flat_hash_map<uint64_t, Entry*> taken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_URING_QUEUES_H_
