#include "client/serve_flags.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, listen, "",
          "Address to serve on: unix:/path/to.sock or host:port (required).");
ABSL_FLAG(int, threads, 0,
          "Threads running operations; 0 picks one per CPU (at least 4).");

ABSL_FLAG(std::string, tls_cert, "",
          "TLS on a TCP --listen address: PEM file of the certificate "
          "(chain) to serve with, re-read when it changes.");
ABSL_FLAG(std::string, tls_key, "",
          "PEM file of --tls_cert's private key (mode 600).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "Mutual TLS: PEM file of the CA whose certificates clients must "
          "present (fuse-hostd's tls_cert=/tls_key= mount options).");

namespace fusehost {

absl::StatusOr<ServeOptions> ServeOptionsFromFlags(
    absl::Span<char* const> positional, const std::string& example_listen) {
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", positional[1], "\""));
  }
  ServeOptions serve;
  serve.listen = absl::GetFlag(FLAGS_listen);
  serve.threads = absl::GetFlag(FLAGS_threads);
  serve.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  serve.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  serve.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  if (serve.listen.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen is required (e.g. --listen=", example_listen, ")"));
  }
  return serve;
}

std::optional<ServeOptions> ParseServeFlags(int argc, char** argv,
                                            const ServeFlagsSpec& spec) {
  absl::SetProgramUsageMessage(spec.usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  absl::StatusOr<ServeOptions> serve =
      ServeOptionsFromFlags(positional, spec.example_listen);
  if (!serve.ok()) {
    std::fprintf(stderr, "%s: %s\n", spec.program,
                 std::string(serve.status().message()).c_str());
    return std::nullopt;
  }
  return *std::move(serve);
}

}  // namespace fusehost
