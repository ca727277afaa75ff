#include "daemon/fuse/uring_queues.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include "daemon/fuse/fuse_uring_abi.h"
#include "daemon/fuse/uring_framing.h"
#include "daemon/passthrough/fuse_passthrough_abi.h"

namespace fusehost {
namespace {

using fuse_abi::OutHeader;
namespace abi = fuse_uring_abi;

// Room before each payload buffer, for a request's header and first
// argument (uring_framing.h): with the payload they read as one /dev/fuse
// request, and the payload (a write's data) is not copied. A page keeps the
// payload page-aligned.
constexpr size_t kRoom = 4096;
static_assert(kRoom >= kRingFrameRoom);
constexpr size_t kPage = 4096;
// user_data of the poll of a queue's wake-up eventfd (an Entry's address
// otherwise).
constexpr uint64_t kWakeMark = 1;

// The queue whose thread this is: its replies are queued on the ring at
// once, and submitted together when its batch is done.
thread_local void* serving_queue = nullptr;

// Copies `size` bytes from `skip` bytes into the iovecs to `to`; false if
// they hold fewer.
bool Gather(const struct iovec* iov, int count, size_t skip, void* to,
            size_t size) {
  char* out = static_cast<char*>(to);
  for (int i = 0; i < count && size > 0; ++i) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    size_t n = std::min(len - skip, size);
    std::memcpy(out, static_cast<const char*>(iov[i].iov_base) + skip, n);
    out += n;
    size -= n;
    skip = 0;
  }
  return size == 0;
}

void* PageAlloc(size_t size) {
  void* p = std::aligned_alloc(kPage, (size + kPage - 1) / kPage * kPage);
  if (p != nullptr) std::memset(p, 0, kPage);
  return p;
}

}  // namespace

struct UringQueues::Entry {
  Queue* queue = nullptr;
  abi::ReqHeader* header = nullptr;
  char* buffer = nullptr;   // kRoom, then the payload
  char* payload = nullptr;  // buffer + kRoom
  struct iovec iov[2] = {};
  uint32_t last_cmd = 0;
  uint64_t commit_id = 0;
};

// Only a queue's own thread submits to its ring. The kernel delivers the
// next request to an entry as task work of the thread that submitted the
// entry's last command: a commit submitted by a gRPC thread would make
// that thread (asleep elsewhere) the one to wake for every later request
// on the entry. Replies written on other threads are handed over through
// `to_commit` and the eventfd the ring polls.
struct UringQueues::Queue {
  int qid = 0;
  struct io_uring ring = {};
  bool ring_made = false;
  std::vector<Entry> entries;
  std::thread thread;
  int wake_fd = -1;
  absl::Mutex mu;
  std::vector<Entry*> to_commit ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  // Registration refused at once (set by the queue's thread at start).
  int register_error = 0;
  bool entry_lost_logged = false;  // the queue's thread only
};

