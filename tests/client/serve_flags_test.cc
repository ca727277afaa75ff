// fusehost::ParseServeFlags and the checks behind it. Whole command lines
// are parsed in death tests: each runs in a child process of its own, since
// Abseil's usage message can be set only once per process and parsing may
// exit.

#include "client/serve_flags.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "gtest/gtest.h"

// Defined in client/serve_flags.cc.
ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(int, threads);

namespace fusehost {
namespace {

char kProgram[] = "my_fs";
char kExtra[] = "extra";

TEST(ServeOptionsFromFlagsTest, TakesListenAndThreads) {
  absl::FlagSaver restore;
  absl::SetFlag(&FLAGS_listen, "unix:/tmp/a.sock");
  absl::SetFlag(&FLAGS_threads, 3);
  std::vector<char*> positional = {kProgram};
  absl::StatusOr<ServeOptions> serve =
      ServeOptionsFromFlags(positional, "unix:/tmp/my.sock");
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_EQ(serve->listen, "unix:/tmp/a.sock");
  EXPECT_EQ(serve->threads, 3);
  // The rest keep ServeOptions' defaults.
  EXPECT_TRUE(serve->replace_stale_socket);
  EXPECT_EQ(serve->socket_mode, ServeOptions().socket_mode);
}

TEST(ServeOptionsFromFlagsTest, ListenIsRequired) {
  absl::FlagSaver restore;
  absl::SetFlag(&FLAGS_listen, "");
  std::vector<char*> positional = {kProgram};
  absl::StatusOr<ServeOptions> serve =
      ServeOptionsFromFlags(positional, "unix:/tmp/my.sock");
  ASSERT_FALSE(serve.ok());
  EXPECT_EQ(serve.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(serve.status().message(),
            "--listen is required (e.g. --listen=unix:/tmp/my.sock)");
}

TEST(ServeOptionsFromFlagsTest, RefusesPositionalArgumentsFirst) {
  absl::FlagSaver restore;
  absl::SetFlag(&FLAGS_listen, "");  // also missing: the argument is named
  std::vector<char*> positional = {kProgram, kExtra};
  absl::StatusOr<ServeOptions> serve =
      ServeOptionsFromFlags(positional, "unix:/tmp/my.sock");
  ASSERT_FALSE(serve.ok());
  EXPECT_EQ(serve.status().message(), "unexpected argument \"extra\"");
}

// What a backend's main does with ParseServeFlags, with `args` after the
// program name: exits with kUsageError when it returns nothing, else prints
// the options to stderr and exits 0.
[[noreturn]] void ParseAndExit(std::vector<std::string> args) {
  args.insert(args.begin(), kProgram);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::optional<ServeOptions> serve = ParseServeFlags(
      static_cast<int>(args.size()), argv.data(),
      {.program = "my_fs",
       .usage = "Serves nothing.\nUsage: my_fs --listen=ADDR",
       .example_listen = "unix:/tmp/my.sock"});
  if (!serve) std::exit(kUsageError);
  std::fprintf(stderr, "listen=%s threads=%d\n", serve->listen.c_str(),
               serve->threads);
  std::exit(0);
}

TEST(ParseServeFlagsDeathTest, ParsesTheFlags) {
  EXPECT_EXIT(ParseAndExit({"--listen=unix:/tmp/a.sock", "--threads=3"}),
              testing::ExitedWithCode(0),
              "^listen=unix:/tmp/a\\.sock threads=3\n$");
  EXPECT_EXIT(ParseAndExit({"--listen", "127.0.0.1:5000"}),
              testing::ExitedWithCode(0),
              "^listen=127\\.0\\.0\\.1:5000 threads=0\n$");
}

TEST(ParseServeFlagsDeathTest, MissingListenIsAUsageError) {
  EXPECT_EXIT(ParseAndExit({}), testing::ExitedWithCode(kUsageError),
              "^my_fs: --listen is required "
              "\\(e\\.g\\. --listen=unix:/tmp/my\\.sock\\)\n$");
  EXPECT_EXIT(ParseAndExit({"--threads=2"}),
              testing::ExitedWithCode(kUsageError), "--listen is required");
}

TEST(ParseServeFlagsDeathTest, PositionalArgumentIsAUsageError) {
  EXPECT_EXIT(ParseAndExit({"extra", "--listen=unix:/tmp/a.sock"}),
              testing::ExitedWithCode(kUsageError),
              "^my_fs: unexpected argument \"extra\"\n$");
}

TEST(ParseServeFlagsDeathTest, AbseilRefusesUnknownFlagsAndBadValues) {
  EXPECT_EXIT(ParseAndExit({"--bogus", "--listen=unix:/tmp/a.sock"}),
              testing::ExitedWithCode(1), "Unknown command line flag 'bogus'");
  EXPECT_EXIT(ParseAndExit({"--threads=abc", "--listen=unix:/tmp/a.sock"}),
              testing::ExitedWithCode(1),
              "Illegal value 'abc' specified for flag 'threads'");
}

TEST(ParseServeFlagsDeathTest, HelpShowsTheUsageMessage) {
  // Abseil prints --help to stdout; the death test matches stderr only.
  EXPECT_EXIT(
      {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        ParseAndExit({"--help"});
      },
      testing::ExitedWithCode(1),
      "^my_fs: Serves nothing\\.\nUsage: my_fs --listen=ADDR\n");
}

}  // namespace
}  // namespace fusehost
