// HandleMap: the kernel sees tokens; a token of a gone instance never
// reaches the backend, but is reopened as it was opened; an fsync after a
// restart that may have lost acknowledged writes fails.

#include "daemon/pipeline/handle_map.h"

#include <fcntl.h>

#include <cerrno>

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

// Opens "/f" under `instance` and returns its token.
uint64_t Open(HandleMap& map, uint64_t fh, uint64_t instance,
              const v1::Op& open = OpenOp()) {
  v1::OpResult r = Opened(fh);
  map.IssueTokens(open, instance, &r);
  return r.open().fh();
}

TEST(HandleMap, TokensStandForTheBackendsHandles) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  EXPECT_NE(Open(map, 3, 7), token) << "tokens are never reused";

  v1::Op read;
  read.mutable_read()->set_fh(token);
  ASSERT_EQ(map.Resolve(&read).kind, HandleRoute::kSend);
  EXPECT_EQ(read.read().fh(), 3u);
  EXPECT_EQ(read.handle_instance(), 7u);

  v1::Op path_only;
  path_only.mutable_getattr()->set_path("/f");
  ASSERT_EQ(map.Resolve(&path_only).kind, HandleRoute::kSend);
  EXPECT_EQ(path_only.handle_instance(), 0u);
  EXPECT_FALSE(path_only.getattr().has_fh());
}

TEST(HandleMap, AGoneInstancesTokensAreReopenedNotSent) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  map.SawInstance(8);  // the backend restarted
  v1::Op write;
  write.mutable_write()->set_fh(token);
  HandleRoute route = map.Resolve(&write);
  EXPECT_EQ(route.kind, HandleRoute::kReopen);
  EXPECT_EQ(route.stale, token);
  EXPECT_EQ(write.write().fh(), token) << "left as it was";
  v1::Op unknown;
  unknown.mutable_flush()->set_fh(12345);
  route = map.Resolve(&unknown);
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, EBADF);
}

TEST(HandleMap, AReopenIsTheSameOpenAsTheSameCallerWithoutCreatingOrTruncating) {
  HandleMap map;
  map.SawInstance(7);
  v1::Op create;
  create.mutable_caller()->set_uid(1001);
  create.mutable_caller()->set_gid(1002);
  create.mutable_caller()->add_groups(5);
  create.mutable_caller()->set_pid(77);
  create.mutable_caller()->set_umask(022);
  create.mutable_create()->set_path("/new");
  create.mutable_create()->set_flags(O_RDWR | O_CREAT | O_EXCL | O_TRUNC |
                                     O_APPEND);
  v1::OpResult created;
  created.mutable_create()->mutable_open()->set_fh(4);
  map.IssueTokens(create, 7, &created);
  const uint64_t token = created.create().open().fh();
  map.SawInstance(8);

  v1::Op reopen;
  ASSERT_TRUE(map.ReopenOp(token, "/renamed", 1234, &reopen));
  ASSERT_TRUE(reopen.has_open());
  EXPECT_EQ(reopen.open().path(), "/renamed");
  EXPECT_EQ(reopen.open().flags(), static_cast<uint32_t>(O_RDWR | O_APPEND));
  EXPECT_EQ(reopen.caller().uid(), 1001u);
  EXPECT_EQ(reopen.caller().gid(), 1002u);
  ASSERT_EQ(reopen.caller().groups_size(), 1);
  EXPECT_EQ(reopen.caller().pid(), 77u);
  EXPECT_EQ(reopen.caller().umask(), 022u);
  EXPECT_EQ(reopen.deadline_unix_ms(), 1234);
  EXPECT_EQ(reopen.handle_instance(), 0u);

  map.Reopened(token, 9, 8);
  v1::Op read;
  read.mutable_read()->set_fh(token);
  ASSERT_EQ(map.Resolve(&read).kind, HandleRoute::kSend);
  EXPECT_EQ(read.read().fh(), 9u);
  EXPECT_EQ(read.handle_instance(), 8u);
}

