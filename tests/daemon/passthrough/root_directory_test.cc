// RootDirectory: files beneath a loopback's root opened for reading by the
// daemon, as the user the backend would have opened them as, and nothing
// else: no symlink, no escape, no directory or FIFO, no file the user may
// not read. And attributes changed there, the same way, only where the
// backend said so and only on the file the daemon knows, and looked up
// there the same way.

#include "daemon/passthrough/root_directory.h"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "common/open_flags.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

constexpr uid_t kNobody = 65534;

class RootDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/root_directory_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_path_ = base_ + "/root";
    ASSERT_EQ(mkdir(root_path_.c_str(), 0755), 0);
    ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
    Write(root_path_ + "/public", "hello", 0644);
    Write(root_path_ + "/private", "secret", 0600);
    Write(base_ + "/outside", "outside", 0644);
    ASSERT_EQ(mkdir((root_path_ + "/sub").c_str(), 0755), 0);
    Write(root_path_ + "/sub/file", "nested", 0644);
    ASSERT_EQ(symlink("public", (root_path_ + "/link").c_str()), 0);
    ASSERT_EQ(symlink("..", (root_path_ + "/up").c_str()), 0);
    ASSERT_EQ(mkfifo((root_path_ + "/fifo").c_str(), 0666), 0);
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + base_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  static void Write(const std::string& path, const std::string& data,
                    mode_t mode) {
    std::ofstream(path) << data;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  static std::string ReadAll(int fd) {
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, n) : std::string();
  }

  UniqueFd RootFd() {
    return UniqueFd(open(root_path_.c_str(), O_PATH | O_DIRECTORY));
  }

  std::string base_;
  std::string root_path_;
  UserIdentity root_user_;  // uid 0
};

TEST_F(RootDirectoryTest, OpensRegularFilesBeneathItForReading) {
  RootDirectory root;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  struct stat st;
  UniqueFd fd = root.OpenForReading("/public", root_user_, &st);
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(ReadAll(fd.get()), "hello");
  EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 5);
  fd = root.OpenForReading("/sub/file", root_user_, &st);
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(ReadAll(fd.get()), "nested");
  EXPECT_EQ(root.opened(), 2u);
}

TEST_F(RootDirectoryTest, RefusesSymlinksEscapesAndOtherKindsOfFiles) {
  RootDirectory root;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  struct stat st;
  for (const char* path : {"/link", "/up/outside", "/../outside", "/sub",
                           "/fifo", "/", "", "public", "/missing"}) {
    EXPECT_FALSE(root.OpenForReading(path, root_user_, &st).valid()) << path;
  }
  EXPECT_EQ(root.opened(), 0u);
  EXPECT_EQ(root.declined(), 9u);
}

TEST_F(RootDirectoryTest, OpensAsTheBackendsUserOrTheCaller) {
  RootDirectory root;
  UserIdentity nobody;
  nobody.uid = kNobody;
  nobody.gid = kNobody;
  struct stat st;
  // As the backend's user (nobody), whoever calls.
  ASSERT_TRUE(root.Adopt(RootFd(), nobody).ok());
  EXPECT_TRUE(root.OpenForReading("/public", root_user_, &st).valid());
  EXPECT_FALSE(root.OpenForReading("/private", root_user_, &st).valid());
  // As each caller.
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  EXPECT_FALSE(root.OpenForReading("/private", nobody, &st).valid());
  EXPECT_TRUE(root.OpenForReading("/private", root_user_, &st).valid());
  // The thread is root again: it can open what only root may.
  UniqueFd again(open((root_path_ + "/private").c_str(), O_RDONLY));
  EXPECT_TRUE(again.valid());
  EXPECT_EQ(setfsuid(-1), 0);
}

TEST_F(RootDirectoryTest, SupplementaryGroupsCount) {
  ASSERT_EQ(chown((root_path_ + "/private").c_str(), 0, 4242), 0);
  ASSERT_EQ(chmod((root_path_ + "/private").c_str(), 0640), 0);
  RootDirectory root;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  UserIdentity member;
  member.uid = kNobody;
  member.gid = kNobody;
  struct stat st;
  EXPECT_FALSE(root.OpenForReading("/private", member, &st).valid());
  member.groups = {4242};
  EXPECT_TRUE(root.OpenForReading("/private", member, &st).valid());
}

