#include "daemon/passthrough/reply_patcher.h"

#include <cstring>

#include "daemon/passthrough/fuse_passthrough_abi.h"

namespace fusehost {
namespace {

using fuse_abi::InHeader;
using fuse_abi::InitIn;
using fuse_abi::InitOut;
using fuse_abi::OpenOut;
using fuse_abi::OutHeader;

// Plain copies: the buffers carry no alignment promise.
template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void Store(char* p, const T& v) {
  std::memcpy(p, &v, sizeof(T));
}

constexpr size_t kOpenReplySize = sizeof(OutHeader) + sizeof(OpenOut);
constexpr size_t kCreateReplySize =
    sizeof(OutHeader) + fuse_abi::kEntryOutSize + sizeof(OpenOut);

}  // namespace

void ReplyPatcher::SawRequest(const void* data, size_t size) {
  if (size < sizeof(InHeader)) return;
  const char* p = static_cast<const char*>(data);
  InHeader in = Load<InHeader>(p);
  if (in.len != size) return;  // not a request the kernel framed
  if (in.opcode == fuse_abi::kOpInit && !saw_init_.load()) {
    bool offered = false;
    if (size >= sizeof(InHeader) + sizeof(InitIn)) {
      InitIn init = Load<InitIn>(p + sizeof(InHeader));
      uint64_t flags = init.flags;
      if (flags & fuse_abi::kInitExt) {
        flags |= static_cast<uint64_t>(init.flags2) << 32;
      }
      offered = (flags & fuse_abi::kInitPassthrough) != 0;
    }
    init_unique_.store(in.unique);
    kernel_offered_.store(offered);
    saw_init_.store(true);
    return;
  }
  if ((in.opcode == fuse_abi::kOpOpen || in.opcode == fuse_abi::kOpCreate) &&
      enabled_.load(std::memory_order_relaxed)) {
    absl::MutexLock lock(&mu_);
    open_requests_[in.unique] = in.opcode;
  }
}

bool ReplyPatcher::PatchInit(char* data, size_t size) {
  if (!offer_ || !kernel_offered_.load() || enabled_.load()) return false;
  if (size != sizeof(OutHeader) + sizeof(InitOut)) return false;
  OutHeader out = Load<OutHeader>(data);
  if (out.error != 0 || out.len != size) return false;
  InitOut init = Load<InitOut>(data + sizeof(OutHeader));
  if (init.flags & fuse_abi::kInitWritebackCache) return false;
  init.flags |= static_cast<uint32_t>(fuse_abi::kInitExt);
  init.flags2 |= static_cast<uint32_t>(fuse_abi::kInitPassthrough >> 32);
  init.max_stack_depth = 1;
  Store(data + sizeof(OutHeader), init);
  enabled_.store(true);
  return true;
}

ReplyPatcher::Outcome ReplyPatcher::PatchReply(char* data, size_t size,
                                               int32_t backing_id) {
  if (size < sizeof(OutHeader)) return Outcome::kUntouched;
  OutHeader out = Load<OutHeader>(data);
  if (saw_init_.load() && out.unique == init_unique_.load() &&
      out.unique != 0) {
    // Only the first reply with INIT's unique answers INIT.
    init_unique_.store(0);
    return PatchInit(data, size) ? Outcome::kPatched : Outcome::kUntouched;
  }
  // Only replies of these sizes can answer an OPEN or CREATE (an error
  // reply is a bare header): others need no look-up.
  if (size != sizeof(OutHeader) && size != kOpenReplySize &&
      size != kCreateReplySize) {
    return backing_id > 0 ? Outcome::kRefused : Outcome::kUntouched;
  }
  uint32_t opcode = 0;
  if (enabled_.load(std::memory_order_relaxed) && out.unique != 0) {
    absl::MutexLock lock(&mu_);
    auto it = open_requests_.find(out.unique);
    if (it != open_requests_.end()) {
      opcode = it->second;
      open_requests_.erase(it);
    }
  }
  if (backing_id <= 0) return Outcome::kUntouched;
  size_t expected = opcode == fuse_abi::kOpOpen     ? kOpenReplySize
                    : opcode == fuse_abi::kOpCreate ? kCreateReplySize
                                                    : 0;
  bool open_shaped = size == kOpenReplySize || size == kCreateReplySize;
  if (!open_shaped || out.error != 0 || out.len != size) {
    return Outcome::kRefused;  // not an open reply at all: left as it is
  }
  char* open_at = data + size - sizeof(OpenOut);
  OpenOut open = Load<OpenOut>(open_at);
  if (expected != size) {
    // A well-formed open reply, but not to a request we can vouch for.
    open.open_flags |= fuse_abi::kOpenDirectIo;
    Store(open_at, open);
    return Outcome::kRefused;
  }
  open.open_flags |= fuse_abi::kOpenPassthrough;
  open.backing_id = backing_id;
  Store(open_at, open);
  return Outcome::kPatched;
}

}  // namespace fusehost