UringQueues::UringQueues(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<UringQueues>> UringQueues::Create(
    Options options) {
  if (options.depth == 0 || options.payload_size == 0 || !options.process) {
    return absl::InvalidArgumentError("uring: bad options");
  }
  std::unique_ptr<UringQueues> u(new UringQueues(std::move(options)));
  const int cpus = get_nprocs_conf();
  for (int qid = 0; qid < cpus; ++qid) {
    auto q = std::make_unique<Queue>();
    q->qid = qid;
    absl::Status made = u->Setup(q.get());
    u->queues_.push_back(std::move(q));
    if (!made.ok()) return made;  // the destructor cleans up
  }
  return u;
}

absl::Status UringQueues::Register() {
  // The kernel refuses a registration at once, or keeps the command until a
  // request comes.
  absl::Mutex started_mu;
  int started = 0;
  for (auto& q : queues_) {
    Queue* queue = q.get();
    queue->thread = std::thread([this, queue, &started_mu, &started] {
      pthread_setname_np(pthread_self(),
                         absl::StrCat("fuse-ring-", queue->qid).c_str());
      cpu_set_t cpus;
      CPU_ZERO(&cpus);
      CPU_SET(queue->qid, &cpus);
      // Not fatal: the ring still works, from wherever this runs.
      sched_setaffinity(0, sizeof(cpus), &cpus);
      serving_queue = queue;
      for (Entry& e : queue->entries) {
        PushCommand(queue, &e, abi::kCmdRegister, 0);
      }
      ArmWake(queue);
      int submitted = io_uring_submit(&queue->ring);
      if (submitted < 0) queue->register_error = -submitted;
      struct io_uring_cqe* cqe = nullptr;
      if (queue->register_error == 0 &&
          io_uring_peek_cqe(&queue->ring, &cqe) == 0 && cqe->res < 0) {
        queue->register_error = -cqe->res;
      }
      const bool serve = queue->register_error == 0;
      {
        absl::MutexLock lock(&started_mu);
        ++started;
      }
      if (serve) Serve(queue);
    });
  }
  {
    absl::MutexLock lock(&started_mu);
    const int all = static_cast<int>(queues_.size());
    auto all_started = [&started, all]() { return started == all; };
    started_mu.Await(absl::Condition(&all_started));
  }
  for (auto& q : queues_) {
    if (q->register_error != 0) {
      return absl::UnavailableError(
          absl::StrCat("the kernel refused the ring of CPU ", q->qid, ": ",
                       std::strerror(q->register_error)));
    }
  }
  return absl::OkStatus();
}

absl::Status UringQueues::Setup(Queue* q) {
  const size_t depth = options_.depth;
  struct io_uring_params params = {};
  // Commands carry their arguments in the SQE (80 bytes of it).
  params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
  // One command per entry at most, and the wake-up poll.
  params.cq_entries = static_cast<unsigned>(2 * depth + 2);
  int err = io_uring_queue_init_params(static_cast<unsigned>(depth + 2),
                                       &q->ring, &params);
  if (err < 0) {
    return absl::UnavailableError(
        absl::StrCat("io_uring_setup: ", std::strerror(-err)));
  }
  q->ring_made = true;
  q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->wake_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  q->entries.resize(depth);
  for (Entry& e : q->entries) {
    e.queue = q;
    e.header = static_cast<abi::ReqHeader*>(PageAlloc(sizeof(abi::ReqHeader)));
    e.buffer = static_cast<char*>(PageAlloc(kRoom + options_.payload_size));
    if (e.header == nullptr || e.buffer == nullptr) {
      return absl::ResourceExhaustedError("uring: no memory for buffers");
    }
    e.payload = e.buffer + kRoom;
    e.iov[0] = {e.header, sizeof(abi::ReqHeader)};
    e.iov[1] = {e.payload, options_.payload_size};
  }
  return absl::OkStatus();
}

void UringQueues::ArmWake(Queue* q) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&q->ring);
  if (sqe == nullptr) return;  // cannot happen: room for it is kept
  std::memset(sqe, 0, 2 * sizeof(*sqe));
  io_uring_prep_poll_multishot(sqe, q->wake_fd, POLLIN);
  sqe->user_data = kWakeMark;
}

void UringQueues::PushCommand(Queue* q, Entry* e, uint32_t cmd_op,
                              uint64_t commit_id) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&q->ring);
  if (sqe == nullptr) {
    // Cannot happen: an entry has one command at a time, and the ring has
    // room for all of them.
    Log("%s: uring: no room in the ring of CPU %d", options_.log_name.c_str(),
        q->qid);
    return;
  }
  std::memset(sqe, 0, 2 * sizeof(*sqe));  // SQE128
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = options_.fuse_fd;
  sqe->cmd_op = cmd_op;
  sqe->user_data = reinterpret_cast<uintptr_t>(e);
  if (cmd_op == abi::kCmdRegister) {
    sqe->addr = reinterpret_cast<uintptr_t>(e->iov);
    sqe->len = 2;
  }
  abi::CmdReq req = {};
  req.qid = static_cast<uint16_t>(q->qid);
  req.commit_id = commit_id;
  std::memcpy(sqe->cmd, &req, sizeof(req));
  e->last_cmd = cmd_op;
}

void UringQueues::Serve(Queue* q) {
  size_t dead = 0;
  std::vector<Entry*> commits;
  for (;;) {
    struct io_uring_cqe* cqe = nullptr;
    int err = io_uring_wait_cqe(&q->ring, &cqe);
    if (err == -EINTR) continue;
    if (err < 0) {
      Log("%s: uring: waiting on the ring of CPU %d: %s",
          options_.log_name.c_str(), q->qid, std::strerror(-err));
      return;
    }
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&q->ring, head, cqe) {
      ++seen;
      if (cqe->user_data == kWakeMark) {
        uint64_t n;
        while (read(q->wake_fd, &n, sizeof(n)) > 0) {
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) ArmWake(q);
        continue;
      }
      auto* e =
          reinterpret_cast<Entry*>(static_cast<uintptr_t>(cqe->user_data));
      if (cqe->res == 0) {
        TakeRequest(q, e);
      } else if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
        PushCommand(q, e, e->last_cmd, e->commit_id);
      } else {
        // The connection is gone (ENOTCONN, ECONNABORTED), or the ring is
        // closing (ECANCELED). Anything else loses the entry: said once.
        if (cqe->res != -ENOTCONN && cqe->res != -ECONNABORTED &&
            cqe->res != -ECANCELED && !q->entry_lost_logged) {
          q->entry_lost_logged = true;
          Log("%s: uring: the kernel refused a command of the ring of CPU "
              "%d (%s): one entry fewer",
              options_.log_name.c_str(), q->qid, std::strerror(-cqe->res));
        }
        ++dead;
      }
    }
    io_uring_cq_advance(&q->ring, seen);
    bool stop = false;
    {
      absl::MutexLock lock(&q->mu);
      commits.swap(q->to_commit);
      stop = q->stop;
    }
    for (Entry* e : commits) {
      PushCommand(q, e, abi::kCmdCommitAndFetch, e->commit_id);
    }
    commits.clear();
    if (io_uring_sq_ready(&q->ring) > 0) io_uring_submit(&q->ring);
    if (stop || dead == q->entries.size()) return;
  }
}

