#include "daemon/control/metrics_text.h"

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

constexpr Family kKernelRequests = {"fusehostd_kernel_requests_total",
                                    "counter",
                                    "Kernel requests answered."};
constexpr Family kOpRequests = {"fusehostd_op_requests_total", "counter",
                                "Kernel requests answered, by operation."};
constexpr Family kOpErrors = {"fusehostd_op_errors_total", "counter",
                              "Kernel requests answered with an error."};
constexpr Family kOpLatency = {
    "fusehostd_op_latency_seconds", "summary",
    "Time to answer a kernel request (bucket upper bounds)."};
constexpr Family kCacheHits = {"fusehostd_cache_hits_total", "counter",
                               "Lookups answered from the daemon's caches."};
constexpr Family kCacheMisses = {"fusehostd_cache_misses_total", "counter",
                                 "Lookups the daemon's caches could not answer."};
constexpr Family kCacheEntries = {
    "fusehostd_cache_entries", "gauge",
    "Paths held by the daemon's metadata cache."};
constexpr Family kKernelNodes = {
    "fusehostd_kernel_nodes", "gauge",
    "Files and directories the kernel holds an inode for."};
constexpr Family kCacheBytes = {
    "fusehostd_cache_bytes", "gauge",
    "Memory held by the daemon's metadata cache, as counted against its bound."};
constexpr Family kBackendMessages = {"fusehostd_backend_messages_total",
                                     "counter", "Messages sent to the backend."};
constexpr Family kBackendOps = {"fusehostd_backend_ops_total", "counter",
                                "Operations carried by backend messages."};
constexpr Family kBackendErrors = {
    "fusehostd_backend_errors_total", "counter",
    "Backend messages that failed in transport (down, deadline)."};
constexpr Family kBackendInvalid = {
    "fusehostd_backend_invalid_total", "counter",
    "Backend replies and notices the daemon repaired or refused."};
constexpr Family kPassthroughOpens = {
    "fusehostd_passthrough_opens_total", "counter",
    "Opens whose data the kernel reads and writes in the backend's file."};
constexpr Family kDaemonOpens = {
    "fusehostd_daemon_opens_total", "counter",
    "Passthrough opens the daemon answered itself, beneath a loopback "
    "backend's root directory."};
constexpr Family kDaemonChanges = {
    "fusehostd_daemon_changes_total", "counter",
    "chmod, chown, utimens, unlink, rmdir and create the daemon made itself, "
    "beneath a loopback backend's root directory."};
constexpr Family kDaemonLookups = {
    "fusehostd_daemon_lookups_total", "counter",
    "getattrs the daemon answered itself with the file's attributes, "
    "beneath a loopback backend's root directory."};
constexpr Family kListingsPrefetched = {
    "fusehostd_listings_prefetched_total", "counter",
    "Directory listings fetched ahead of a walker."};
constexpr Family kContentsFetchedAhead = {
    "fusehostd_contents_fetched_ahead_total", "counter",
    "Small files whose contents were fetched ahead of their opens."};
constexpr Family kOpensAnsweredAhead = {
    "fusehostd_opens_answered_ahead_total", "counter",
    "Opens the daemon answered with contents fetched ahead."};
constexpr Family kBackendSessionMessages = {
    "fusehostd_backend_session_messages_total", "counter",
    "Backend messages sent on the backend's Session stream."};
constexpr Family kUringRequests = {
    "fusehostd_uring_requests_total", "counter",
    "Kernel requests taken from the io_uring queues (mount option uring)."};
constexpr Family kWrittenBehind = {
    "fusehostd_written_behind_total", "counter",
    "Changes answered before the backend ran them (write_behind)."};
constexpr Family kWriteBehindFailed = {
    "fusehostd_write_behind_failed_total", "counter",
    "Changes answered early that the backend then refused."};
constexpr Family kWriteBehindQueued = {
    "fusehostd_write_behind_queued", "gauge",
    "Operations waiting in the write-behind queue or in flight."};
constexpr Family kPassthroughRefused = {
    "fusehostd_passthrough_refused_total", "counter",
    "Descriptors from the backend the daemon refused to pass through."};
constexpr Family kBackingFiles = {
    "fusehostd_backing_files", "gauge",
    "Backing files registered with the kernel for passthrough opens."};

void Header(std::string* out, const Family& f) {
  absl::StrAppend(out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name,
                  " ", f.type, "\n");
}

std::string MountLabels(const MountStatus& s) {
  return absl::StrCat("mountpoint=\"", EscapeLabelValue(s.mountpoint),
                      "\",owner=\"", s.owner_uid, "\"");
}

