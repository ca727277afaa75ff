#include "daemon/control/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

std::string Get(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

TEST(MetricsServerTest, ServesMetricsAndNothingElse) {
  int renders = 0;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Create(MetricsServer::Options{
          "127.0.0.1:0", [&renders] {
            ++renders;
            return std::string("fusehostd_mounts 0\n");
          }});
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  std::string r = Get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(r.find("\r\n\r\nfusehostd_mounts 0\n"), std::string::npos);
  EXPECT_EQ(renders, 1);
  EXPECT_EQ(Get(port, "GET / HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 404", 0), 0u);
  EXPECT_EQ(Get(port, "POST /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 405", 0),
            0u);
  // A client that sends nothing is dropped after the timeout; the next one
  // is served.
  int idle = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(Get(port, "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0),
            0u);
  close(idle);
}

TEST(MetricsServerTest, BadAddress) {
  EXPECT_FALSE(MetricsServer::Create({"nonsense", [] { return ""; }}).ok());
  EXPECT_FALSE(
      MetricsServer::Create({"256.1.1.1:80", [] { return ""; }}).ok());
}

}  // namespace
}  // namespace fusehost
