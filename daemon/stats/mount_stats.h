// Counters and latency histograms of one mount, updated lock-free from the
// kernel adapter, the caches and the backend channel, and read as a snapshot
// by `fuse-hostctl stats` and the metrics endpoint.
//
// Thread-safe: every update is a relaxed atomic add; a snapshot is a
// consistent-enough copy (counters may move while it is taken).

#ifndef FUSE_HOSTD_DAEMON_STATS_MOUNT_STATS_H_
#define FUSE_HOSTD_DAEMON_STATS_MOUNT_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace fusehost {

// Kernel request kinds, one per FUSE operation the daemon answers.
enum class KernelOp : int {
  kLookup,
  kForget,
  kGetattr,
  kSetattr,
  kReadlink,
  kMknod,
  kMkdir,
  kUnlink,
  kRmdir,
  kSymlink,
  kRename,
  kLink,
  kOpen,
  kRead,
  kWrite,
  kFlush,
  kRelease,
  kFsync,
  kOpendir,
  kReaddir,
  kReaddirplus,
  kReleasedir,
  kFsyncdir,
  kStatfs,
  kSetxattr,
  kGetxattr,
  kListxattr,
  kRemovexattr,
  kAccess,
  kCreate,
  kGetlk,
  kSetlk,
  kFlock,
  kFallocate,
  kCopyFileRange,
  kLseek,
  kIoctl,
  kCount  // not an op
};

const char* KernelOpName(KernelOp op);

// What the daemon caches (see the caches' own files).
enum class CacheKind : int { kAttr, kDir, kSymlink, kNegative, kXattr, kCount };

const char* CacheKindName(CacheKind kind);

// Latency histogram with power-of-two microsecond buckets: bucket i holds
// latencies in [2^(i-1), 2^i) us, bucket 0 those under 1 us.
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 32;

  void Record(absl::Duration latency);
  uint64_t count() const;
  // The upper bound of the bucket holding quantile q (0 < q <= 1); zero when
  // nothing was recorded.
  absl::Duration Quantile(double q) const;
  std::array<uint64_t, kBuckets> Buckets() const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
};

class MountStats {
 public:
  struct OpStats {
    std::string name;
    uint64_t count = 0;
    uint64_t errors = 0;
    absl::Duration p50, p90, p99;
  };
  struct CacheStats {
    std::string name;
    uint64_t hits = 0;
    uint64_t misses = 0;
  };
  struct Snapshot {
    std::vector<OpStats> ops;  // only ops seen at least once
    std::vector<CacheStats> caches;
    uint64_t kernel_requests = 0;
    uint64_t backend_messages = 0;
    uint64_t backend_ops = 0;
    uint64_t backend_errors = 0;  // messages that failed in transport
    // Of backend_messages, those sent on the Session stream.
    uint64_t backend_session_messages = 0;
    // Replies and notices the reply validator repaired or refused.
    uint64_t backend_invalid = 0;
    // Paths the daemon's metadata cache holds, and its limit (both 0 when
    // the mount does not cache). Filled by the mount, not by MountStats.
    uint64_t cache_entries = 0;
    uint64_t cache_limit = 0;
    // Nodes the kernel holds an inode for (filled by the mount).
    uint64_t kernel_nodes = 0;
    uint64_t cache_bytes = 0;
    uint64_t cache_bytes_limit = 0;
    // Passthrough (filled by the mount): opens answered with a backing
    // file, descriptors refused, backing files registered now.
    uint64_t passthrough_opens = 0;
    uint64_t passthrough_refused = 0;
    uint64_t backing_files = 0;
    // Of those opens, the ones the daemon answered itself (beneath a
    // loopback backend's root directory).
    uint64_t daemon_opens = 0;
    // chmod, chown, utimens, unlink, rmdir and create the daemon made itself
    // beneath that directory (passthrough/changes_by_daemon.h).
    uint64_t daemon_changes = 0;
    // getattrs (lookups on a cold cache) the daemon answered itself with
    // the file's lstat beneath that directory.
    uint64_t daemon_lookups = 0;
    // Directory listings fetched ahead of the walker
    // (pipeline/listing_prefetcher.h).
    uint64_t listings_prefetched = 0;
    // Small files fetched ahead of their opens, and opens answered with
    // them (fuse/contents_ahead.h).
    uint64_t contents_fetched_ahead = 0;
    uint64_t opens_answered_ahead = 0;
    // Kernel requests taken from the io_uring queues (fuse/uring_queues.h).
    uint64_t uring_requests = 0;
    // Write-behind (mount option write_behind): changes answered before
    // the backend ran them, those the backend then refused, and ops queued
    // or in flight now.
    uint64_t written_behind = 0;
    uint64_t write_behind_failed = 0;
    uint64_t write_behind_queued = 0;
  };

  // A kernel request answered after `latency`, with `posix_errno` (0: ok).
  void RecordRequest(KernelOp op, absl::Duration latency, int posix_errno);
  // One message to the backend carrying `ops` operations.
  // `on_session`: sent on the backend's Session stream, not an Execute call.
  void RecordBackendMessage(int ops, bool transport_failed,
                            bool on_session = false);
  void RecordCacheLookup(CacheKind kind, bool hit);
  // A backend reply or notice that had to be repaired or refused.
  void RecordInvalidReply();

  Snapshot Snap() const;

 private:
  static constexpr int kOps = static_cast<int>(KernelOp::kCount);
  static constexpr int kCaches = static_cast<int>(CacheKind::kCount);

  std::array<std::atomic<uint64_t>, kOps> op_errors_{};
  std::array<LatencyHistogram, kOps> op_latency_;
  std::array<std::atomic<uint64_t>, kCaches> cache_hits_{};
  std::array<std::atomic<uint64_t>, kCaches> cache_misses_{};
  std::atomic<uint64_t> backend_messages_{0};
  std::atomic<uint64_t> backend_ops_{0};
  std::atomic<uint64_t> backend_errors_{0};
  std::atomic<uint64_t> backend_session_messages_{0};
  std::atomic<uint64_t> backend_invalid_{0};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_STATS_MOUNT_STATS_H_
