// LoopbackFs acting as the caller (needs root; skipped otherwise): new
// files' owners, permissions and groups are the caller's, concurrent callers
// do not mix, and set-id bits are dropped or cleared as on the host.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/examples/callers.h"
#include "tests/examples/loopback/loopback_fs_fixture.h"
#include "tests/examples/set_id_changes.h"

namespace fusehost {
namespace examples {
namespace {

TEST_F(LoopbackFsAsCallerTest, NewFilesBelongToTheCaller) {
  const Context user = User(kUser, kGroup);
  MakeFile("/pub/f", "x", 0600, user);
  ASSERT_EQ(fs_->Mkdir(user, "/pub/d", 0700), 0);
  ASSERT_EQ(fs_->Symlink(user, "f", "/pub/s"), 0);
  ASSERT_EQ(fs_->Mknod(user, "/pub/p", S_IFIFO | 0600, 0), 0);
  for (const char* path : {"/pub/f", "/pub/d", "/pub/s", "/pub/p"}) {
    struct stat st = {};
    ASSERT_EQ(lstat(Host(path).c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, kUser) << path;
    EXPECT_EQ(st.st_gid, kGroup) << path;
  }
  // The thread is itself again afterwards.
  MakeFile("/pub/mine", "");
  EXPECT_EQ(Stat("/pub/mine").st_uid, 0u);
  // The caller's own file: xattrs through /proc/self/fd work as the caller.
  int rc = fs_->Setxattr(user, "/pub/f", "user.k", "v", 0);
  EXPECT_TRUE(rc == 0 || rc == ENOTSUP) << rc;
}

TEST_F(LoopbackFsAsCallerTest, PermissionsAreTheCallers) {
  MakeFile("/pub/secret", "root only", 0600);
  const Context user = User(kUser, kGroup);
  FileInfo fi;
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(user, "/pub/secret", &fi), EACCES);
  EXPECT_EQ(fs_->Access(user, "/pub/secret", R_OK), EACCES);
  EXPECT_EQ(fs_->Access(user, "/pub/secret", F_OK), 0);
  EXPECT_EQ(fs_->Chmod(user, "/pub/secret", 0644, nullptr), EPERM);
  EXPECT_EQ(fs_->Chown(user, "/pub/secret", kUser, kGroup, nullptr), EPERM);
  EXPECT_EQ(fs_->Truncate(user, "/pub/secret", 0, nullptr), EACCES);
  // Sticky directory: only the owner may remove.
  EXPECT_EQ(fs_->Unlink(user, "/pub/secret"), EPERM);
  std::string value;
  int rc = fs_->Getxattr(user, "/pub/secret", "user.k", &value);
  EXPECT_TRUE(rc == EACCES || rc == ENOTSUP) << rc;

  // Search permission on the way down counts too.
  ASSERT_EQ(fs_->Mkdir(Self(), "/closed", 0700), 0);
  MakeFile("/closed/f", "", 0644);
  struct stat st = {};
  EXPECT_EQ(fs_->Getattr(user, "/closed/f", nullptr, &st), EACCES);

  // Root itself may do all of it.
  EXPECT_EQ(fs_->Open(Self(), "/pub/secret", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/secret", fi), 0);
}

TEST_F(LoopbackFsAsCallerTest, SupplementaryGroupsCount) {
  MakeFile("/pub/g", "group data", 0640);
  ASSERT_EQ(fs_->Chown(Self(), "/pub/g", 0, 777, nullptr), 0);
  FileInfo fi;
  fi.flags = O_RDONLY;
  EXPECT_EQ(fs_->Open(User(kUser, kGroup), "/pub/g", &fi), EACCES);
  ASSERT_EQ(fs_->Open(User(kUser, kGroup, {777}), "/pub/g", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/g", fi), 0);
  // ... and the primary group.
  ASSERT_EQ(fs_->Open(User(kUser, 777), "/pub/g", &fi), 0);
  EXPECT_EQ(fs_->Release(Self(), "/pub/g", fi), 0);
}

TEST_F(LoopbackFsAsCallerTest, ReaddirStatsAsTheCaller) {
  // Readable but not searchable: names and types, but no attributes.
  ASSERT_EQ(fs_->Mkdir(Self(), "/pub/rd", 0755), 0);
  MakeFile("/pub/rd/f", "");
  ASSERT_EQ(fs_->Chmod(Self(), "/pub/rd", 0744, nullptr), 0);
  const Context user = User(kUser, kGroup);
  FileInfo fi;
  ASSERT_EQ(fs_->Opendir(user, "/pub/rd", &fi), 0);
  std::vector<DirEntry> entries;
  bool eof = false;
  ASSERT_EQ(fs_->Readdir(user, "/pub/rd", 0, fi, &entries, &eof), 0);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "f");
  EXPECT_FALSE(entries[0].has_attr);
  EXPECT_TRUE(S_ISREG(entries[0].st.st_mode));
  EXPECT_EQ(fs_->Releasedir(user, "/pub/rd", fi), 0);

  ASSERT_EQ(fs_->Chmod(Self(), "/pub/rd", 0700, nullptr), 0);
  EXPECT_EQ(fs_->Opendir(user, "/pub/rd", &fi), EACCES);
}

TEST_F(LoopbackFsAsCallerTest, ConcurrentCallersDoNotMix) {
  constexpr int kThreads = 8;
  constexpr int kFilesEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const Context user = User(kUser + t, kGroup + t);
      for (int i = 0; i < kFilesEach; ++i) {
        const std::string path =
            "/pub/" + std::to_string(t) + "." + std::to_string(i);
        FileInfo fi;
        fi.flags = O_WRONLY;
        ASSERT_EQ(fs_->Create(user, path, S_IFREG | 0600, &fi), 0);
        ASSERT_EQ(fs_->Release(user, path, fi), 0);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kFilesEach; ++i) {
      struct stat st = {};
      const std::string path =
          Host("/pub/" + std::to_string(t) + "." + std::to_string(i));
      ASSERT_EQ(lstat(path.c_str(), &st), 0) << path;
      EXPECT_EQ(st.st_uid, kUser + t) << path;
      EXPECT_EQ(st.st_gid, kGroup + t) << path;
    }
  }
}

// The permission and set-id bits of `path` on the host.
mode_t HostPerms(const std::string& host_path) {
  struct stat st = {};
  EXPECT_EQ(lstat(host_path.c_str(), &st), 0) << host_path;
  return st.st_mode & 07777;
}

TEST_F(LoopbackFsAsCallerTest, WritersMayDropSetIdBitsOnly) {
  // Before another user's write, the kernel asks for exactly this chmod in
  // that user's name: the set-id bits gone, nothing else changed.
  const Context owner = User(kUser, kGroup);
  const Context writer = User(kUser + 1, kGroup + 1);
  MakeFile("/pub/f", "x", 0777, owner);
  auto set = [&](mode_t mode) {
    ASSERT_EQ(fs_->Chmod(owner, "/pub/f", mode, nullptr), 0);
  };
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, nullptr), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 0777u);
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 02777, nullptr), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 02777u);
  // Anything more is chmod(2), the owner's alone.
  set(06777);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0666, nullptr), EPERM);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 07777, nullptr), EPERM);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0, nullptr), EPERM);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 06777u);
  // S_ISGID without group execute is no privilege a write takes away.
  set(02767);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0767, nullptr), EPERM);
  // Only for someone who may write the file: by permission, or through a
  // handle open for writing.
  set(04755);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0755, nullptr), EPERM);
  set(04777);
  FileInfo reading;
  reading.flags = O_RDONLY;
  ASSERT_EQ(fs_->Open(writer, "/pub/f", &reading), 0);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, &reading), EPERM);
  FileInfo writing;
  writing.flags = O_WRONLY;
  ASSERT_EQ(fs_->Open(writer, "/pub/f", &writing), 0);
  EXPECT_EQ(fs_->Chmod(writer, "/pub/f", 0777, &writing), 0);
  EXPECT_EQ(HostPerms(Host("/pub/f")), 0777u);
  EXPECT_EQ(fs_->Release(writer, "/pub/f", reading), 0);
  EXPECT_EQ(fs_->Release(writer, "/pub/f", writing), 0);
}

