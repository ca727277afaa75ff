// memory_fs: serves an in-memory filesystem to fuse-hostd.
//
//   memory_fs --listen=unix:/run/user/1000/memory.sock
//   fuse-hostctl mount unix:/run/user/1000/memory.sock /mnt/memory

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "client/filesystem.h"
#include "examples/memory/memory_fs.h"

ABSL_FLAG(std::string, listen, "",
          "Address to serve on: unix:/path/to.sock or host:port (required).");
ABSL_FLAG(int, threads, 0,
          "Threads running operations; 0 picks one per CPU (at least 4).");
ABSL_FLAG(int64_t, root_uid, -1,
          "Owner of the root directory; -1 means this process's user.");
ABSL_FLAG(int64_t, root_gid, -1,
          "Group of the root directory; -1 means this process's group.");
ABSL_FLAG(uint32_t, cache_ttl_ms, 60000,
          "How long fuse-hostd may cache metadata, in milliseconds.");
ABSL_FLAG(uint64_t, capacity_mb, 1024,
          "Memory for file contents, in MiB (reported by df).");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves an in-memory filesystem to fuse-hostd.\n"
      "Usage: memory_fs --listen=unix:/path/to.sock");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr, "memory_fs: unexpected argument \"%s\"\n",
                 positional[1]);
    return 2;
  }
  fusehost::ServeOptions serve;
  serve.listen = absl::GetFlag(FLAGS_listen);
  serve.threads = absl::GetFlag(FLAGS_threads);
  if (serve.listen.empty()) {
    std::fprintf(stderr,
                 "memory_fs: --listen is required "
                 "(e.g. --listen=unix:/tmp/memory.sock)\n");
    return 2;
  }

  fusehost::examples::MemoryFs::Options options;
  const int64_t root_uid = absl::GetFlag(FLAGS_root_uid);
  const int64_t root_gid = absl::GetFlag(FLAGS_root_gid);
  options.root_uid = root_uid < 0 ? getuid() : static_cast<uid_t>(root_uid);
  options.root_gid = root_gid < 0 ? getgid() : static_cast<gid_t>(root_gid);
  options.capacity_bytes = absl::GetFlag(FLAGS_capacity_mb) << 20;
  options.cache_ttl_ms = absl::GetFlag(FLAGS_cache_ttl_ms);
  fusehost::examples::MemoryFs fs(options);
  return fusehost::Serve(fs, serve);
}
