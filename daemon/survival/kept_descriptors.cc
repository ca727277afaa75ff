#include "daemon/survival/kept_descriptors.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "daemon/survival/keeper_protocol.h"

namespace fusehost {
namespace {

KeptDescriptors::Reply Refuse(absl::string_view text) {
  return {KeeperErrorHeader(text), {}};
}

KeptDescriptors::Reply Ok() { return {kKeeperOk, {}}; }

}  // namespace

std::vector<KeptDescriptors::Reply> KeptDescriptors::Handle(
    absl::string_view header, std::vector<UniqueFd> fds) {
  absl::StatusOr<KeeperHeader> parsed = ParseKeeperHeader(header);
  if (!parsed.ok()) return {Refuse(parsed.status().message())};
  const std::string& verb = parsed->verb;
  const std::string& key = parsed->argument;
  if (verb == kKeeperPut) {
    if (!IsKeeperKey(key)) return {Refuse("PUT wants a key")};
    return {Put(key, std::move(fds))};
  }
  if (verb == kKeeperDel) {
    if (!IsKeeperKey(key)) return {Refuse("DEL wants a key")};
    if (!fds.empty()) return {Refuse("DEL takes no descriptors")};
    entries_.erase(key);
    return {Ok()};
  }
  if (verb == kKeeperGet) {
    if (!key.empty() || !fds.empty()) {
      return {Refuse("GET takes no argument and no descriptors")};
    }
    std::vector<Reply> replies;
    replies.reserve(entries_.size() + 1);
    for (const auto& [entry_key, entry_fds] : entries_) {
      Reply& entry = replies.emplace_back();
      entry.header = absl::StrCat(kKeeperEntry, " ", entry_key);
      for (const UniqueFd& fd : entry_fds) entry.fds.push_back(fd.get());
    }
    replies.push_back({kKeeperEnd, {}});
    return replies;
  }
  if (verb == kKeeperReady) {
    if (!key.empty() || !fds.empty()) {
      return {Refuse("READY takes no argument and no descriptors")};
    }
    ready_ = true;
    return {Ok()};
  }
  return {Refuse(absl::StrCat("unknown request ", verb))};
}

KeptDescriptors::Reply KeptDescriptors::Put(const std::string& key,
                                            std::vector<UniqueFd> fds) {
  if (fds.empty() || fds.size() > kMaxKeeperFds) {
    return Refuse(absl::StrCat("PUT wants 1 to ", kMaxKeeperFds,
                               " descriptors, not ", fds.size()));
  }
  // The replaced descriptors close here.
  entries_[key] = std::move(fds);
  return Ok();
}

absl::Status ServeKeeperRequest(int socket, absl::Duration wait,
                                absl::Duration send_timeout,
                                KeptDescriptors* kept) {
  absl::StatusOr<KeeperMessage> request = ReceiveMessage(socket, wait);
  std::vector<KeptDescriptors::Reply> replies;
  if (request.ok()) {
    replies = kept->Handle(request->header, std::move(request->fds));
  } else if (absl::IsInvalidArgument(request.status())) {
    replies.push_back(Refuse(request.status().message()));
  } else {
    return request.status();
  }
  for (const KeptDescriptors::Reply& reply : replies) {
    absl::Status sent = SendMessage(socket, reply.header, reply.fds,
                                    send_timeout);
    // A reply the peer does not take is not "no request".
    if (absl::IsDeadlineExceeded(sent)) {
      return absl::AbortedError(
          absl::StrCat("the peer took no reply: ", sent.message()));
    }
    if (!sent.ok()) return sent;
  }
  return absl::OkStatus();
}

}  // namespace fusehost
