#include "daemon/authz/as_user.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// What the child reports. `fd` travels separately as SCM_RIGHTS.
struct ChildReport {
  int err = 0;  // errno of the work, 0 on success
  int aux = 0;  // work-specific second result
  int stage = 0;  // kStage*: where it failed
  struct stat st = {};  // OpenDirectoryWork's inspection
  int64_t fs_type = 0;
};

enum : int { kStageCredentials = 1, kStageWork = 2 };

// Work done in the child: async-signal-safe only. Returns an fd or -1 with
// report->err set.
using ChildWork = int (*)(const void* arg, ChildReport* report);

// One ChildReport and room for one descriptor, as a sendmsg/recvmsg
// message. Plain memory: usable in the child after fork().
struct ReportMessage {
  explicit ReportMessage(ChildReport* report) {
    iov.iov_base = report;
    iov.iov_len = sizeof(*report);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
  }
  struct iovec iov;
  struct msghdr msg = {};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;  // (its flexible array member must come last)
  } control;
};

void SendReport(int sock, ChildReport report, int fd) {
  ReportMessage m(&report);
  struct msghdr& msg = m.msg;
  if (fd < 0) {
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
  } else {
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void RunChild(int sock, const UserIdentity& user,
                           const gid_t* groups, size_t ngroups, ChildWork work,
                           const void* arg) {
  ChildReport report;
  // Nothing the daemon holds (mounts' /dev/fuse, client connections) may
  // stay reachable from a process that runs as the user.
  if (sock != 3) {
    if (dup2(sock, 3) < 0) _exit(1);
    sock = 3;
  }
  syscall(SYS_close_range, 0, 2, 0);
  syscall(SYS_close_range, 4, ~0U, 0);
  // Raw syscalls: they change this (only) thread's credentials without
  // glibc's all-threads machinery.
  // Not dumpable, so that the user cannot ptrace the helper and forge its
  // report. Changing the effective uid makes a process as dumpable as
  // fs.suid_dumpable says, so: first the real and effective uid, keeping a
  // saved uid of root (ptrace(2) wants all three to be the tracer's, so
  // nobody can attach in between), then PR_SET_DUMPABLE, then the saved uid
  // too (a change of the saved uid alone keeps the process non-dumpable;
  // FUSE lets a process into its owner's mount only when all three are the
  // owner's).
  if (syscall(SYS_setgroups, ngroups, groups) != 0 ||
      syscall(SYS_setresgid, user.gid, user.gid, user.gid) != 0 ||
      syscall(SYS_setresuid, user.uid, user.uid, 0) != 0 ||
      prctl(PR_SET_DUMPABLE, 0) != 0 ||
      syscall(SYS_setresuid, -1, -1, user.uid) != 0) {
    report.err = errno;
    report.stage = kStageCredentials;
    SendReport(sock, report, -1);
    _exit(1);
  }
  // Reset by the credential change, so set afterwards.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = work(arg, &report);
  if (fd < 0) report.stage = kStageWork;
  SendReport(sock, report, fd);
  _exit(0);
}

struct ChildResult {
  ChildReport report;
  UniqueFd fd;
};

absl::StatusOr<ChildResult> RunAsUser(const UserIdentity& user,
                                      absl::Duration timeout, ChildWork work,
                                      const void* arg, const char* what) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::InternalError(
        absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  UniqueFd mine(sv[0]);
  UniqueFd theirs(sv[1]);
  // Everything the child reads is prepared before fork(): it may not
  // allocate.
  std::vector<gid_t> groups = user.groups;
  pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    RunChild(theirs.get(), user, groups.data(), groups.size(), work, arg);
  }
  theirs.reset();
  ChildResult result;
  struct pollfd pfd = {mine.get(), POLLIN, 0};
  int ready;
  do {
    ready = poll(&pfd, 1, absl::ToInt64Milliseconds(timeout));
  } while (ready < 0 && errno == EINTR);
  bool got = false;
  if (ready > 0) {
    ReportMessage m(&result.report);
    struct msghdr& msg = m.msg;
    ssize_t n = recvmsg(mine.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n == static_cast<ssize_t>(sizeof(result.report))) {
      got = true;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
           c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int fd;
          memcpy(&fd, CMSG_DATA(c), sizeof(int));
          result.fd.reset(fd);
        }
      }
    }
  } else {
    kill(pid, SIGKILL);
  }
  int wstatus;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (ready == 0) {
    return absl::DeadlineExceededError(absl::StrCat(
        what, " did not finish within ", absl::FormatDuration(timeout)));
  }
  if (!got) {
    return absl::InternalError(absl::StrCat(what, ": helper process failed"));
  }
  if (result.report.stage == kStageCredentials) {
    return absl::InternalError(absl::StrCat(
        what, ": cannot take the user's credentials: ",
        std::strerror(result.report.err)));
  }
  return result;
}

absl::Status ErrnoStatus(int err, const std::string& message) {
  std::string text = absl::StrCat(message, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(text);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(text);
    default:
      return absl::FailedPreconditionError(text);
  }
}

struct OpenDirectoryArgs {
  const char* path;
  bool inspect;
};

