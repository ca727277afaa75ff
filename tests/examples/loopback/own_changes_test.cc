// OwnChanges on a scratch directory: a recorded change explains its own
// path, to the mount that made it, until someone else changes the path
// again.

#include "examples/loopback/own_changes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/examples/loopback/temp_dir.h"

namespace fusehost {
namespace examples {
namespace {

// The mount the changes of most tests are made through.
constexpr uint64_t kMount = 7;

class OwnChangesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    root_fd_ = open(dir_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
  }
  void TearDown() override { close(root_fd_); }

  std::string Host(const std::string& path) { return dir_.path() + path; }
  void Write(const std::string& path, const std::string& data) {
    int fd = open(Host(path).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
    close(fd);
  }

  TempDir dir_{"own-changes"};
  int root_fd_ = -1;
};

TEST_F(OwnChangesTest, OwnChangeIsExplainedUntilSomeoneElseChangesIt) {
  OwnChanges own(root_fd_);
  Write("/f", "ours");
  own.Record(kMount, "/f");
  own.Record(kMount, "/");
  EXPECT_EQ(own.ExplainedBy("/f"), kMount);
  EXPECT_EQ(own.ExplainedBy("/"), kMount);   // its listing changed, by us
  EXPECT_EQ(own.ExplainedBy("/f"), kMount);  // several events of one change

  Write("/f", "theirs");  // same size change would still move ctime
  EXPECT_EQ(own.ExplainedBy("/f"), std::nullopt);
  ASSERT_EQ(chmod(Host("/f").c_str(), 0600), 0);
  EXPECT_EQ(own.ExplainedBy("/f"), std::nullopt);

  EXPECT_EQ(own.ExplainedBy("/never-recorded"), std::nullopt);
}

TEST_F(OwnChangesTest, RemovalIsExplainedWhileThePathStaysAbsent) {
  OwnChanges own(root_fd_);
  Write("/gone", "x");
  ASSERT_EQ(unlink(Host("/gone").c_str()), 0);
  own.Record(kMount, "/gone");
  EXPECT_EQ(own.ExplainedBy("/gone"), kMount);
  Write("/gone", "back");  // made again by someone else
  EXPECT_EQ(own.ExplainedBy("/gone"), std::nullopt);
}

TEST_F(OwnChangesTest, MetadataChangesByOthersAreNotExplained) {
  OwnChanges own(root_fd_);
  ASSERT_EQ(mkdir(Host("/d").c_str(), 0755), 0);
  own.Record(kMount, "/d");
  EXPECT_EQ(own.ExplainedBy("/d"), kMount);
  Write("/d/new", "");  // the directory's mtime and ctime move
  EXPECT_EQ(own.ExplainedBy("/d"), std::nullopt);
}

TEST_F(OwnChangesTest, ChangeUnderWayIsExplainedThenRecorded) {
  OwnChanges own(root_fd_);
  {
    OwnChanges::Scope scope(own, kMount, {"/f", "/"});
    Write("/f", "ours");
    // Events may be read before the change is over.
    EXPECT_EQ(own.ExplainedBy("/f"), kMount);
    EXPECT_EQ(own.ExplainedBy("/"), kMount);
    EXPECT_EQ(own.ExplainedBy("/other"), std::nullopt);
  }
  EXPECT_EQ(own.ExplainedBy("/f"), kMount);  // recorded at the end
  Write("/f", "theirs");
  EXPECT_EQ(own.ExplainedBy("/f"), std::nullopt);
}

TEST_F(OwnChangesTest, EachChangeIsExplainedByTheMountThatMadeIt) {
  OwnChanges own(root_fd_);
  Write("/a", "by 1");
  own.Record(1, "/a");
  Write("/b", "by 2");
  own.Record(2, "/b");
  EXPECT_EQ(own.ExplainedBy("/a"), 1u);
  EXPECT_EQ(own.ExplainedBy("/b"), 2u);
  // The path's latest change is the one that counts: mount 1 does not know
  // of it.
  Write("/a", ", then by 2");
  own.Record(2, "/a");
  EXPECT_EQ(own.ExplainedBy("/a"), 2u);
}

TEST_F(OwnChangesTest, ChangesOfSeveralMountsUnderWayAreNewsToAll) {
  OwnChanges own(root_fd_);
  {
    OwnChanges::Scope one(own, 1, {"/d"});
    EXPECT_EQ(own.ExplainedBy("/d"), 1u);
    {
      OwnChanges::Scope two(own, 2, {"/d", "/e"});
      EXPECT_EQ(own.ExplainedBy("/d"), std::nullopt);
      EXPECT_EQ(own.ExplainedBy("/e"), 2u);
    }
    // Only mount 1's change is under way again.
    EXPECT_EQ(own.ExplainedBy("/d"), 1u);
  }
  EXPECT_EQ(own.ExplainedBy("/d"), 1u);  // recorded last, by mount 1
}

TEST_F(OwnChangesTest, RecordsExpire) {
  OwnChanges own(root_fd_, absl::Milliseconds(50));
  Write("/f", "x");
  own.Record(kMount, "/f");
  EXPECT_EQ(own.ExplainedBy("/f"), kMount);
  absl::SleepFor(absl::Milliseconds(80));
  EXPECT_EQ(own.ExplainedBy("/f"), std::nullopt);
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
