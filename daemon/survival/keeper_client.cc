#include "daemon/survival/keeper_client.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"

namespace fusehost {
namespace {

// The text of an ERR reply as the call's error.
absl::Status Refused(const KeeperHeader& reply) {
  return absl::InternalError(
      absl::StrCat("the keeper refused: ", reply.argument));
}

}  // namespace

std::unique_ptr<KeeperClient> KeeperClient::FromEnvironment() {
  const char* value = std::getenv(kKeeperFdVariable);
  if (value == nullptr) return nullptr;
  const std::string text = value;
  unsetenv(kKeeperFdVariable);
  int fd = -1;
  if (!absl::SimpleAtoi(text, &fd) || fd < 0) {
    Log("keeper: ignoring %s=%s: not a descriptor number", kKeeperFdVariable,
        text);
    return nullptr;
  }
  // A descriptor that is not the keeper's socket is left alone: it is
  // not the client's to close.
  int type = 0;
  socklen_t type_size = sizeof(type);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_size) != 0 ||
      type != SOCK_SEQPACKET) {
    Log("keeper: ignoring %s=%d: not a seqpacket socket", kKeeperFdVariable,
        fd);
    return nullptr;
  }
  if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    Log("keeper: cannot set close-on-exec on descriptor %d: %s", fd,
        std::strerror(errno));
  }
  return std::make_unique<KeeperClient>(UniqueFd(fd));
}

KeeperClient::KeeperClient(UniqueFd socket, absl::Duration reply_timeout)
    : reply_timeout_(reply_timeout), socket_(std::move(socket)) {}

absl::Status KeeperClient::Put(const std::string& key,
                               const std::vector<int>& fds) {
  if (!IsKeeperKey(key)) {
    return absl::InvalidArgumentError(absl::StrCat("bad keeper key ", key));
  }
  if (fds.empty() || fds.size() > kMaxKeeperFds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the keeper keeps 1 to ", kMaxKeeperFds, " descriptors, not ",
        fds.size()));
  }
  return Call(absl::StrCat(kKeeperPut, " ", key), fds);
}

absl::Status KeeperClient::Remove(const std::string& key) {
  if (!IsKeeperKey(key)) {
    return absl::InvalidArgumentError(absl::StrCat("bad keeper key ", key));
  }
  return Call(absl::StrCat(kKeeperDel, " ", key), {});
}

absl::Status KeeperClient::Ready() { return Call(kKeeperReady, {}); }

absl::StatusOr<std::vector<KeeperClient::Entry>> KeeperClient::TakeAll() {
  absl::MutexLock lock(&mu_);
  const Deadline deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(reply_timeout_);
  absl::Status sent = SendRequest(kKeeperGet, {}, deadline);
  if (!sent.ok()) return sent;
  std::vector<Entry> entries;
  for (;;) {
    absl::StatusOr<KeeperMessage> reply = ReceiveReply(deadline);
    if (!reply.ok()) return reply.status();
    absl::StatusOr<KeeperHeader> parsed = ParseKeeperHeader(reply->header);
    if (parsed.ok() && parsed->verb == kKeeperEnd && parsed->argument.empty()) {
      return entries;
    }
    if (parsed.ok() && parsed->verb == kKeeperErr) return Refused(*parsed);
    if (!parsed.ok() || parsed->verb != kKeeperEntry ||
        !IsKeeperKey(parsed->argument)) {
      return Break(absl::InternalError(
          absl::StrCat("unexpected reply to GET from the keeper: ",
                       reply->header)));
    }
    entries.push_back({parsed->argument, std::move(reply->fds)});
  }
}

absl::Status KeeperClient::Call(const std::string& header,
                                const std::vector<int>& fds) {
  absl::MutexLock lock(&mu_);
  const Deadline deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(reply_timeout_);
  absl::Status sent = SendRequest(header, fds, deadline);
  if (!sent.ok()) return sent;
  absl::StatusOr<KeeperMessage> reply = ReceiveReply(deadline);
  if (!reply.ok()) return reply.status();
  if (reply->header == kKeeperOk) return absl::OkStatus();
  absl::StatusOr<KeeperHeader> parsed = ParseKeeperHeader(reply->header);
  if (parsed.ok() && parsed->verb == kKeeperErr) return Refused(*parsed);
  return Break(absl::InternalError(absl::StrCat(
      "unexpected reply from the keeper: ", reply->header)));
}

absl::Status KeeperClient::SendRequest(const std::string& header,
                                       const std::vector<int>& fds,
                                       Deadline deadline) {
  if (!broken_.ok()) return broken_;
  absl::Status sent = SendMessage(
      socket_.get(), header, fds,
      absl::FromChrono(deadline - std::chrono::steady_clock::now()));
  // A datagram goes whole or not at all: a request that was not sent
  // leaves the connection in step, unless the keeper is gone.
  if (absl::IsUnavailable(sent)) return Break(sent);
  return sent;
}

absl::StatusOr<KeeperMessage> KeeperClient::ReceiveReply(Deadline deadline) {
  absl::StatusOr<KeeperMessage> reply = ReceiveMessage(
      socket_.get(),
      absl::FromChrono(deadline - std::chrono::steady_clock::now()));
  if (!reply.ok()) return Break(reply.status());
  return reply;
}

absl::Status KeeperClient::Break(absl::Status why) {
  socket_.reset();
  broken_ = absl::UnavailableError(
      absl::StrCat("connection to the keeper closed: ", why.message()));
  Log("keeper: %s; mounts will not survive a crash of the daemon",
      std::string(broken_.message()));
  return why;
}

}  // namespace fusehost