TEST(HandleMap, ADirectoryIsReopenedAsADirectory) {
  HandleMap map;
  map.SawInstance(7);
  v1::Op opendir;
  opendir.mutable_opendir()->set_path("/d");
  opendir.mutable_opendir()->set_flags(O_DIRECTORY);
  v1::OpResult r;
  r.mutable_opendir()->set_fh(5);
  map.IssueTokens(opendir, 7, &r);
  map.SawInstance(8);
  v1::Op reopen;
  ASSERT_TRUE(map.ReopenOp(r.opendir().fh(), "/d", 0, &reopen));
  ASSERT_TRUE(reopen.has_opendir());
  EXPECT_EQ(reopen.opendir().flags(), static_cast<uint32_t>(O_DIRECTORY));
  EXPECT_FALSE(map.ReopenOp(12345, "/d", 0, &reopen)) << "unknown token";
}

TEST(HandleMap, ALostHandleFailsItsOpsAndIsStillReleased) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  map.SawInstance(8);
  map.Lose(token, ESTALE);
  v1::Op read;
  read.mutable_read()->set_fh(token);
  HandleRoute route = map.Resolve(&read);
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, ESTALE);
  v1::Op release;
  release.mutable_release()->set_fh(token);
  route = map.Resolve(&release);
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, 0);
  EXPECT_EQ(map.size(), 0u);
}

TEST(HandleMap, AStaleHandleIsReleasedWithoutAReopen) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  map.SawInstance(8);
  v1::Op release;
  release.mutable_release()->set_fh(token);
  HandleRoute route = map.Resolve(&release);
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, 0);
  EXPECT_EQ(map.size(), 0u);
}

TEST(HandleMap, ReleaseRetiresItsToken) {
  HandleMap map;
  const uint64_t token = Open(map, 3, 0);
  EXPECT_EQ(map.size(), 1u);
  v1::Op release;
  release.mutable_release()->set_fh(token);
  ASSERT_EQ(map.Resolve(&release).kind, HandleRoute::kSend);
  EXPECT_EQ(release.release().fh(), 3u);
  EXPECT_EQ(map.size(), 0u);
  v1::Op again;
  again.mutable_read()->set_fh(token);
  EXPECT_EQ(map.Resolve(&again).posix_errno, EBADF);
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
  const uint64_t token = Open(map, 3, 7);
  v1::Op with;
  with.mutable_ioctl()->set_fh(token);
  ASSERT_EQ(map.Resolve(&with).kind, HandleRoute::kSend);
  EXPECT_EQ(with.ioctl().fh(), 3u);
  EXPECT_EQ(with.handle_instance(), 7u);
  v1::Op without;  // a directory the backend was not asked to open
  without.mutable_ioctl()->set_path("/d");
  ASSERT_EQ(map.Resolve(&without).kind, HandleRoute::kSend);
  EXPECT_FALSE(without.ioctl().has_fh());
  EXPECT_EQ(without.handle_instance(), 0u);
}

TEST(HandleMap, AReaddirWithoutAHandleListsByPath) {
  HandleMap map;
  map.SawInstance(7);
  v1::Op by_path;  // InitReply.lists_by_path: no opendir came before
  by_path.mutable_readdir()->set_path("/d");
  ASSERT_EQ(map.Resolve(&by_path).kind, HandleRoute::kSend);
  EXPECT_EQ(by_path.readdir().fh(), 0u);
  EXPECT_EQ(by_path.handle_instance(), 0u);
  const uint64_t token = Open(map, 3, 7);
  v1::Op opened;
  opened.mutable_readdir()->set_fh(token);
  ASSERT_EQ(map.Resolve(&opened).kind, HandleRoute::kSend);
  EXPECT_EQ(opened.readdir().fh(), 3u);
}