int OpenDirectoryWork(const void* arg, ChildReport* report) {
  const auto* args = static_cast<const OpenDirectoryArgs*>(arg);
  int fd = open(args->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    report->err = errno;
    return -1;
  }
  if (!args->inspect) return fd;
  struct statfs sfs;
  if (fstat(fd, &report->st) != 0 || fstatfs(fd, &sfs) != 0) {
    report->err = errno;
    close(fd);
    return -1;
  }
  report->fs_type = sfs.f_type;
  // access(2) checks with the real ids, which are the user's here; going
  // through the descriptor keeps it on the very directory opened.
  if (fchdir(fd) != 0 || access(".", W_OK) != 0) report->aux = errno;
  return fd;
}

int ConnectWork(const void* arg, ChildReport* report) {
  const struct sockaddr_un* addr = static_cast<const struct sockaddr_un*>(arg);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    report->err = errno;
    return -1;
  }
  if (connect(fd, reinterpret_cast<const struct sockaddr*>(addr),
              sizeof(*addr)) != 0) {
    report->err = errno;
    close(fd);
    return -1;
  }
  return fd;
}

struct ReadFileArgs {
  const char* path;
  size_t max_bytes;
};

// ReadFileWork's refusals, in ChildReport::aux.
enum : int { kNotRegular = 1, kTooLarge = 2 };

// Copies the file into a memfd, which is what the daemon gets.
int ReadFileWork(const void* arg, ChildReport* report) {
  const auto* args = static_cast<const ReadFileArgs*>(arg);
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = open(args->path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    report->err = errno;
    return -1;
  }
  if (fstat(fd, &report->st) != 0) {
    report->err = errno;
    close(fd);
    return -1;
  }
  if (!S_ISREG(report->st.st_mode)) {
    report->aux = kNotRegular;
    close(fd);
    return -1;
  }
  int copy = static_cast<int>(syscall(SYS_memfd_create, "as-user-file",
                                      MFD_CLOEXEC));
  if (copy < 0) {
    report->err = errno;
    close(fd);
    return -1;
  }
  char buf[16384];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      report->err = errno;
      break;
    }
    if (n == 0) break;
    total += n;
    if (total > args->max_bytes) {
      report->aux = kTooLarge;
      break;
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(copy, buf + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        report->err = w < 0 ? errno : EIO;
        break;
      }
      done += w;
    }
    if (report->err != 0) break;
  }
  close(fd);
  if (report->err != 0 || report->aux != 0) {
    close(copy);
    return -1;
  }
  return copy;
}

}  // namespace

absl::StatusOr<SmallFile> ReadSmallFileAsUser(const UserIdentity& user,
                                              const std::string& path,
                                              size_t max_bytes,
                                              absl::Duration timeout) {
  ReadFileArgs args{path.c_str(), max_bytes};
  absl::StatusOr<ChildResult> r =
      RunAsUser(user, timeout, &ReadFileWork, &args, "reading a file");
  if (!r.ok()) return r.status();
  if (r->report.err != 0) return ErrnoStatus(r->report.err, path);
  if (r->report.aux == kNotRegular) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (r->report.aux == kTooLarge) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  if (!r->fd.valid()) {
    return absl::InternalError(absl::StrCat(path, ": no descriptor received"));
  }
  // The helper's own memfd: nothing the user can touch any more, and
  // reading it cannot block.
  SmallFile out;
  out.st = r->report.st;
  struct stat copy_st;
  if (fstat(r->fd.get(), &copy_st) != 0 ||
      static_cast<size_t>(copy_st.st_size) > max_bytes) {
    return absl::InternalError(absl::StrCat(path, ": bad copy received"));
  }
  out.data.resize(copy_st.st_size);
  size_t got = 0;
  while (got < out.data.size()) {
    ssize_t n = pread(r->fd.get(), out.data.data() + got,
                      out.data.size() - got, got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(absl::StrCat(path, ": reading the copy: ",
                                              std::strerror(errno)));
    }
    got += n;
  }
  return out;
}

absl::StatusOr<OpenedDirectory> OpenDirectoryAsUser(const UserIdentity& user,
                                                    const std::string& path,
                                                    bool inspect,
                                                    absl::Duration timeout) {
  OpenDirectoryArgs args{path.c_str(), inspect};
  absl::StatusOr<ChildResult> r = RunAsUser(
      user, timeout, &OpenDirectoryWork, &args, "resolving the mountpoint");
  if (!r.ok()) return r.status();
  if (r->report.err != 0) return ErrnoStatus(r->report.err, path);
  if (!r->fd.valid()) {
    return absl::InternalError(absl::StrCat(path, ": no descriptor received"));
  }
  OpenedDirectory out;
  out.fd = std::move(r->fd);
  out.write_errno = r->report.aux;
  out.st = r->report.st;
  out.fs_type = r->report.fs_type;
  return out;
}

absl::StatusOr<UniqueFd> ConnectUnixAsUser(const UserIdentity& user,
                                           const std::string& socket_path,
                                           absl::Duration timeout) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", socket_path, " is empty or too long"));
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  absl::StatusOr<ChildResult> r = RunAsUser(user, timeout, &ConnectWork, &addr,
                                            "connecting to the backend");
  if (!r.ok()) return r.status();
  if (r->report.err != 0) {
    int err = r->report.err;
    std::string text = absl::StrCat("cannot connect to ", socket_path, ": ",
                                    std::strerror(err));
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(text);
    return absl::UnavailableError(text);
  }
  if (!r->fd.valid()) {
    return absl::InternalError("connect: no descriptor received");
  }
  return std::move(r->fd);
}

}  // namespace fusehost