TEST_F(RootDirectoryTest, OnlyADirectoryIsAdoptedAndADroppedOneIsNotUsed) {
  RootDirectory root;
  UniqueFd file(open((root_path_ + "/public").c_str(), O_RDONLY));
  EXPECT_FALSE(root.Adopt(std::move(file), std::nullopt).ok());
  EXPECT_FALSE(root.adopted());
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  EXPECT_TRUE(root.adopted());
  root.Drop();
  struct stat st;
  EXPECT_FALSE(root.OpenForReading("/public", root_user_, &st).valid());
}

// The daemon opens files beneath an adopted directory with root's
// effective user: /proc/sys checks that one, not the filesystem user, so a
// backend sending it would lend its user root's read rights.
TEST_F(RootDirectoryTest, DirectoriesOfPseudoFilesystemsAreNotAdopted) {
  RootDirectory root;
  for (const char* path : {"/proc/sys", "/proc", "/sys"}) {
    UniqueFd dir(open(path, O_PATH | O_DIRECTORY));
    ASSERT_TRUE(dir.valid()) << path;
    absl::Status s = root.Adopt(std::move(dir), std::nullopt);
    EXPECT_FALSE(s.ok()) << path;
    EXPECT_FALSE(root.adopted()) << path;
  }
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());  // ext4 or tmpfs
}

uint64_t InoOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

AttributeChange Chmod(mode_t mode) {
  AttributeChange c;
  c.mode = mode;
  return c;
}

TEST_F(RootDirectoryTest, ChangesAttributesOnlyWhereTheBackendSaidSo) {
  const std::string file = root_path_ + "/public";
  RootDirectory root;
  struct stat after;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  EXPECT_FALSE(root.ChangeAttributes("/public", root_user_, InoOf(file),
                                     Chmod(0600), &after));
  EXPECT_EQ(ModeOf(file), 0644u);
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true).ok());
  ASSERT_TRUE(root.ChangeAttributes("/public", root_user_, InoOf(file),
                                    Chmod(0600), &after));
  EXPECT_EQ(ModeOf(file), 0600u);
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  EXPECT_EQ(after.st_ino, InoOf(file));

  AttributeChange owner;
  owner.gid = 4242;
  ASSERT_TRUE(
      root.ChangeAttributes("/public", root_user_, InoOf(file), owner, &after));
  EXPECT_EQ(after.st_uid, 0u);  // unset: left as it was
  EXPECT_EQ(after.st_gid, 4242u);

  AttributeChange times;
  times.set_times = true;
  times.times[0] = {1000, 5};
  times.times[1] = {0, UTIME_OMIT};
  const struct timespec mtime_before = after.st_mtim;
  ASSERT_TRUE(
      root.ChangeAttributes("/public", root_user_, InoOf(file), times, &after));
  EXPECT_EQ(after.st_atim.tv_sec, 1000);
  EXPECT_EQ(after.st_atim.tv_nsec, 5);
  EXPECT_EQ(after.st_mtim.tv_sec, mtime_before.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, mtime_before.tv_nsec);
  // A directory too.
  ASSERT_TRUE(root.ChangeAttributes(
      "/sub", root_user_, InoOf(root_path_ + "/sub"), Chmod(0700), &after));
  EXPECT_EQ(ModeOf(root_path_ + "/sub"), 0700u);
  EXPECT_EQ(root.changed(), 4u);
}

