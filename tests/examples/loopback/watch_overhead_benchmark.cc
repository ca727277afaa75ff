// What watching the backing directory costs a loopback filesystem while
// writes come through the mount: "untars" files through LoopbackFs (the
// operations tar makes through a mount, minus the kernel and gRPC) with
// watching off and on, and prints the process CPU time of each.
//
// Modes, run alternately several times:
//   off     Options::watch = false
//   on      watching; no Invalidations stream open (notices are dropped)
//   stream  watching, served by a BackendServer with one Invalidations
//           stream read by an in-process gRPC client, as fuse-hostd reads
//           it (the client's reading is counted too)
//
//   bazel run -c opt //tests/examples/loopback:watch_overhead_benchmark --
//       --files=2000 --rounds=5 --dir=/tmp

#include <dirent.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/backend_server.h"
#include "examples/loopback/loopback_fs.h"
#include "proto/filesystem.grpc.pb.h"
#include "tests/examples/loopback/temp_dir.h"

ABSL_FLAG(int, files, 2000, "Files per untar.");
ABSL_FLAG(int, files_per_dir, 100, "Files per directory.");
ABSL_FLAG(int, bytes, 4096, "Bytes per file.");
ABSL_FLAG(int, rounds, 5, "Rounds of each mode.");
ABSL_FLAG(std::string, dir, "/tmp", "Where to make the trees.");

namespace fusehost {
namespace examples {
namespace {

absl::Duration ProcessCpu() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) +
         absl::DurationFromTimeval(usage.ru_stime);
}

// CPU time of this process's thread named `name`, zero when there is none.
// From /proc/self/task/*/schedstat (nanoseconds on the CPU), since the
// clock-tick counts in .../stat are too coarse for a thread this idle.
absl::Duration ThreadCpu(const std::string& name) {
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) return absl::ZeroDuration();
  absl::Duration total;
  while (struct dirent* task = readdir(tasks)) {
    const std::string dir = std::string("/proc/self/task/") + task->d_name;
    std::ifstream comm(dir + "/comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name != name) continue;
    std::ifstream schedstat(dir + "/schedstat");
    int64_t on_cpu_ns = 0;
    schedstat >> on_cpu_ns;
    total += absl::Nanoseconds(on_cpu_ns);
  }
  closedir(tasks);
  return total;
}

// The operations `tar -x` makes through a mount for each member: create,
// write, close, then restore mode and times.
void Untar(LoopbackFs& fs, int files, int files_per_dir, int bytes) {
  Context ctx;
  ctx.uid = geteuid();
  ctx.gid = getegid();
  const std::string data(static_cast<size_t>(bytes), 'x');
  for (int i = 0; i < files; ++i) {
    const std::string dir = "/d" + std::to_string(i / files_per_dir);
    if (i % files_per_dir == 0) fs.Mkdir(ctx, dir, 0755);
    const std::string path = dir + "/f" + std::to_string(i);
    FileInfo fi;
    fi.flags = O_WRONLY | O_CREAT | O_EXCL;
    if (fs.Create(ctx, path, S_IFREG | 0600, &fi) != 0) {
      std::fprintf(stderr, "create %s failed\n", path.c_str());
      std::exit(1);
    }
    size_t written = 0;
    fs.Write(ctx, path, data, 0, fi, &written);
    fs.Flush(ctx, path, fi);
    fs.Release(ctx, path, fi);
    fs.Chmod(ctx, path, 0644, nullptr);
    TimeSpec when;
    when.time.tv_sec = 1700000000;
    fs.Utimens(ctx, path, when, when, nullptr);
  }
}

struct Result {
  absl::Duration cpu;
  absl::Duration wall;
  absl::Duration watcher_cpu;
  long notices = 0;
};

Result RunOnce(const std::string& mode) {
  TempDir dir("watch-bench-" + mode, absl::GetFlag(FLAGS_dir));
  const std::string& root = dir.path();
  LoopbackFs::Options options;
  options.root = root;
  options.watch = mode != "off";
  auto fs = LoopbackFs::New(options);
  if (!fs.ok()) {
    std::fprintf(stderr, "%s\n", std::string(fs.status().message()).c_str());
    std::exit(1);
  }
  std::unique_ptr<BackendServer> server;
  std::unique_ptr<v1::FileSystem::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::Invalidation>> reader;
  std::atomic<long> notices{0};
  std::thread drain;
  if (mode == "stream") {
    ServeOptions serve;
    serve.listen = "unix:" + root + ".sock";
    auto started = BackendServer::Start(**fs, serve);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n",
                   std::string(started.status().message()).c_str());
      std::exit(1);
    }
    server = *std::move(started);
    stub = v1::FileSystem::NewStub(
        grpc::CreateChannel(serve.listen, grpc::InsecureChannelCredentials()));
    reader = stub->Invalidations(&context, v1::InvalidationsRequest());
    reader->WaitForInitialMetadata();
    drain = std::thread([&] {
      v1::Invalidation notice;
      while (reader->Read(&notice)) ++notices;
    });
  }

  const absl::Duration cpu_before = ProcessCpu();
  const absl::Time wall_before = absl::Now();
  Untar(**fs, absl::GetFlag(FLAGS_files), absl::GetFlag(FLAGS_files_per_dir),
        absl::GetFlag(FLAGS_bytes));
  Result result;
  result.wall = absl::Now() - wall_before;
  // Lets the watcher finish the last burst before the CPU clock stops.
  if (mode != "off") absl::SleepFor(absl::Milliseconds(50));
  result.cpu = ProcessCpu() - cpu_before;
  result.watcher_cpu = ThreadCpu("tree-watcher");

  if (server != nullptr) {
    server->Shutdown(absl::Seconds(1));
    drain.join();
    reader->Finish();
    result.notices = notices;
  }
  fs->reset();
  return result;
}

int Main() {
  const std::vector<std::string> modes = {"off", "on", "stream"};
  std::vector<std::vector<Result>> results(modes.size());
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (size_t m = 0; m < modes.size(); ++m) {
      results[m].push_back(RunOnce(modes[m]));
    }
  }
  std::printf("%d files (%d per directory, %d bytes), median of %d rounds\n",
              absl::GetFlag(FLAGS_files), absl::GetFlag(FLAGS_files_per_dir),
              absl::GetFlag(FLAGS_bytes), absl::GetFlag(FLAGS_rounds));
  absl::Duration base_cpu;
  for (size_t m = 0; m < modes.size(); ++m) {
    auto& r = results[m];
    std::sort(r.begin(), r.end(), [](const Result& a, const Result& b) {
      return a.cpu < b.cpu;
    });
    const Result& median = r[r.size() / 2];
    if (m == 0) base_cpu = median.cpu;
    std::printf(
        "%-7s cpu %8.1f ms (%+5.1f%%)  watcher thread %6.1f ms  "
        "wall %8.1f ms  notices %ld\n",
        modes[m].c_str(), absl::ToDoubleMilliseconds(median.cpu),
        100.0 * (absl::ToDoubleMilliseconds(median.cpu) /
                     absl::ToDoubleMilliseconds(base_cpu) -
                 1),
        absl::ToDoubleMilliseconds(median.watcher_cpu),
        absl::ToDoubleMilliseconds(median.wall), median.notices);
  }
  return 0;
}

}  // namespace
}  // namespace examples
}  // namespace fusehost

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return fusehost::examples::Main();
}
