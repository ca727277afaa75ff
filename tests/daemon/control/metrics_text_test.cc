#include "daemon/control/metrics_text.h"

#include "gtest/gtest.h"

namespace fusehost {
namespace {

MountStatsEntry Sample() {
  MountStatsEntry e;
  e.status.mountpoint = "/mnt/a \"b\"";
  e.status.owner_uid = 1001;
  e.stats.kernel_requests = 12;
  MountStats::OpStats op;
  op.name = "lookup";
  op.count = 10;
  op.errors = 2;
  op.p50 = absl::Microseconds(16);
  op.p90 = absl::Microseconds(64);
  op.p99 = absl::Milliseconds(1);
  e.stats.ops.push_back(op);
  e.stats.caches.push_back({"attr", 5, 3});
  e.stats.backend_messages = 4;
  e.stats.backend_ops = 9;
  e.stats.backend_errors = 1;
  return e;
}

TEST(MetricsTextTest, RendersEveryFamily) {
  std::string text = RenderMetrics({Sample()});
  const std::string labels = "mountpoint=\"/mnt/a \\\"b\\\"\",owner=\"1001\"";
  for (const std::string& line : std::vector<std::string>{
           "fusehostd_mounts 1",
           "# TYPE fusehostd_op_requests_total counter",
           "fusehostd_kernel_requests_total{" + labels + "} 12",
           "fusehostd_op_requests_total{" + labels + ",op=\"lookup\"} 10",
           "fusehostd_op_errors_total{" + labels + ",op=\"lookup\"} 2",
           "# TYPE fusehostd_op_latency_seconds summary",
           "fusehostd_op_latency_seconds{" + labels +
               ",op=\"lookup\",quantile=\"0.99\"} 0.001",
           "fusehostd_op_latency_seconds_count{" + labels +
               ",op=\"lookup\"} 10",
           "fusehostd_cache_hits_total{" + labels + ",cache=\"attr\"} 5",
           "fusehostd_cache_misses_total{" + labels + ",cache=\"attr\"} 3",
           "fusehostd_backend_messages_total{" + labels + "} 4",
           "fusehostd_backend_ops_total{" + labels + "} 9",
           "fusehostd_backend_errors_total{" + labels + "} 1",
       }) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos)
        << "missing: " << line << "\n" << text;
  }
}

TEST(MetricsTextTest, NoMounts) {
  std::string text = RenderMetrics({});
  EXPECT_NE(text.find("fusehostd_mounts 0\n"), std::string::npos);
}

TEST(MetricsTextTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

}  // namespace
}  // namespace fusehost
