// The command line every backend program shares, for programs that use
// Abseil flags: --listen=ADDR (required), --threads=N and, for TLS on a TCP
// address, --tls_cert=FILE --tls_key=FILE [--tls_client_ca=FILE], parsed together
// with the program's own ABSL_FLAGs, with the same messages and exit status
// in every program.
//
//   ABSL_FLAG(std::string, root, "", "Directory to serve (required).");
//
//   int main(int argc, char** argv) {
//     std::optional<fusehost::ServeOptions> serve = fusehost::ParseServeFlags(
//         argc, argv,
//         {.program = "my_fs",
//          .usage = "Serves a directory to fuse-hostd.\n"
//                   "Usage: my_fs --listen=unix:/path/to.sock --root=DIR",
//          .example_listen = "unix:/tmp/my.sock"});
//     if (!serve) return fusehost::kUsageError;
//     ... check the program's own flags, build the FileSystem ...
//     return fusehost::Serve(fs, *serve);
//   }
//
// Depend on //client:serve_flags (it defines these flags, so a program
// that defines its own --listen, --threads or --tls_* cannot use it).

#ifndef FUSE_HOSTD_CLIENT_SERVE_FLAGS_H_
#define FUSE_HOSTD_CLIENT_SERVE_FLAGS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/filesystem.h"

namespace fusehost {

// Exit status of a backend program whose command line cannot be used
// (Abseil itself exits with 1 for an unknown flag or a malformed value).
inline constexpr int kUsageError = 2;

struct ServeFlagsSpec {
  // Starts every message: "PROGRAM: --listen is required ...".
  const char* program = "";
  // What --help prints first: what the program does, then a "Usage:" line.
  const char* usage = "";
  // The address the message about a missing --listen suggests.
  const char* example_listen = "";
};

// Sets the usage message and parses argv with absl::ParseCommandLine
// (which handles --help and exits on unknown flags and malformed values).
// Returns the ServeOptions from --listen, --threads and the --tls_ flags,
// the rest at their defaults; or prints one line to stderr and returns nullopt if there is a
// positional argument or no --listen (the program then exits with
// kUsageError). Call it once, at the start of main.
std::optional<ServeOptions> ParseServeFlags(int argc, char** argv,
                                            const ServeFlagsSpec& spec);

// What ParseServeFlags checks once the flags are parsed: `positional` is
// what absl::ParseCommandLine returned (argv[0] first). Returns the
// options, or the message for stderr without its "PROGRAM: " prefix.
absl::StatusOr<ServeOptions> ServeOptionsFromFlags(
    absl::Span<char* const> positional, const std::string& example_listen);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_SERVE_FLAGS_H_
