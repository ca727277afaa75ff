// Opendir and listings fetched ahead: a directory opened from the cache
// tells the cache layer (which may fetch the level below), and one whose
// listing is on its way waits for it, once, before asking the backend.

#include <sys/stat.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/fuse/request_handlers.h"
#include "daemon/pipeline/cache_coherence.h"
#include "daemon/pipeline/listing.h"
#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
using Paths = std::vector<std::string>;
constexpr uint64_t kRoot = NodeTable::kRootId;

// The FakePipeline's cache, with listings that may be on their way.
class PrefetchingCoherence : public CacheCoherence {
 public:
  explicit PrefetchingCoherence(FakePipeline* pipeline) : pipeline_(pipeline) {}

  std::shared_ptr<const Listing> CachedListing(
      const std::string& path) override {
    return pipeline_->CachedListing(path);
  }
  std::optional<v1::Attr> CachedAttr(const std::string& path) override {
    return pipeline_->CachedAttr(path);
  }
  void OtherNamesChanged(const std::vector<std::string>& paths) override {
    pipeline_->OtherNamesChanged(paths);
  }
  void ApplyNotice(const v1::Invalidation&) override {}
  void NoticesMayHaveBeenLost() override {}
  bool FetchesListingsAhead() const override { return true; }
  void DirectoryOpened(const std::string& path,
                       const v1::Caller& caller) override {
    opened.push_back(path);
    openers.push_back(caller);
  }
  bool AwaitListing(const std::string& path,
                    std::function<void()> then) override {
    awaited.push_back(path);
    if (in_flight.count(path) == 0) return false;
    waiters.push_back(std::move(then));
    return true;
  }

  // Runs what waits for the listings on their way.
  void Arrived() {
    std::vector<std::function<void()>> now = std::move(waiters);
    waiters.clear();
    for (auto& w : now) w();
  }

  std::set<std::string> in_flight;  // listings on their way
  Paths opened;                     // DirectoryOpened, in order
  std::vector<v1::Caller> openers;
  Paths awaited;                    // AwaitListing, in order
  std::vector<std::function<void()>> waiters;

 private:
  FakePipeline* pipeline_;
};

class DirPrefetchTest : public HandlerTest {
 protected:
  DirPrefetchTest() : coherence_(&pipeline_) {
    RequestHandlers::Options options;
    options.nodes = &nodes_;
    options.transport = &pipeline_;
    options.coherence = &coherence_;
    options.invalidator = &invalidator_;
    handlers_ = std::make_unique<RequestHandlers>(options);
  }
  ~DirPrefetchTest() override {
    for (uint64_t fh : handles_) {
      handlers_->Releasedir(Req(KernelOp::kReleasedir), fh);
    }
  }

  // Opendir of the root; its request.
  std::shared_ptr<FakeRequest> OpenRoot() {
    auto req = Req(KernelOp::kOpendir);
    handlers_->Opendir(req, kRoot, 0);
    return req;
  }
  // `req` was answered with a handle.
  void ExpectOpen(const std::shared_ptr<FakeRequest>& req) {
    ASSERT_EQ(req->kind, Kind::kOpen);
    handles_.push_back(req->open.fh);
  }
  // The root's listing is in the cache.
  void CacheRoot() {
    pipeline_.cached_path = "/";
    pipeline_.cached_listing["sub"] = ListingEntry{S_IFDIR, 8};
  }

  PrefetchingCoherence coherence_;
  std::vector<uint64_t> handles_;
};

TEST_F(DirPrefetchTest, OpeningACachedListingLetsTheLevelBelowBeFetched) {
  CacheRoot();
  auto req = OpenRoot();
  ExpectOpen(req);
  EXPECT_EQ(sent(), 0u);
  EXPECT_EQ(coherence_.opened, (Paths{"/"}));
  ASSERT_EQ(coherence_.openers.size(), 1u);
  EXPECT_EQ(coherence_.openers[0].uid(), 1000u);
  EXPECT_EQ(coherence_.openers[0].pid(), 42u);
  EXPECT_EQ(coherence_.awaited, Paths{});
}

TEST_F(DirPrefetchTest, WithNothingOnItsWayOpendirAsksTheBackend) {
  auto req = OpenRoot();
  EXPECT_EQ(coherence_.awaited, (Paths{"/"}));
  ASSERT_EQ(sent(), 1u);
  EXPECT_EQ(pipeline_.op(0).opendir().path(), "/");
  v1::OpResult r;
  r.mutable_opendir()->set_fh(55);
  pipeline_.Answer(0, r);
  ExpectOpen(req);
  // Told before the backend is asked: the listings fetched ahead of its
  // siblings move on (it has no listing of its own to fetch ahead from).
  EXPECT_EQ(coherence_.opened, (Paths{"/"}));
}

TEST_F(DirPrefetchTest, OpendirWaitsForTheListingOnItsWay) {
  coherence_.in_flight.insert("/");
  auto req = OpenRoot();
  EXPECT_EQ(req->kind, Kind::kNone);
  EXPECT_EQ(sent(), 0u);

  CacheRoot();
  coherence_.Arrived();
  ExpectOpen(req);
  EXPECT_EQ(sent(), 0u);
  EXPECT_EQ(coherence_.awaited, (Paths{"/"}));
  EXPECT_EQ(coherence_.opened, (Paths{"/"}));
}

TEST_F(DirPrefetchTest, WhenTheListingDoesNotComeOpendirAsksTheBackend) {
  coherence_.in_flight.insert("/");
  auto req = OpenRoot();
  coherence_.Arrived();  // nothing cached
  EXPECT_EQ(coherence_.awaited, (Paths{"/"})) << "waited twice";
  ASSERT_EQ(sent(), 1u);
  EXPECT_EQ(pipeline_.op(0).opendir().path(), "/");
  EXPECT_EQ(pipeline_.op(0).caller().uid(), 1000u);
  v1::OpResult r;
  r.mutable_opendir()->set_fh(56);
  pipeline_.Answer(0, r);
  ExpectOpen(req);
}

TEST_F(DirPrefetchTest, AFailedOpendirAfterTheWaitAnswersItsErrno) {
  coherence_.in_flight.insert("/");
  auto req = OpenRoot();
  coherence_.Arrived();
  ASSERT_EQ(sent(), 1u);
  pipeline_.Answer(0, Errno(EACCES));
  EXPECT_EQ(req->kind, Kind::kError);
  EXPECT_EQ(req->err, EACCES);
}

}  // namespace
}  // namespace fusehost
