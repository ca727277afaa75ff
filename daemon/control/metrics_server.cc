#include "daemon/control/metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/unique_fd.h"

namespace fusehost {
namespace {

constexpr size_t kMaxRequest = 8192;

void SetTimeouts(int fd) {
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // timeout or peer gone: give up on this client
    done += n;
  }
}

std::string Response(const char* status, const char* type,
                     const std::string& body) {
  return absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    Options options) {
  const std::string& address = options.address;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' is not HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(),
                       &hints, &res);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address, "': ", gai_strerror(rc)));
  }
  UniqueFd fd;
  int err = 0;
  for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd.reset(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol));
    if (!fd.valid()) continue;
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd.get(), 16) == 0) {
      err = 0;
      break;
    }
    err = errno;
    fd.reset();
  }
  freeaddrinfo(res);
  if (!fd.valid()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on metrics address ", address, ": ", strerror(err)));
  }
  struct sockaddr_storage bound;
  socklen_t len = sizeof(bound);
  int bound_port = 0;
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    bound_port = ntohs(bound.ss_family == AF_INET6
                           ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(std::move(options), fd.release(), bound_port));
  server->acceptor_.Start();
  return server;
}

MetricsServer::MetricsServer(Options options, int listen_fd, int port)
    : options_(std::move(options)),
      port_(port),
      acceptor_(Acceptor::Options{listen_fd, SOCK_CLOEXEC, "metrics endpoint",
                                  [this](int fd) { Serve(fd); }}) {}

void MetricsServer::Serve(int raw_fd) {
  UniqueFd fd(raw_fd);
  SetTimeouts(fd.get());
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos &&
         request.size() < kMaxRequest) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, n);
  }
  absl::string_view line = request;
  line = line.substr(0, line.find_first_of("\r\n"));
  std::string reply;
  if (!absl::ConsumePrefix(&line, "GET ")) {
    reply = Response("405 Method Not Allowed", "text/plain",
                     "only GET /metrics\n");
  } else {
    absl::string_view path = line.substr(0, line.find(' '));
    if (path == "/metrics" || absl::StartsWith(path, "/metrics?")) {
      reply = Response("200 OK", "text/plain; version=0.0.4; charset=utf-8",
                       options_.render());
    } else {
      reply = Response("404 Not Found", "text/plain", "try /metrics\n");
    }
  }
  SendAll(fd.get(), reply);
}

}  // namespace fusehost