void Sample(std::string* out, const Family& f, const std::string& labels,
            const std::string& value, const char* suffix = "") {
  absl::StrAppend(out, f.name, suffix, "{", labels, "} ", value, "\n");
}

}  // namespace

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string RenderMetrics(const std::vector<MountStatsEntry>& mounts) {
  std::string out;
  absl::StrAppend(&out,
                  "# HELP fusehostd_mounts Mounts the daemon serves.\n"
                  "# TYPE fusehostd_mounts gauge\n"
                  "fusehostd_mounts ",
                  mounts.size(), "\n");
  // Prometheus wants each family's samples together, after its header.
  Header(&out, kKernelRequests);
  for (const MountStatsEntry& m : mounts) {
    Sample(&out, kKernelRequests, MountLabels(m.status),
           absl::StrCat(m.stats.kernel_requests));
  }
  // One series per mount and op (or cache), the value picked by `value`.
  auto per_op = [&](const Family& f, uint64_t MountStats::OpStats::*value) {
    Header(&out, f);
    for (const MountStatsEntry& m : mounts) {
      for (const MountStats::OpStats& op : m.stats.ops) {
        Sample(&out, f,
               absl::StrCat(MountLabels(m.status), ",op=\"", op.name, "\""),
               absl::StrCat(op.*value));
      }
    }
  };
  auto per_cache = [&](const Family& f,
                       uint64_t MountStats::CacheStats::*value) {
    Header(&out, f);
    for (const MountStatsEntry& m : mounts) {
      for (const MountStats::CacheStats& c : m.stats.caches) {
        Sample(&out, f,
               absl::StrCat(MountLabels(m.status), ",cache=\"", c.name, "\""),
               absl::StrCat(c.*value));
      }
    }
  };
  per_op(kOpRequests, &MountStats::OpStats::count);
  per_op(kOpErrors, &MountStats::OpStats::errors);
  Header(&out, kOpLatency);
  for (const MountStatsEntry& m : mounts) {
    for (const MountStats::OpStats& op : m.stats.ops) {
      std::string labels =
          absl::StrCat(MountLabels(m.status), ",op=\"", op.name, "\"");
      const std::pair<const char*, absl::Duration> quantiles[] = {
          {"0.5", op.p50}, {"0.9", op.p90}, {"0.99", op.p99}};
      for (const auto& [q, d] : quantiles) {
        Sample(&out, kOpLatency, absl::StrCat(labels, ",quantile=\"", q, "\""),
               absl::StrCat(absl::ToDoubleSeconds(d)));
      }
      Sample(&out, kOpLatency, labels, absl::StrCat(op.count), "_count");
    }
  }
  per_cache(kCacheHits, &MountStats::CacheStats::hits);
  per_cache(kCacheMisses, &MountStats::CacheStats::misses);
  const std::pair<const Family*, uint64_t MountStats::Snapshot::*> per_mount[] =
      {{&kCacheEntries, &MountStats::Snapshot::cache_entries},
       {&kCacheBytes, &MountStats::Snapshot::cache_bytes},
       {&kKernelNodes, &MountStats::Snapshot::kernel_nodes},
       {&kBackendMessages, &MountStats::Snapshot::backend_messages},
       {&kBackendOps, &MountStats::Snapshot::backend_ops},
       {&kBackendErrors, &MountStats::Snapshot::backend_errors},
       {&kBackendSessionMessages,
        &MountStats::Snapshot::backend_session_messages},
       {&kBackendInvalid, &MountStats::Snapshot::backend_invalid},
       {&kPassthroughOpens, &MountStats::Snapshot::passthrough_opens},
       {&kDaemonOpens, &MountStats::Snapshot::daemon_opens},
       {&kDaemonChanges, &MountStats::Snapshot::daemon_changes},
       {&kDaemonLookups, &MountStats::Snapshot::daemon_lookups},
       {&kListingsPrefetched, &MountStats::Snapshot::listings_prefetched},
       {&kContentsFetchedAhead, &MountStats::Snapshot::contents_fetched_ahead},
       {&kOpensAnsweredAhead, &MountStats::Snapshot::opens_answered_ahead},
       {&kUringRequests, &MountStats::Snapshot::uring_requests},
       {&kWrittenBehind, &MountStats::Snapshot::written_behind},
       {&kWriteBehindFailed, &MountStats::Snapshot::write_behind_failed},
       {&kWriteBehindQueued, &MountStats::Snapshot::write_behind_queued},
       {&kPassthroughRefused, &MountStats::Snapshot::passthrough_refused},
       {&kBackingFiles, &MountStats::Snapshot::backing_files}};
  for (const auto& [family, field] : per_mount) {
    Header(&out, *family);
    for (const MountStatsEntry& m : mounts) {
      Sample(&out, *family, MountLabels(m.status),
             absl::StrCat(m.stats.*field));
    }
  }
  return out;
}

}  // namespace fusehost