// What the backend would have been refused is refused here: as the
// backend's user, or as the caller, with no capability left over.
TEST_F(RootDirectoryTest, ChangesAsTheBackendsUserOrTheCaller) {
  const std::string file = root_path_ + "/public";
  UserIdentity nobody;
  nobody.uid = kNobody;
  nobody.gid = kNobody;
  RootDirectory root;
  struct stat after;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true).ok());
  EXPECT_FALSE(root.ChangeAttributes("/public", nobody, InoOf(file),
                                     Chmod(0666), &after));
  EXPECT_EQ(ModeOf(file), 0644u);
  // Root's caller, but the backend's user is nobody.
  ASSERT_TRUE(root.Adopt(RootFd(), nobody, true).ok());
  EXPECT_FALSE(root.ChangeAttributes("/public", root_user_, InoOf(file),
                                     Chmod(0666), &after));
  EXPECT_EQ(ModeOf(file), 0644u);
  // The owner may.
  ASSERT_EQ(chown(file.c_str(), kNobody, kNobody), 0);
  EXPECT_TRUE(root.ChangeAttributes("/public", root_user_, InoOf(file),
                                    Chmod(0640), &after));
  EXPECT_EQ(ModeOf(file), 0640u);
  // But not give the file away.
  AttributeChange give;
  give.uid = 0;
  EXPECT_FALSE(
      root.ChangeAttributes("/public", root_user_, InoOf(file), give, &after));
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  // The thread is root again.
  EXPECT_EQ(setfsuid(-1), 0);
  EXPECT_EQ(root.changed(), 1u);
}

TEST_F(RootDirectoryTest, LooksUpOnlyWhereTheBackendSaidSoAsItWould) {
  RootDirectory root;
  struct stat st;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt).ok());
  using Found = RootDirectory::Found;
  EXPECT_EQ(root.LookUp("/public", root_user_, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/absent", root_user_, &st), Found::kDeclined);
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true).ok());
  ASSERT_EQ(root.LookUp("/sub/file", root_user_, &st), Found::kFile);
  EXPECT_EQ(st.st_ino, InoOf(root_path_ + "/sub/file"));
  EXPECT_EQ(st.st_size, 6);
  // lstat: a trailing symlink is the link itself.
  ASSERT_EQ(root.LookUp("/link", root_user_, &st), Found::kFile);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // Absent, as the backend's lstat would say: the name, or a directory on
  // the way.
  EXPECT_EQ(root.LookUp("/absent", root_user_, &st), Found::kAbsent);
  EXPECT_EQ(root.LookUp("/sub/absent", root_user_, &st), Found::kAbsent);
  EXPECT_EQ(root.LookUp("/gone/file", root_user_, &st), Found::kAbsent);
  // The backend's to answer: the root, a symlink on the way (whose target
  // may hold the name), a name outside, a file taken for a directory.
  EXPECT_EQ(root.LookUp("/", root_user_, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/up/outside", root_user_, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/up/absent", root_user_, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/../outside", root_user_, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/sub/file/x", root_user_, &st), Found::kDeclined);
  // As the caller: nobody may not search a directory closed to others,
  // neither for a file there nor to learn that a name is not there.
  ASSERT_EQ(chmod((root_path_ + "/sub").c_str(), 0700), 0);
  UserIdentity nobody;
  nobody.uid = kNobody;
  nobody.gid = kNobody;
  EXPECT_EQ(root.LookUp("/sub/file", nobody, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/sub/absent", nobody, &st), Found::kDeclined);
  EXPECT_EQ(root.LookUp("/sub/file", root_user_, &st), Found::kFile);
  // The thread is root again.
  EXPECT_EQ(setfsuid(-1), 0);
  EXPECT_EQ(root.looked_up(), 6u);
  EXPECT_EQ(root.changed(), 0u);
}

TEST_F(RootDirectoryTest, ChangesNoOtherFileThanTheOneTheDaemonKnows) {
  RootDirectory root;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true).ok());
  struct stat after;
  const std::string file = root_path_ + "/public";
  // Another file there now (changed on the host).
  EXPECT_FALSE(root.ChangeAttributes("/public", root_user_,
                                     InoOf(root_path_ + "/private"),
                                     Chmod(0600), &after));
  EXPECT_EQ(ModeOf(file), 0644u);
  // A symlink (its target's mode stays), a FIFO, escapes, the root itself.
  const std::string outside = base_ + "/outside";
  struct {
    const char* path;
    uint64_t ino;
  } refused[] = {
      {"/link", InoOf(root_path_ + "/link")},
      {"/link", InoOf(file)},
      {"/fifo", InoOf(root_path_ + "/fifo")},
      {"/up/outside", InoOf(outside)},
      {"/../outside", InoOf(outside)},
      {"/", InoOf(root_path_)},
      {"", InoOf(root_path_)},
      {"public", InoOf(file)},
      {"/missing", 0},
  };
  for (const auto& r : refused) {
    EXPECT_FALSE(
        root.ChangeAttributes(r.path, root_user_, r.ino, Chmod(0600), &after))
        << r.path;
  }
  EXPECT_EQ(ModeOf(file), 0644u);
  EXPECT_EQ(ModeOf(outside), 0644u);
  EXPECT_EQ(ModeOf(root_path_), 0755u);
  EXPECT_EQ(root.changed(), 0u);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST_F(RootDirectoryTest, RemovesNamesOnlyWhereTheBackendSaidSo) {
  const std::string file = root_path_ + "/sub/file";
  RootDirectory root;
  std::optional<struct stat> parent;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true).ok());
  EXPECT_FALSE(
      root.Remove("/sub/file", root_user_, InoOf(file), false, &parent));
  EXPECT_TRUE(Exists(file));
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, false, true).ok());
  // Not as a directory, and not a non-empty directory.
  EXPECT_FALSE(root.Remove("/sub/file", root_user_, InoOf(file), true,
                           &parent));
  EXPECT_FALSE(
      root.Remove("/sub", root_user_, InoOf(root_path_ + "/sub"), true,
                  &parent));
  ASSERT_TRUE(
      root.Remove("/sub/file", root_user_, InoOf(file), false, &parent));
  EXPECT_FALSE(Exists(file));
  ASSERT_TRUE(parent.has_value());
  EXPECT_EQ(parent->st_ino, InoOf(root_path_ + "/sub"));
  parent.reset();
  ASSERT_TRUE(root.Remove("/sub", root_user_, InoOf(root_path_ + "/sub"),
                          true, &parent));
  EXPECT_FALSE(Exists(root_path_ + "/sub"));
  ASSERT_TRUE(parent.has_value());
  EXPECT_EQ(parent->st_ino, InoOf(root_path_));
  // A symlink is a name like any other: it goes, its target stays.
  ASSERT_TRUE(root.Remove("/link", root_user_, InoOf(root_path_ + "/link"),
                          false, &parent));
  EXPECT_TRUE(Exists(root_path_ + "/public"));
  EXPECT_EQ(root.changed(), 3u);
}

