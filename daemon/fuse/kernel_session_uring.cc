// FUSE over io_uring for one session (see uring_queues.h): offered in the
// INIT reply when the mount asks for it and the kernel offers it, then
// registered; requests taken from the rings go to libfuse's handlers as if
// read from /dev/fuse, and their replies go back to the rings.

#include <fuse3/fuse_lowlevel.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/log_line.h"
#include "daemon/fuse/fuse_uring_abi.h"
#include "daemon/fuse/kernel_session.h"
#include "daemon/passthrough/fuse_passthrough_abi.h"
#include "daemon/passthrough/session_io.h"

namespace fusehost {
namespace {

using fuse_abi::InHeader;
using fuse_abi::InitIn;
using fuse_abi::InitOut;
using fuse_abi::OutHeader;

// INIT reply flag: max_pages is set (else the kernel's default, 32 pages).
constexpr uint32_t kInitMaxPages = 1u << 22;
constexpr size_t kDefaultMaxPages = 32;
// The kernel's smallest payload buffer (FUSE_MIN_READ_BUFFER).
constexpr size_t kMinPayload = 8192;
constexpr size_t kPageSize = 4096;

}  // namespace

void KernelSession::SawInitForUring(const void* request, size_t size) {
  if (!options_.uring || size < sizeof(InHeader) + sizeof(InitIn)) return;
  InHeader in;
  InitIn init;
  std::memcpy(&in, request, sizeof(in));
  std::memcpy(&init, static_cast<const char*>(request) + sizeof(in),
              sizeof(init));
  uint64_t flags = init.flags;
  if (flags & fuse_abi::kInitExt) {
    flags |= static_cast<uint64_t>(init.flags2) << 32;
  }
  const bool offered = (flags & fuse_uring_abi::kInitOverIoUring) != 0;
  uring_offered_.store(offered);
  init_unique_.store(in.unique);
  if (!offered) {
    Log("%s: uring: the kernel offers no io_uring queues (FUSE over "
        "io_uring needs Linux 6.14 and the fuse module's enable_uring "
        "parameter set): requests come through /dev/fuse",
        options_.log_name.c_str());
  }
}

bool KernelSession::IsInitReply(const struct iovec* iov, int count) const {
  if (!options_.uring || init_replied_.load(std::memory_order_relaxed) ||
      count < 1 || iov[0].iov_len < sizeof(OutHeader)) {
    return false;
  }
  OutHeader out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  return out.unique != 0 && out.unique == init_unique_.load();
}

ssize_t KernelSession::WriteInitReply(int fd, struct iovec* iov, int count) {
  init_replied_.store(true);
  std::string reply;
  for (int i = 0; i < count; ++i) {
    reply.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  std::unique_ptr<UringQueues> queues;
  if (uring_offered_.load() &&
      reply.size() == sizeof(OutHeader) + sizeof(InitOut)) {
    OutHeader out;
    InitOut init;
    std::memcpy(&out, reply.data(), sizeof(out));
    std::memcpy(&init, reply.data() + sizeof(out), sizeof(init));
    if (out.error == 0) {
      // What the kernel will want each entry's payload buffer to hold.
      const size_t pages =
          (init.flags & kInitMaxPages) ? init.max_pages : kDefaultMaxPages;
      UringQueues::Options u;
      u.fuse_fd = fd;
      u.depth = options_.uring_depth;
      u.payload_size =
          std::max({kMinPayload, size_t{init.max_write}, pages * kPageSize});
      u.process = [this](char* request, size_t size) {
        ProcessRingRequest(request, size);
      };
      u.log_name = options_.log_name;
      auto made = UringQueues::Create(std::move(u));
      if (made.ok()) {
        queues = std::move(*made);
        init.flags |= static_cast<uint32_t>(fuse_abi::kInitExt);
        init.flags2 |=
            static_cast<uint32_t>(fuse_uring_abi::kInitOverIoUring >> 32);
        std::memcpy(reply.data() + sizeof(out), &init, sizeof(init));
      } else {
        Log("%s: uring: cannot make the queues (%s): requests come through "
            "/dev/fuse",
            options_.log_name.c_str(),
            std::string(made.status().message()).c_str());
      }
    }
  }
  struct iovec one = {reply.data(), reply.size()};
  ssize_t n = patcher_ != nullptr
                  ? WriteKernelReply(patcher_.get(), fd, &one, 1)
                  : writev(fd, &one, 1);
  if (queues == nullptr || n != static_cast<ssize_t>(reply.size())) return n;
  // Live before the registration: the kernel may hand the rings a request
  // as soon as the last queue has an entry, and its reply must find them.
  uring_ = std::move(queues);
  uring_live_.store(uring_.get(), std::memory_order_release);
  absl::Status registered = uring_->Register();
  if (registered.ok()) {
    Log("%s: uring: requests come through %zu io_uring queues, one per CPU",
        options_.log_name.c_str(), uring_->queues());
  } else {
    // The kernel gave up the rings with the refusal.
    Log("%s: uring: %s: requests come through /dev/fuse",
        options_.log_name.c_str(), std::string(registered.message()).c_str());
    uring_live_.store(nullptr);
    uring_.reset();
  }
  return n;
}

void KernelSession::ProcessRingRequest(char* request, size_t size) {
  if (patcher_ != nullptr) patcher_->SawRequest(request, size);
  struct fuse_buf buf = {};
  buf.size = size;
  buf.mem = request;
  fuse_session_process_buf(session_, &buf);
}

uint64_t KernelSession::uring_requests() const {
  UringQueues* uring = uring_live_.load(std::memory_order_acquire);
  return uring != nullptr ? uring->requests() : 0;
}

}  // namespace fusehost