// Sends `op` on `token` through the map and has the backend answer it with
// `posix_errno`; returns the errno the kernel gets.
int Answered(HandleMap& map, v1::Op op, int posix_errno) {
  HandleRoute route = map.Resolve(&op);
  EXPECT_EQ(route.kind, HandleRoute::kSend);
  v1::OpResult r;
  r.set_posix_errno(posix_errno);
  r.mutable_empty();
  map.NoteResult(op, route.tokens, &r);
  return r.posix_errno();
}

v1::Op Write(uint64_t token) {
  v1::Op op;
  op.mutable_write()->set_fh(token);
  op.mutable_write()->set_data("x");
  return op;
}

v1::Op Fsync(uint64_t token) {
  v1::Op op;
  op.mutable_fsync()->set_fh(token);
  return op;
}

TEST(HandleMap, TheFirstFsyncAfterARestartThatMayHaveLostWritesFails) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  EXPECT_EQ(Answered(map, Write(token), 0), 0);
  map.SawInstance(8);
  map.Reopened(token, 4, 8);
  EXPECT_EQ(Answered(map, Write(token), 0), 0);
  EXPECT_EQ(Answered(map, Fsync(token), 0), EIO);
  EXPECT_EQ(Answered(map, Fsync(token), 0), 0) << "reported once";
}

TEST(HandleMap, WritesSyncedBeforeARestartLoseNothing) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  EXPECT_EQ(Answered(map, Write(token), 0), 0);
  EXPECT_EQ(Answered(map, Fsync(token), 0), 0);
  map.SawInstance(8);
  map.Reopened(token, 4, 8);
  EXPECT_EQ(Answered(map, Write(token), 0), 0);
  EXPECT_EQ(Answered(map, Fsync(token), 0), 0);
}

TEST(HandleMap, FailedWritesAndAFailedFsyncAreTheBackendsOwnWord) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = Open(map, 3, 7);
  EXPECT_EQ(Answered(map, Write(token), ENOSPC), ENOSPC);
  map.SawInstance(8);
  map.Reopened(token, 4, 8);
  EXPECT_EQ(Answered(map, Fsync(token), 0), 0) << "nothing was acknowledged";
  EXPECT_EQ(Answered(map, Write(token), 0), 0);
  EXPECT_EQ(Answered(map, Fsync(token), EROFS), EROFS);
}

TEST(HandleMap, OnlyAFileOpenedForReadingIsReadOnly) {
  HandleMap map;
  const uint64_t reading = Open(map, 3, 0);  // flags 0: O_RDONLY
  v1::Op rw = OpenOp();
  rw.mutable_open()->set_flags(O_RDWR);
  const uint64_t writing = Open(map, 4, 0, rw);
  EXPECT_TRUE(map.ReadOnly(reading));
  EXPECT_FALSE(map.ReadOnly(writing));
  EXPECT_FALSE(map.ReadOnly(12345));
}

TEST(HandleMap, AFileTheDaemonOpenedIsOpenedAtTheBackendOnlyWhenNeeded) {
  HandleMap map;
  map.SawInstance(7);
  v1::Caller caller;
  caller.set_uid(1001);
  const uint64_t token = map.IssueUnopened(O_RDONLY, caller);
  EXPECT_TRUE(map.FlushesHere(token));

  v1::Op flush;
  flush.mutable_flush()->set_fh(token);
  EXPECT_EQ(map.Resolve(&flush).kind, HandleRoute::kAnswer);

  // An op that needs the backend's handle opens the file there first, as
  // the caller that opened it, with its flags.
  v1::Op lseek;
  lseek.mutable_lseek()->set_fh(token);
  HandleRoute route = map.Resolve(&lseek);
  ASSERT_EQ(route.kind, HandleRoute::kReopen);
  EXPECT_EQ(route.stale, token);
  v1::Op reopen;
  ASSERT_TRUE(map.ReopenOp(token, "/f", 0, &reopen));
  EXPECT_EQ(reopen.open().path(), "/f");
  EXPECT_EQ(reopen.open().flags(), static_cast<uint32_t>(O_RDONLY));
  EXPECT_EQ(reopen.caller().uid(), 1001u);

  map.Reopened(token, 9, 7);
  EXPECT_FALSE(map.FlushesHere(token));
  ASSERT_EQ(map.Resolve(&lseek).kind, HandleRoute::kSend);
  EXPECT_EQ(lseek.lseek().fh(), 9u);
  v1::Op release;
  release.mutable_release()->set_fh(token);
  ASSERT_EQ(map.Resolve(&release).kind, HandleRoute::kSend)
      << "the backend has a handle to close now";
}

