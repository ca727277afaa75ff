#include "daemon/stats/mount_stats.h"

#include <cmath>

namespace fusehost {

const char* KernelOpName(KernelOp op) {
  static constexpr const char* kNames[] = {
      "lookup",   "forget",      "getattr",    "setattr",     "readlink",
      "mknod",    "mkdir",       "unlink",     "rmdir",       "symlink",
      "rename",   "link",        "open",       "read",        "write",
      "flush",    "release",     "fsync",      "opendir",     "readdir",
      "readdirplus", "releasedir", "fsyncdir", "statfs",      "setxattr",
      "getxattr", "listxattr",   "removexattr", "access",     "create",
      "getlk",    "setlk",       "flock",      "fallocate",   "copy_file_range",
      "lseek",    "ioctl"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) ==
                static_cast<size_t>(KernelOp::kCount));
  return kNames[static_cast<int>(op)];
}

const char* CacheKindName(CacheKind kind) {
  static constexpr const char* kNames[] = {"attr", "dir", "symlink", "negative",
                                           "xattr"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) ==
                static_cast<size_t>(CacheKind::kCount));
  return kNames[static_cast<int>(kind)];
}

void LatencyHistogram::Record(absl::Duration latency) {
  int64_t us = absl::ToInt64Microseconds(latency);
  int bucket = 0;
  while (us > 0 && bucket < kBuckets - 1) {
    us >>= 1;
    ++bucket;
  }
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

std::array<uint64_t, LatencyHistogram::kBuckets> LatencyHistogram::Buckets()
    const {
  std::array<uint64_t, kBuckets> out;
  for (int i = 0; i < kBuckets; ++i) {
    out[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  return out;
}

absl::Duration LatencyHistogram::Quantile(double q) const {
  std::array<uint64_t, kBuckets> b = Buckets();
  uint64_t total = 0;
  for (uint64_t n : b) total += n;
  if (total == 0) return absl::ZeroDuration();
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * total));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += b[i];
    if (seen >= rank) return absl::Microseconds(int64_t{1} << i);
  }
  return absl::Microseconds(int64_t{1} << (kBuckets - 1));
}

void MountStats::RecordRequest(KernelOp op, absl::Duration latency,
                               int posix_errno) {
  int i = static_cast<int>(op);
  op_latency_[i].Record(latency);
  if (posix_errno != 0) op_errors_[i].fetch_add(1, std::memory_order_relaxed);
}

void MountStats::RecordBackendMessage(int ops, bool transport_failed,
                                      bool on_session) {
  backend_messages_.fetch_add(1, std::memory_order_relaxed);
  if (on_session) {
    backend_session_messages_.fetch_add(1, std::memory_order_relaxed);
  }
  backend_ops_.fetch_add(ops, std::memory_order_relaxed);
  if (transport_failed) backend_errors_.fetch_add(1, std::memory_order_relaxed);
}

void MountStats::RecordCacheLookup(CacheKind kind, bool hit) {
  int i = static_cast<int>(kind);
  (hit ? cache_hits_ : cache_misses_)[i].fetch_add(1, std::memory_order_relaxed);
}

void MountStats::RecordInvalidReply() {
  backend_invalid_.fetch_add(1, std::memory_order_relaxed);
}

MountStats::Snapshot MountStats::Snap() const {
  Snapshot s;
  for (int i = 0; i < kOps; ++i) {
    uint64_t n = op_latency_[i].count();
    s.kernel_requests += n;
    if (n == 0) continue;
    OpStats o;
    o.name = KernelOpName(static_cast<KernelOp>(i));
    o.count = n;
    o.errors = op_errors_[i].load(std::memory_order_relaxed);
    o.p50 = op_latency_[i].Quantile(0.5);
    o.p90 = op_latency_[i].Quantile(0.9);
    o.p99 = op_latency_[i].Quantile(0.99);
    s.ops.push_back(std::move(o));
  }
  for (int i = 0; i < kCaches; ++i) {
    CacheStats c;
    c.name = CacheKindName(static_cast<CacheKind>(i));
    c.hits = cache_hits_[i].load(std::memory_order_relaxed);
    c.misses = cache_misses_[i].load(std::memory_order_relaxed);
    s.caches.push_back(std::move(c));
  }
  s.backend_messages = backend_messages_.load(std::memory_order_relaxed);
  s.backend_ops = backend_ops_.load(std::memory_order_relaxed);
  s.backend_session_messages =
      backend_session_messages_.load(std::memory_order_relaxed);
  s.backend_errors = backend_errors_.load(std::memory_order_relaxed);
  s.backend_invalid = backend_invalid_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace fusehost
