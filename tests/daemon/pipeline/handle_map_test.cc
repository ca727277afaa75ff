// HandleMap: the kernel sees tokens; a token of a gone instance never
// reaches the backend.

#include "daemon/pipeline/handle_map.h"

#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

v1::OpResult Opened(uint64_t fh) {
  v1::OpResult r;
  r.mutable_open()->set_fh(fh);
  return r;
}

v1::Op OpenOp() {
  v1::Op op;
  op.mutable_open()->set_path("/f");
  return op;
}

TEST(HandleMap, TokensStandForTheBackendsHandles) {
  HandleMap map;
  map.SawInstance(7);
  v1::OpResult r = Opened(3);
  map.IssueTokens(OpenOp(), 7, &r);
  const uint64_t token = r.open().fh();
  v1::OpResult r2 = Opened(3);  // the same handle number, again
  map.IssueTokens(OpenOp(), 7, &r2);
  EXPECT_NE(r2.open().fh(), token) << "tokens are never reused";

  v1::Op read;
  read.mutable_read()->set_fh(token);
  ASSERT_TRUE(map.ResolveTokens(&read));
  EXPECT_EQ(read.read().fh(), 3u);
  EXPECT_EQ(read.handle_instance(), 7u);

  v1::Op path_only;
  path_only.mutable_getattr()->set_path("/f");
  ASSERT_TRUE(map.ResolveTokens(&path_only));
  EXPECT_EQ(path_only.handle_instance(), 0u);
  EXPECT_FALSE(path_only.getattr().has_fh());
}

TEST(HandleMap, AGoneInstancesTokensFail) {
  HandleMap map;
  map.SawInstance(7);
  v1::OpResult r = Opened(3);
  map.IssueTokens(OpenOp(), 7, &r);
  map.SawInstance(8);  // the backend restarted
  v1::Op write;
  write.mutable_write()->set_fh(r.open().fh());
  EXPECT_FALSE(map.ResolveTokens(&write));
  v1::Op unknown;
  unknown.mutable_flush()->set_fh(12345);
  EXPECT_FALSE(map.ResolveTokens(&unknown));
}

TEST(HandleMap, ReleaseRetiresItsToken) {
  HandleMap map;
  v1::OpResult r = Opened(3);
  map.IssueTokens(OpenOp(), 0, &r);
  EXPECT_EQ(map.size(), 1u);
  v1::Op release;
  release.mutable_release()->set_fh(r.open().fh());
  ASSERT_TRUE(map.ResolveTokens(&release));
  EXPECT_EQ(release.release().fh(), 3u);
  EXPECT_EQ(map.size(), 0u);
  v1::Op again;
  again.mutable_read()->set_fh(r.open().fh());
  EXPECT_FALSE(map.ResolveTokens(&again));
}

TEST(HandleMap, FailuresIssueNothing) {
  HandleMap map;
  v1::OpResult r = Opened(3);
  r.set_posix_errno(13);
  map.IssueTokens(OpenOp(), 0, &r);
  EXPECT_EQ(map.size(), 0u);
}

TEST(HandleMap, AnIoctlsOptionalHandleIsResolvedWhenSet) {
  HandleMap map;
  map.SawInstance(7);
  v1::OpResult r = Opened(3);
  map.IssueTokens(OpenOp(), 7, &r);
  v1::Op with;
  with.mutable_ioctl()->set_fh(r.open().fh());
  ASSERT_TRUE(map.ResolveTokens(&with));
  EXPECT_EQ(with.ioctl().fh(), 3u);
  EXPECT_EQ(with.handle_instance(), 7u);
  v1::Op without;  // a directory the backend was not asked to open
  without.mutable_ioctl()->set_path("/d");
  ASSERT_TRUE(map.ResolveTokens(&without));
  EXPECT_FALSE(without.ioctl().has_fh());
  EXPECT_EQ(without.handle_instance(), 0u);
}

}  // namespace
}  // namespace fusehost
