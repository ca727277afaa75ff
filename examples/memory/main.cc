// memory_fs: serves an in-memory filesystem to fuse-hostd.
//
//   memory_fs --listen=unix:/run/user/1000/memory.sock
//   fuse-hostctl mount unix:/run/user/1000/memory.sock /mnt/memory

#include <unistd.h>

#include <cstdint>
#include <optional>

#include "absl/flags/flag.h"
#include "client/filesystem.h"
#include "client/serve_flags.h"
#include "examples/memory/memory_fs.h"

// --listen and --threads come from client/serve_flags.
ABSL_FLAG(int64_t, root_uid, -1,
          "Owner of the root directory; -1 means this process's user.");
ABSL_FLAG(int64_t, root_gid, -1,
          "Group of the root directory; -1 means this process's group.");
ABSL_FLAG(uint32_t, cache_ttl_ms, 60000,
          "How long fuse-hostd may cache metadata, in milliseconds.");
ABSL_FLAG(uint64_t, capacity_mb, 1024,
          "Memory for file contents, in MiB (reported by df).");

int main(int argc, char** argv) {
  std::optional<fusehost::ServeOptions> serve = fusehost::ParseServeFlags(
      argc, argv,
      {.program = "memory_fs",
       .usage = "Serves an in-memory filesystem to fuse-hostd.\n"
                "Usage: memory_fs --listen=unix:/path/to.sock",
       .example_listen = "unix:/tmp/memory.sock"});
  if (!serve) return fusehost::kUsageError;

  fusehost::examples::MemoryFs::Options options;
  const int64_t root_uid = absl::GetFlag(FLAGS_root_uid);
  const int64_t root_gid = absl::GetFlag(FLAGS_root_gid);
  options.root_uid = root_uid < 0 ? getuid() : static_cast<uid_t>(root_uid);
  options.root_gid = root_gid < 0 ? getgid() : static_cast<gid_t>(root_gid);
  options.capacity_bytes = absl::GetFlag(FLAGS_capacity_mb) << 20;
  options.cache_ttl_ms = absl::GetFlag(FLAGS_cache_ttl_ms);
  fusehost::examples::MemoryFs fs(options);
  return fusehost::Serve(fs, *serve);
}
