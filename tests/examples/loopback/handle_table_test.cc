#include "examples/loopback/handle_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "gtest/gtest.h"

namespace fusehost {
namespace examples {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0 || errno != EBADF; }

TEST(HandleTableTest, HandlesAreNeverReusedAndNeverZero) {
  HandleTable table;
  std::set<uint64_t> seen;
  for (int i = 0; i < 100; ++i) {
    // The kernel hands out the same descriptor number each time round.
    const uint64_t fh = table.Add(open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_NE(fh, 0u);
    EXPECT_TRUE(seen.insert(fh).second) << "handle " << fh << " given twice";
    EXPECT_TRUE(table.Remove(fh));
  }
}

TEST(HandleTableTest, UnknownAndRemovedHandlesAreNotFound) {
  HandleTable table;
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const uint64_t fh = table.Add(fd);
  ASSERT_NE(table.Find(fh), nullptr);
  EXPECT_EQ(table.Find(fh)->get(), fd);
  // The descriptor number is not a handle.
  if (static_cast<uint64_t>(fd) != fh) {
    EXPECT_EQ(table.Find(static_cast<uint64_t>(fd)), nullptr);
  }
  EXPECT_EQ(table.Find(fh + 1), nullptr);
  EXPECT_TRUE(table.Remove(fh));
  EXPECT_EQ(table.Find(fh), nullptr);
  EXPECT_FALSE(table.Remove(fh));
  EXPECT_FALSE(IsOpen(fd));
}

TEST(HandleTableTest, DescriptorOutlivesRemoveWhileInUse) {
  HandleTable table;
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const uint64_t fh = table.Add(fd);
  HandleTable::Ref in_use = table.Find(fh);
  ASSERT_TRUE(table.Remove(fh));
  // An operation still running on it keeps its file, not a reused number.
  EXPECT_TRUE(IsOpen(fd));
  in_use.reset();
  EXPECT_FALSE(IsOpen(fd));
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
