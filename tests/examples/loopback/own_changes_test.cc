// OwnChanges on a scratch directory: a recorded change explains its own
// path until someone else changes the path again.

#include "examples/loopback/own_changes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/examples/loopback/temp_dir.h"

namespace fusehost {
namespace examples {
namespace {

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
  own.Record("/f");
  own.Record("/");
  EXPECT_TRUE(own.Explains("/f"));
  EXPECT_TRUE(own.Explains("/"));  // its listing changed, by us
  EXPECT_TRUE(own.Explains("/f"));  // several events of one change

  Write("/f", "theirs");  // same size change would still move ctime
  EXPECT_FALSE(own.Explains("/f"));
  ASSERT_EQ(chmod(Host("/f").c_str(), 0600), 0);
  EXPECT_FALSE(own.Explains("/f"));

  EXPECT_FALSE(own.Explains("/never-recorded"));
}

TEST_F(OwnChangesTest, RemovalIsExplainedWhileThePathStaysAbsent) {
  OwnChanges own(root_fd_);
  Write("/gone", "x");
  ASSERT_EQ(unlink(Host("/gone").c_str()), 0);
  own.Record("/gone");
  EXPECT_TRUE(own.Explains("/gone"));
  Write("/gone", "back");  // made again by someone else
  EXPECT_FALSE(own.Explains("/gone"));
}

TEST_F(OwnChangesTest, MetadataChangesByOthersAreNotExplained) {
  OwnChanges own(root_fd_);
  ASSERT_EQ(mkdir(Host("/d").c_str(), 0755), 0);
  own.Record("/d");
  EXPECT_TRUE(own.Explains("/d"));
  Write("/d/new", "");  // the directory's mtime and ctime move
  EXPECT_FALSE(own.Explains("/d"));
}

TEST_F(OwnChangesTest, ChangeUnderWayIsExplainedThenRecorded) {
  OwnChanges own(root_fd_);
  {
    OwnChanges::Scope scope(own, {"/f", "/"});
    Write("/f", "ours");
    // Events may be read before the change is over.
    EXPECT_TRUE(own.Explains("/f"));
    EXPECT_TRUE(own.Explains("/"));
    EXPECT_FALSE(own.Explains("/other"));
  }
  EXPECT_TRUE(own.Explains("/f"));  // recorded at the end
  Write("/f", "theirs");
  EXPECT_FALSE(own.Explains("/f"));
}

TEST_F(OwnChangesTest, RecordsExpire) {
  OwnChanges own(root_fd_, absl::Milliseconds(50));
  Write("/f", "x");
  own.Record("/f");
  EXPECT_TRUE(own.Explains("/f"));
  absl::SleepFor(absl::Milliseconds(80));
  EXPECT_FALSE(own.Explains("/f"));
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