TEST_F(RootDirectoryTest, RemovesAsTheCallerAndNothingElse) {
  RootDirectory root;
  std::optional<struct stat> parent;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, false, true).ok());
  UserIdentity nobody;
  nobody.uid = kNobody;
  nobody.gid = kNobody;
  // No write permission on the directory (root's, 0755).
  EXPECT_FALSE(root.Remove("/public", nobody, InoOf(root_path_ + "/public"),
                           false, &parent));
  EXPECT_TRUE(Exists(root_path_ + "/public"));
  // Another file at the name than the daemon knows.
  EXPECT_FALSE(root.Remove("/public", root_user_,
                           InoOf(root_path_ + "/private"), false, &parent));
  // Escapes, the root itself, names that are no names.
  const std::string outside = base_ + "/outside";
  for (const char* path :
       {"/up/outside", "/../outside", "/", "", "public", "/sub/", "/sub/.",
        "/sub/..", "/link/x"}) {
    EXPECT_FALSE(root.Remove(path, root_user_, InoOf(outside), false,
                             &parent))
        << path;
  }
  EXPECT_TRUE(Exists(outside));
  EXPECT_TRUE(Exists(root_path_ + "/sub"));
  EXPECT_EQ(setfsuid(-1), 0);
  EXPECT_EQ(root.changed(), 0u);
}

}  // namespace
}  // namespace fusehost