void UringQueues::TakeRequest(Queue* q, Entry* e) {
  e->commit_id = e->header->ring_ent_in_out.commit_id;
  RingFrame frame;
  if (!FrameRingRequest(*e->header, e->payload, options_.payload_size,
                        &frame)) {
    Log("%s: uring: a request whose sizes do not add up (opcode %u): "
        "answered EIO",
        options_.log_name.c_str(), frame.opcode);
    OutHeader out = {sizeof(OutHeader), -EIO, frame.unique};
    std::memcpy(e->header->in_out, &out, sizeof(out));
    e->header->ring_ent_in_out.payload_sz = 0;
    PushCommand(q, e, abi::kCmdCommitAndFetch, e->commit_id);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    taken_[frame.unique] = e;
  }
  requests_.fetch_add(1, std::memory_order_relaxed);
  options_.process(frame.start, frame.size);
}

ssize_t UringQueues::Reply(const struct iovec* iov, int count, bool* taken) {
  *taken = false;
  // The reply's first bytes are its fuse_out_header, however libfuse (or
  // the passthrough patcher) cut it into pieces.
  OutHeader out;
  if (!Gather(iov, count, 0, &out, sizeof(out))) return -1;
  Entry* e = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = taken_.find(out.unique);
    if (it == taken_.end()) return -1;
    e = it->second;
    taken_.erase(it);
  }
  *taken = true;
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  size_t body = total - sizeof(out);
  if (body > options_.payload_size) {
    Log("%s: uring: a reply larger than the ring's buffer (%zu bytes): "
        "answered EIO",
        options_.log_name.c_str(), body);
    out.error = -EIO;
    body = 0;
  } else {
    Gather(iov, count, sizeof(out), e->payload, body);
  }
  out.len = static_cast<uint32_t>(sizeof(out) + body);
  std::memcpy(e->header->in_out, &out, sizeof(out));
  e->header->ring_ent_in_out.payload_sz = static_cast<uint32_t>(body);
  Queue* q = e->queue;
  if (serving_queue == q) {
    // The queue's own thread: submitted with the rest of its batch.
    PushCommand(q, e, abi::kCmdCommitAndFetch, e->commit_id);
  } else {
    bool wake = false;
    {
      absl::MutexLock lock(&q->mu);
      wake = q->to_commit.empty();
      q->to_commit.push_back(e);
    }
    const uint64_t one = 1;
    if (wake && write(q->wake_fd, &one, sizeof(one)) < 0) {
      Log("%s: uring: cannot wake the thread of CPU %d: %s",
          options_.log_name.c_str(), q->qid, std::strerror(errno));
    }
  }
  return static_cast<ssize_t>(out.len);
}

UringQueues::~UringQueues() {
  for (auto& q : queues_) {
    if (!q->thread.joinable()) continue;
    {
      absl::MutexLock lock(&q->mu);
      q->stop = true;
    }
    const uint64_t one = 1;
    if (write(q->wake_fd, &one, sizeof(one)) < 0) {
      Log("%s: uring: cannot wake the thread of CPU %d to stop: %s",
          options_.log_name.c_str(), q->qid, std::strerror(errno));
    }
    q->thread.join();
  }
  for (auto& q : queues_) {
    // Closing the ring cancels the commands still waiting for requests.
    if (q->ring_made) io_uring_queue_exit(&q->ring);
    if (q->wake_fd >= 0) close(q->wake_fd);
    for (Entry& e : q->entries) {
      std::free(e.header);
      std::free(e.buffer);
    }
  }
}

}  // namespace fusehost
