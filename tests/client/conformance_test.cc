// Runs the SDK conformance cases (tests/conformance/cases, the same files
// the Python SDK's runner reads) against the C++ SDK.
//
// Batch cases: ScriptedFs (scripted_fs.h) implements the case's scripted
// filesystem as a FileSystem, and the case's Batch goes through
// BackendService::Execute, the handler Serve() registers with gRPC (only the
// socket is left out), so ops run concurrently on the SDK's pool as they do
// when served.
// Invalidation cases: notices go through the InvalidationHub that
// FileSystem::Notify* (Publish) and Notify*Except (PublishExcept) publish
// to, and each stream is a Subscription as a BackendService::Invalidations
// call holds it.
//
// What the fields of a case mean is in tests/conformance/README.md; this
// runner and ScriptedFs must implement exactly that, as the Python runner
// does.

#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/backend_service.h"
#include "client/invalidation_hub.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/client/scripted_fs.h"
#include "tests/conformance/conformance.pb.h"

namespace fusehost {
namespace {

namespace conf = ::fusehost::conformance;

// Relative to the test's runfiles directory, where Bazel runs it.
constexpr char kCaseDir[] = "tests/conformance/cases";

// Every case of every file, read once.
struct AllCases {
  std::vector<conf::BatchCase> batch_cases;
  std::vector<conf::InvalidationCase> invalidation_cases;
  std::vector<std::string> errors;  // files that could not be read
  int files = 0;
};

const AllCases& Cases() {
  static const AllCases* const cases = [] {
    auto* all = new AllCases;
    DIR* dir = opendir(kCaseDir);
    if (dir == nullptr) {
      all->errors.push_back(std::string("cannot list ") + kCaseDir);
      return all;
    }
    std::vector<std::string> names;
    while (const dirent* entry = readdir(dir)) {
      absl::string_view name = entry->d_name;
      if (name.size() > 10 && name.substr(name.size() - 10) == ".textproto") {
        names.emplace_back(name);
      }
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = std::string(kCaseDir) + "/" + name;
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      conf::CaseFile file;
      // Parse errors are logged with their line and column.
      if (!in ||
          !google::protobuf::TextFormat::ParseFromString(text.str(), &file)) {
        all->errors.push_back("cannot parse " + path);
        continue;
      }
      ++all->files;
      all->batch_cases.insert(all->batch_cases.end(), file.batch_case().begin(),
                              file.batch_case().end());
      all->invalidation_cases.insert(all->invalidation_cases.end(),
                                     file.invalidation_case().begin(),
                                     file.invalidation_case().end());
    }
    return all;
  }();
  return *cases;
}

std::string Text(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(message, &text);
  return text.empty() ? "(empty)\n" : text;
}

// The limits README.md sets on cases. getattr is never left out: SDKs
// differ in what a missing one answers, and the other ops need it. Every
// node has times: the C++ SDK always sends them and the Python SDK leaves
// out zero ones, a difference the daemon cannot see but an exact comparison
// would.
void ExpectRunnable(const conf::ScriptedFileSystem& fs) {
  for (const std::string& op : fs.unimplemented()) {
    EXPECT_NE(op, "getattr") << "getattr cannot be left out";
  }
  for (const conf::Node& node : fs.node()) {
    const v1::Attr& a = node.attr();
    for (const v1::Timespec* t : {&a.atime(), &a.mtime(), &a.ctime()}) {
      EXPECT_TRUE(t->sec() != 0 || t->nsec() != 0)
          << node.path() << ": every node needs atime, mtime and ctime";
    }
  }
}

class BatchCaseTest : public ::testing::TestWithParam<size_t> {};

TEST_P(BatchCaseTest, AnswersAsExpected) {
  const conf::BatchCase& c = Cases().batch_cases[GetParam()];
  SCOPED_TRACE(c.description());
  ExpectRunnable(c.fs());
  ScriptedFs fs(c.fs());
  BackendService::Options options;
  options.instance = c.instance();  // 0: the SDK picks one
  BackendService service(fs, options);
  v1::BatchResult reply;
  ASSERT_TRUE(service.Execute(nullptr, &c.batch(), &reply).ok());
  if (c.instance() != 0) {
    EXPECT_EQ(reply.instance(), c.expected().instance());
  } else {
    EXPECT_NE(reply.instance(), 0u);
  }

  std::map<uint64_t, const v1::OpResult*> actual;
  for (const v1::OpResult& result : reply.results()) {
    EXPECT_TRUE(actual.emplace(result.id(), &result).second)
        << "two results for op " << result.id();
  }
  EXPECT_EQ(reply.results_size(), c.batch().ops_size());
  for (const v1::OpResult& expected : c.expected().results()) {
    auto it = actual.find(expected.id());
    if (it == actual.end()) {
      ADD_FAILURE() << "no result for op " << expected.id();
      continue;
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*it->second,
                                                                   expected))
        << "op " << expected.id() << "\nexpected:\n"
        << Text(expected) << "actual:\n"
        << Text(*it->second);
    actual.erase(it);
  }
  for (const auto& [id, result] : actual) {
    ADD_FAILURE() << "unexpected result:\n" << Text(*result);
  }
}

// Appends `n.repeat` copies (at least one) of notice `n`.
void AppendRun(const conf::Notify& n, std::vector<v1::Invalidation>* out) {
  v1::Invalidation notice;
  notice.set_kind(n.kind());
  notice.set_path(n.path());
  out->insert(out->end(), std::max<uint32_t>(n.repeat(), 1), notice);
}

class InvalidationCaseTest : public ::testing::TestWithParam<size_t> {};

TEST_P(InvalidationCaseTest, StreamsGetTheExpectedNotices) {
  const conf::InvalidationCase& c = Cases().invalidation_cases[GetParam()];
  SCOPED_TRACE(c.description());
  InvalidationHub hub;
  std::vector<std::unique_ptr<InvalidationHub::Subscription>> streams;
  for (int i = 0; i < c.step_size(); ++i) {
    const conf::Step& step = c.step(i);
    SCOPED_TRACE("step " + std::to_string(i));
    switch (step.step_case()) {
      case conf::Step::kSubscribe:
        streams.push_back(step.subscribe().has_max_queued()
                              ? hub.Subscribe(step.subscribe().mount_id(),
                                              step.subscribe().max_queued())
                              : hub.Subscribe(step.subscribe().mount_id()));
        break;
      case conf::Step::kNotify: {
        std::vector<v1::Invalidation> notices;
        AppendRun(step.notify(), &notices);
        for (const v1::Invalidation& notice : notices) {
          if (step.notify().has_except_mount()) {
            hub.PublishExcept(step.notify().except_mount(), notice.kind(),
                              notice.path());
          } else {
            hub.Publish(notice.kind(), notice.path());
          }
        }
        break;
      }
      case conf::Step::kTake: {
        ASSERT_LT(step.take().stream(), streams.size());
        std::vector<v1::Invalidation> taken;
        const bool open =
            streams[step.take().stream()]->Take(absl::ZeroDuration(), &taken);
        ASSERT_EQ(open, !step.take().closed());
        std::vector<v1::Invalidation> expected;
        for (const conf::Notify& run : step.take().expect()) {
          AppendRun(run, &expected);
        }
        ASSERT_EQ(taken.size(), expected.size());
        for (size_t j = 0; j < taken.size(); ++j) {
          ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
              taken[j], expected[j]))
              << "notice " << j << ": expected " << Text(expected[j]) << "got "
              << Text(taken[j]);
        }
        break;
      }
      case conf::Step::kClose:
        ASSERT_LT(step.close(), streams.size());
        streams[step.close()]->Close();
        break;
      case conf::Step::STEP_NOT_SET:
        FAIL() << "empty step";
    }
  }
}

std::vector<size_t> Indexes(size_t n) {
  std::vector<size_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = i;
  return out;
}

template <typename Case>
std::string CaseName(const std::vector<Case>& cases,
                     const ::testing::TestParamInfo<size_t>& info) {
  return cases[info.param].name();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BatchCaseTest,
    ::testing::ValuesIn(Indexes(Cases().batch_cases.size())),
    [](const ::testing::TestParamInfo<size_t>& info) {
      return CaseName(Cases().batch_cases, info);
    });

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidationCaseTest,
    ::testing::ValuesIn(Indexes(Cases().invalidation_cases.size())),
    [](const ::testing::TestParamInfo<size_t>& info) {
      return CaseName(Cases().invalidation_cases, info);
    });

TEST(ConformanceCasesTest, EveryFileParses) {
  for (const std::string& error : Cases().errors) ADD_FAILURE() << error;
  EXPECT_GT(Cases().files, 0);
  EXPECT_FALSE(Cases().batch_cases.empty());
  EXPECT_FALSE(Cases().invalidation_cases.empty());
}

}  // namespace
}  // namespace fusehost
