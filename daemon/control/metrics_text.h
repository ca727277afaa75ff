// Renders the mounts' statistics in Prometheus' text exposition format
// (version 0.0.4), one labelled series per mount:
//   fusehostd_mounts                       gauge
//   fusehostd_kernel_requests_total        counter   {mountpoint, owner}
//   fusehostd_op_requests_total            counter   {..., op}
//   fusehostd_op_errors_total              counter   {..., op}
//   fusehostd_op_latency_seconds           summary   {..., op, quantile}
//   fusehostd_cache_hits_total             counter   {..., cache}
//   fusehostd_cache_misses_total           counter   {..., cache}
//   fusehostd_backend_messages_total       counter
//   fusehostd_backend_ops_total            counter
//   fusehostd_backend_errors_total         counter
//   fusehostd_backend_session_messages_total counter
//   fusehostd_backend_invalid_total        counter
//   fusehostd_passthrough_opens_total      counter
//   fusehostd_daemon_opens_total           counter
//   fusehostd_daemon_changes_total         counter
//   fusehostd_daemon_lookups_total         counter
//   fusehostd_listings_prefetched_total    counter
//   fusehostd_contents_fetched_ahead_total counter
//   fusehostd_opens_answered_ahead_total   counter
//   fusehostd_uring_requests_total         counter
//   fusehostd_written_behind_total         counter
//   fusehostd_write_behind_failed_total    counter
//   fusehostd_write_behind_queued          gauge
//   fusehostd_passthrough_refused_total    counter
//   fusehostd_backing_files                gauge
//   fusehostd_kernel_nodes                 gauge
//
// Thread-safe: pure function.

#ifndef FUSE_HOSTD_DAEMON_CONTROL_METRICS_TEXT_H_
#define FUSE_HOSTD_DAEMON_CONTROL_METRICS_TEXT_H_

#include <string>
#include <vector>

#include "daemon/mount_manager.h"

namespace fusehost {

std::string RenderMetrics(const std::vector<MountStatsEntry>& mounts);

// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_METRICS_TEXT_H_