TEST(HandleMap, AReleaseOfAFileTheBackendNeverOpenedIsAnsweredHere) {
  HandleMap map;
  const uint64_t token = map.IssueUnopened(O_RDONLY, v1::Caller());
  v1::Op release;
  release.mutable_release()->set_fh(token);
  HandleRoute route = map.Resolve(&release);
  EXPECT_EQ(route.kind, HandleRoute::kAnswer);
  EXPECT_EQ(route.posix_errno, 0);
  EXPECT_EQ(map.size(), 0u);
}

// A file created early (write_behind) whose create goes in the same
// message as its writes and release: they name the create's handle by the
// create (Op.fh_from_op), carrying fh 0; the release retires the token,
// and the backend's handle, once the create's answer brings it, too.
TEST(HandleMap, OpsOnAFileCreatedInTheSameMessageNameTheCreatesHandle) {
  HandleMap map;
  map.SawInstance(7);
  const uint64_t token = map.IssueUnopened(O_WRONLY, v1::Caller());
  v1::Op write;
  write.mutable_write()->set_fh(token);
  write.set_handle_instance(3);
  ASSERT_TRUE(map.ResolveFromEarlierOp(&write, token));
  EXPECT_EQ(write.write().fh(), 0u);
  EXPECT_EQ(write.handle_instance(), 0u);
  EXPECT_EQ(map.size(), 1u);
  v1::Op release;
  release.mutable_release()->set_fh(token);
  ASSERT_TRUE(map.ResolveFromEarlierOp(&release, token));
  EXPECT_EQ(release.release().fh(), 0u);
  EXPECT_EQ(map.size(), 0u);

  // The create's answer: its handle becomes a token, which the early one
  // would adopt; released already, both are gone.
  v1::Op create;
  create.mutable_create()->set_path("/f");
  v1::OpResult created;
  created.mutable_create()->mutable_open()->set_fh(44);
  map.IssueTokens(create, 7, &created);
  EXPECT_EQ(map.size(), 1u);
  map.Adopt(token, created.create().open().fh());
  EXPECT_EQ(map.size(), 0u);

  // Not for a token bound to a handle already, nor one the op lacks.
  const uint64_t opened = Open(map, 3, 7);
  v1::Op read;
  read.mutable_read()->set_fh(opened);
  EXPECT_FALSE(map.ResolveFromEarlierOp(&read, opened));
  EXPECT_EQ(read.read().fh(), opened);
  EXPECT_FALSE(map.ResolveFromEarlierOp(&read, opened + 1));
}

TEST(HandleMap, OnceLocksAreUsedFlushesReachTheBackend) {
  // Closing any descriptor of a file releases the process's POSIX locks on
  // it: the backend must see that flush.
  HandleMap map;
  const uint64_t token = map.IssueUnopened(O_RDONLY, v1::Caller());
  const uint64_t other = Open(map, 3, 0);
  v1::Op lock;
  lock.mutable_lock()->set_fh(other);
  ASSERT_EQ(map.Resolve(&lock).kind, HandleRoute::kSend);
  EXPECT_FALSE(map.FlushesHere(token));
  v1::Op flush;
  flush.mutable_flush()->set_fh(token);
  EXPECT_EQ(map.Resolve(&flush).kind, HandleRoute::kReopen);
}

}  // namespace
}  // namespace fusehost
