// The wire format between the daemon and its keeper (keeper.h), the process
// that holds each mount's descriptors so that they outlive a daemon crash.
//
// The two talk over an AF_UNIX SOCK_SEQPACKET socket pair. Each message is
// one datagram: a short header of printable ASCII, "VERB" or "VERB ARG",
// with descriptors attached as SCM_RIGHTS (at most kMaxKeeperFds).
//
//   daemon -> keeper              keeper -> daemon
//   PUT <key> + 1..8 fds          OK | ERR <text>   keeps them, replacing
//                                                   (and closing) what was
//                                                   kept under <key>
//   DEL <key>                     OK | ERR <text>   closes and forgets (OK
//                                                   for an unknown key too)
//   GET                           ENTRY <key> + fds, one per kept entry in
//                                 key order (copies: the keeper keeps its
//                                 own), then END
//
// Keys are 1..kMaxKeeperKey characters of [A-Za-z0-9._-]. Every request is
// answered, a malformed one with ERR, so that the daemon never waits for
// a reply that does not come.
//
// Thread use: free functions; two threads must not receive from (or send
// to) one socket at once, or their messages interleave.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_PROTOCOL_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_PROTOCOL_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace fusehost {

// Names the daemon's end of the socket in the daemon's environment.
inline constexpr char kKeeperFdVariable[] = "FUSE_HOSTD_KEEPER_FD";

inline constexpr size_t kMaxKeeperFds = 8;
inline constexpr size_t kMaxKeeperKey = 64;
// A longer header is refused when sent and seen truncated when received.
inline constexpr size_t kMaxKeeperHeader = 256;

inline constexpr char kKeeperPut[] = "PUT";
inline constexpr char kKeeperDel[] = "DEL";
inline constexpr char kKeeperGet[] = "GET";
// The daemon serves (it took its mounts back): a crash from now on is not
// one of a daemon that cannot start, and is restarted at once.
inline constexpr char kKeeperReady[] = "READY";
inline constexpr char kKeeperOk[] = "OK";
inline constexpr char kKeeperErr[] = "ERR";
inline constexpr char kKeeperEntry[] = "ENTRY";
inline constexpr char kKeeperEnd[] = "END";

// 1..kMaxKeeperKey characters of [A-Za-z0-9._-].
bool IsKeeperKey(absl::string_view key);

// A header split at its first space: "PUT a" is {"PUT", "a"}.
struct KeeperHeader {
  std::string verb;
  std::string argument;  // empty when the header has no space
};

// InvalidArgument unless `header` is printable ASCII and starts with a
// verb of capital letters.
absl::StatusOr<KeeperHeader> ParseKeeperHeader(absl::string_view header);

// "ERR <text>", cut to kMaxKeeperHeader, with anything unprintable in
// `text` replaced.
std::string KeeperErrorHeader(absl::string_view text);

struct KeeperMessage {
  std::string header;
  std::vector<UniqueFd> fds;
};

// Sends one message; the kernel gives the receiver its own copies of
// `fds`, which stay the caller's. Waits at most `timeout` for room on a
// full socket (DeadlineExceeded). InvalidArgument for an empty or
// too-long header, or more than kMaxKeeperFds descriptors.
absl::Status SendMessage(int socket, absl::string_view header,
                         const std::vector<int>& fds,
                         absl::Duration timeout = absl::InfiniteDuration());

// Receives one message, waiting at most `timeout` (DeadlineExceeded).
// Received descriptors are close-on-exec. Unavailable once the peer has
// closed its end (an empty datagram reads the same). InvalidArgument for a
// message cut by the kernel (a header over kMaxKeeperHeader bytes, more
// than kMaxKeeperFds descriptors, or descriptors over the process's
// limit); whatever descriptors came with it are closed.
absl::StatusOr<KeeperMessage> ReceiveMessage(int socket,
                                             absl::Duration timeout);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_KEEPER_PROTOCOL_H_
