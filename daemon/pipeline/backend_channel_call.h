// One message of a BackendChannel on its way: what was sent, and how each
// of its ops is answered. Shared by the channel's files, not by its users.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_CALL_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "daemon/pipeline/backend_channel.h"
#include "google/protobuf/arena.h"

namespace fusehost {

// The arenas answers are parsed into.
inline google::protobuf::ArenaOptions CallArenaOptions() {
  google::protobuf::ArenaOptions options;
  // A page of a listing (a few hundred entries) in a few blocks.
  options.start_block_size = 4096;
  options.max_block_size = 64 * 1024;
  return options;
}

struct BackendChannel::Call {
  grpc::ClientContext context;
  v1::Batch request;
  // The answer is parsed into an arena: a listing is thousands of small
  // messages (entries, attributes, times), each otherwise a malloc and a
  // free, a large part of the daemon's cost of taking in a listing.
  google::protobuf::Arena arena{CallArenaOptions()};
  v1::BatchResult* response =
      google::protobuf::Arena::CreateMessage<v1::BatchResult>(&arena);
  // Sent on a Session stream (of `conn`): the arena its result came in,
  // which `response` then points into, and how to cancel it.
  std::unique_ptr<google::protobuf::Arena> session_arena;
  BackendSession* session = nullptr;
  std::atomic<uint64_t> sequence{0};
  std::vector<Done> done;  // by op position in `request`
  std::vector<std::function<void(v1::OpResult*)>> check;  // likewise
  std::vector<OpHandles> tokens;  // likewise: what the op carried
  std::vector<int> reroutes;      // likewise (RoutedOp)
  std::function<void()> sent;
  // Set for the op that reopens a handle: it gets the result instead of
  // `done`, with the instance that answered, and no token is issued.
  std::function<void(const v1::OpResult&, uint64_t)> reopened;
  // Set once the message is on its way (it may wait for a connection).
  std::shared_ptr<Connection> conn;
  // How often it was sent again after its connection broke (see
  // RetryOnNewConnection).
  int retries = 0;
  // Plain TCP: the channel was connected when the message went out, so an
  // UNAVAILABLE is a connection that broke, not a backend never reached.
  bool started_connected = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BACKEND_CHANNEL_CALL_H_