namespace fusehost {
namespace {

TEST_F(RootDirectoryTest,
       CreatesNewFilesOnlyWhereTheBackendSaidSoWithTheModeSent) {
  RootDirectory root;
  struct stat st;
  std::optional<struct stat> parent;
  const int write_new = O_WRONLY | O_CREAT | O_EXCL | kKernelLargeFile;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, true, true).ok());
  EXPECT_FALSE(
      root.Create("/sub/new", root_user_, write_new, 0640, &st, &parent)
          .valid());
  EXPECT_FALSE(Exists(root_path_ + "/sub/new"));
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, false, false, true).ok());
  // The mode as sent (the kernel applied the caller's umask), whatever the
  // daemon's own umask.
  const mode_t umask_before = umask(077);
  UniqueFd made = root.Create("/sub/new", root_user_, write_new, S_IFREG | 0664,
                              &st, &parent);
  umask(umask_before);
  ASSERT_TRUE(made.valid());
  EXPECT_EQ(st.st_mode, S_IFREG | 0664u);
  EXPECT_EQ(st.st_ino, InoOf(root_path_ + "/sub/new"));
  ASSERT_TRUE(parent.has_value());
  EXPECT_EQ(parent->st_ino, InoOf(root_path_ + "/sub"));
  EXPECT_EQ(fcntl(made.get(), F_GETFL) & O_ACCMODE, O_WRONLY);
  ASSERT_EQ(write(made.get(), "abc", 3), 3);
  // A name that exists, even without O_EXCL, and O_TRUNC of it: the
  // backend's (it opens the file and clears its set-id bits).
  EXPECT_FALSE(root.Create("/public", root_user_, O_WRONLY | O_CREAT | O_TRUNC,
                           0644, &st, &parent)
                   .valid());
  EXPECT_EQ(
      ReadAll(UniqueFd(open((root_path_ + "/public").c_str(), O_RDONLY)).get()),
      "hello");
  // Flags and modes that ask for more than a plain new file.
  for (int flags : {O_WRONLY | O_CREAT | O_APPEND, O_WRONLY | O_CREAT | O_SYNC,
                    O_RDWR | O_CREAT | O_DIRECT, O_WRONLY | O_RDWR | O_CREAT}) {
    EXPECT_FALSE(
        root.Create("/other", root_user_, flags, 0644, &st, &parent).valid())
        << flags;
  }
  for (mode_t mode : {04755, 02755, 01644, S_IFIFO | 0644}) {
    EXPECT_FALSE(root.Create("/other", root_user_, O_WRONLY | O_CREAT, mode,
                             &st, &parent)
                     .valid())
        << mode;
  }
  EXPECT_FALSE(Exists(root_path_ + "/other"));
  EXPECT_EQ(root.changed(), 1u);
}

TEST_F(RootDirectoryTest, CreatesAsTheCallerBeneathItOnly) {
  RootDirectory root;
  struct stat st;
  std::optional<struct stat> parent;
  ASSERT_TRUE(root.Adopt(RootFd(), std::nullopt, false, false, true).ok());
  UserIdentity nobody;
  nobody.uid = kNobody;
  nobody.gid = kNobody;
  // No write permission on root's 0755 directory.
  EXPECT_FALSE(
      root.Create("/made", nobody, O_WRONLY | O_CREAT, 0644, &st, &parent)
          .valid());
  ASSERT_EQ(chmod(root_path_.c_str(), 0777), 0);
  UniqueFd made =
      root.Create("/made", nobody, O_WRONLY | O_CREAT, 0644, &st, &parent);
  ASSERT_TRUE(made.valid());
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kNobody);
  // Through a symlink, out of the tree, the root itself, no name.
  for (const char* path : {"/up/x", "/../x", "/link/x", "/", "", "x", "/sub/",
                           "/sub/..", "/fifo/x"}) {
    EXPECT_FALSE(
        root.Create(path, root_user_, O_WRONLY | O_CREAT, 0644, &st, &parent)
            .valid())
        << path;
  }
  EXPECT_FALSE(Exists(base_ + "/x"));
  EXPECT_EQ(setfsuid(-1), 0);
}

}  // namespace
}  // namespace fusehost