TEST_F(LoopbackFsAsCallerTest, WritesByOthersClearSetIdBitsAsTheBackendToo) {
  // Not acting as the caller, a root backend writes with CAP_FSETID: the
  // host kernel then keeps the bits, and the loopback must clear them.
  std::unique_ptr<LoopbackFs> fs = NotActingAsCaller();
  ASSERT_NE(fs, nullptr);
  for (const SetIdChange& change : SetIdChanges()) {
    for (const Context& ctx : {User(kUser, kGroup), Self()}) {
      SCOPED_TRACE(std::string(change.name) + " by uid " +
                   std::to_string(ctx.uid));
      const std::string path =
          "/pub/" + std::string(change.name) + "." + std::to_string(ctx.uid);
      MakeFile(path, "data", 0777);
      ASSERT_EQ(chmod(Host(path).c_str(), 06777), 0);
      FileInfo fi;
      fi.flags = O_RDWR;
      ASSERT_EQ(fs->Open(Self(), path, &fi), 0);
      EXPECT_EQ(change.run(*fs, ctx, path, fi), 0);
      EXPECT_EQ(fs->Release(Self(), path, fi), 0);
      // Root keeps them; anyone else's change clears both (group execute
      // is set).
      EXPECT_EQ(HostPerms(Host(path)), ctx.uid == 0 ? 06777u : 0777u);
    }
  }
}

TEST_F(LoopbackFsAsCallerTest, WithoutSwitchingEverythingRunsAsTheBackend) {
  std::unique_ptr<LoopbackFs> fs = NotActingAsCaller();
  ASSERT_NE(fs, nullptr);
  EXPECT_FALSE(fs->acts_as_caller());
  FileInfo fi;
  fi.flags = O_WRONLY;
  ASSERT_EQ(fs->Create(User(kUser, kGroup), "/pub/f", S_IFREG | 0600, &fi), 0);
  EXPECT_EQ(fs->Release(User(kUser, kGroup), "/pub/f", fi), 0);
  EXPECT_EQ(Stat("/pub/f").st_uid, geteuid());
}

}  // namespace
}  // namespace examples
}  // namespace fusehost
