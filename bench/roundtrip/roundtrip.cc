// Times the backend round trip itself, without the kernel or the daemon: one
// message per Execute call, sent over and over to a backend, the way the
// daemon sends it (gRPC's callback API, a new call per message) or with a
// plain blocking call, and prints the latency's p50, p90 and p99. The
// message is a getattr of "/" (the smallest op there is), or a read of
// --size bytes at offset 0 of --path, opened first.
//
//   roundtrip --target=unix:/run/backend.sock [--calls=20000] [--api=callback]
//   roundtrip --target=... --op=read --path=/big.bin --size=1048576
//
// bench/run.py runs it against each SDK's backend (the "round trip" table).

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/notification.h"
#include "common/payload_heap.h"
#include "proto/filesystem.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "the backend: unix:/path or host:port (plain)");
ABSL_FLAG(int, calls, 20000, "timed calls (after 500 untimed ones)");
ABSL_FLAG(std::string, api, "callback",
          "callback: the daemon's way (stub->async()); sync: a blocking call; "
          "stream: one Session stream, a message each way per batch");
ABSL_FLAG(int, ops, 1, "ops in each message");
ABSL_FLAG(std::string, op, "getattr", "getattr (of /) or read");
ABSL_FLAG(std::string, path, "", "--op=read: the file read");
ABSL_FLAG(int, size, 1 << 20, "--op=read: bytes per read");
ABSL_FLAG(std::vector<std::string>, arg, {},
          "extra integer channel arguments, name=value,...");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = fusehost::v1;

// The Session stream of --api=stream, opened once.
struct Session {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::Batch, v1::BatchResult>> stream;
};

bool CheckResult(const v1::Batch& batch, const v1::BatchResult& result) {
  if (result.results_size() != batch.ops_size()) return false;
  for (const v1::OpResult& r : result.results()) {
    if (r.posix_errno() != 0) {
      std::fprintf(stderr, "op failed: errno %d\n", r.posix_errno());
      return false;
    }
  }
  return true;
}

bool StreamOnce(Session& session, v1::Batch& batch) {
  batch.set_sequence(batch.sequence() + 1);
  v1::BatchResult result;
  if (!session.stream->Write(batch) || !session.stream->Read(&result)) {
    grpc::Status status = session.stream->Finish();
    std::fprintf(stderr, "Session failed: %s\n",
                 status.error_message().c_str());
    return false;
  }
  if (result.sequence() != batch.sequence()) return false;
  return CheckResult(batch, result);
}

bool CallOnce(v1::FileSystem::Stub& stub, const v1::Batch& batch,
              bool callback) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  v1::BatchResult result;
  grpc::Status status;
  if (callback) {
    absl::Notification done;
    stub.async()->Execute(&context, &batch, &result, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
  } else {
    status = stub.Execute(&context, batch, &result);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "Execute failed: %s\n", status.error_message().c_str());
    return false;
  }
  return CheckResult(batch, result);
}

double Percentile(const std::vector<double>& sorted, double p) {
  size_t i = static_cast<size_t>(p * (sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // As the daemon does (daemon/main.cc).
  fusehost::KeepPayloadsInHeap();
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string api = absl::GetFlag(FLAGS_api);
  if (target.empty() ||
      (api != "callback" && api != "sync" && api != "stream")) {
    std::fprintf(stderr,
                 "usage: roundtrip --target=unix:/path "
                 "[--calls=N] [--api=callback|sync|stream] [--ops=N]\n");
    return 2;
  }
  // The daemon's channel settings that matter here: a stream window large
  // enough for a whole read reply (backend_channel_connections.cc).
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  for (const std::string& a : absl::GetFlag(FLAGS_arg)) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) continue;
    args.SetInt(a.substr(0, eq), std::stoi(a.substr(eq + 1)));
  }
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::FileSystem::NewStub(channel);

  v1::InitRequest init;
  init.set_mount_id(1);
  init.set_protocol_version(1);
  v1::InitReply init_reply;
  grpc::ClientContext init_context;
  init_context.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(10));
  grpc::Status s = stub->Init(&init_context, init, &init_reply);
  if (!s.ok()) {
    std::fprintf(stderr, "Init failed: %s\n", s.error_message().c_str());
    return 1;
  }

  const bool callback = api == "callback";
  const std::string kind = absl::GetFlag(FLAGS_op);
  const std::string path = absl::GetFlag(FLAGS_path);
  uint64_t fh = 0;
  if (kind == "read") {
    if (path.empty()) {
      std::fprintf(stderr, "--op=read needs --path\n");
      return 2;
    }
    v1::Batch open;
    open.set_mount_id(1);
    v1::Op* op = open.add_ops();
    op->set_id(1);
    op->mutable_open()->set_path(path);
    op->mutable_open()->set_flags(O_RDONLY);
    grpc::ClientContext context;
    v1::BatchResult opened;
    grpc::Status status = stub->Execute(&context, open, &opened);
    if (!status.ok() || opened.results_size() != 1 ||
        opened.results(0).posix_errno() != 0) {
      std::fprintf(stderr, "open %s failed\n", path.c_str());
      return 1;
    }
    fh = opened.results(0).open().fh();
  } else if (kind != "getattr") {
    std::fprintf(stderr, "--op: getattr or read\n");
    return 2;
  }
  v1::Batch batch;
  batch.set_mount_id(1);
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_ops)); ++i) {
    v1::Op* op = batch.add_ops();
    op->set_id(i + 1);
    if (kind == "read") {
      op->mutable_read()->set_path(path);
      op->mutable_read()->set_fh(fh);
      op->mutable_read()->set_size(absl::GetFlag(FLAGS_size));
    } else {
      op->mutable_getattr()->set_path("/");
    }
  }
  Session session;
  if (api == "stream") session.stream = stub->Session(&session.context);
  auto once = [&] {
    return session.stream ? StreamOnce(session, batch)
                          : CallOnce(*stub, batch, callback);
  };
  for (int i = 0; i < 500; ++i) {
    if (!once()) return 1;
  }
  const int calls = std::max(1, absl::GetFlag(FLAGS_calls));
  std::vector<double> micros;
  micros.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    Clock::time_point start = Clock::now();
    if (!once()) return 1;
    micros.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  if (session.stream) {
    session.stream->WritesDone();
    session.stream->Finish();
  }
  std::sort(micros.begin(), micros.end());
  std::printf("op=%s api=%s ops=%d calls=%d p50=%.1fus p90=%.1fus p99=%.1fus\n",
              kind.c_str(), api.c_str(), batch.ops_size(), calls,
              Percentile(micros, 0.5),
              Percentile(micros, 0.9), Percentile(micros, 0.99));
  return 0;
}
