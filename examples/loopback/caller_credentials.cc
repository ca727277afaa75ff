#include "examples/loopback/caller_credentials.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace fusehost {
namespace examples {
namespace {

// setfsuid/setfsgid report no errors: they return the previous id whether or
// not they changed it. Asking with an invalid id (-1) changes nothing and
// returns the current one, which is how a change is verified.
constexpr long kQueryId = -1;

uid_t CurrentFsuid() {
  return static_cast<uid_t>(syscall(SYS_setfsuid, kQueryId));
}

gid_t CurrentFsgid() {
  return static_cast<gid_t>(syscall(SYS_setfsgid, kQueryId));
}

// The calling thread's supplementary groups (the kernel keeps a list per
// thread; glibc's getgroups is the same syscall, named here for symmetry).
int ThreadGroups(std::vector<gid_t>* groups) {
  long n = syscall(SYS_getgroups, 0, nullptr);
  if (n < 0) return errno;
  groups->resize(static_cast<size_t>(n));
  n = syscall(SYS_getgroups, n, groups->data());
  if (n < 0) return errno;
  groups->resize(static_cast<size_t>(n));
  return 0;
}

int SetThreadGroups(const std::vector<gid_t>& groups) {
  if (syscall(SYS_setgroups, groups.size(), groups.data()) != 0) return errno;
  return 0;
}

// The calling thread's own identity, which every guard restores: read once
// per thread, since nothing else changes it.
struct OwnIdentity {
  bool known = false;
  bool readable = false;
  uid_t fsuid = 0;
  gid_t fsgid = 0;
  std::vector<gid_t> groups;  // sorted, without repeats
};

void SortedSet(std::vector<gid_t>* groups) {
  std::sort(groups->begin(), groups->end());
  groups->erase(std::unique(groups->begin(), groups->end()), groups->end());
}

const OwnIdentity& Own() {
  thread_local OwnIdentity own;
  if (!own.known) {
    own.fsuid = CurrentFsuid();
    own.fsgid = CurrentFsgid();
    own.readable = ThreadGroups(&own.groups) == 0;
    SortedSet(&own.groups);
    own.known = true;
  }
  return own;
}

// The thread acts as `ctx` already: switching would change nothing.
bool IsOwn(const Context& ctx) {
  const OwnIdentity& own = Own();
  if (!own.readable || ctx.uid != own.fsuid || ctx.gid != own.fsgid) {
    return false;
  }
  std::vector<gid_t> groups = ctx.groups;
  SortedSet(&groups);
  return groups == own.groups;
}

[[noreturn]] void DieRestoring(const char* what) {
  std::fprintf(stderr,
               "loopback_fs: cannot restore the thread's %s after an "
               "operation; aborting rather than acting as another user\n",
               what);
  std::abort();
}

}  // namespace

bool CallerCredentials::ProcessCanSwitch() {
  __user_cap_header_struct header = {};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;  // the calling thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  const uint32_t needed = (1u << CAP_SETUID) | (1u << CAP_SETGID);
  if ((data[0].effective & needed) != needed) return false;
  // The capabilities are not enough inside a user namespace that maps only a
  // few ids or denies setgroups (Bazel's sandbox, rootless containers): try
  // it, on this thread, as the traditional "nobody", and switch back.
  Context nobody;
  nobody.uid = 65534;
  nobody.gid = 65534;
  CallerCredentials probe(nobody, /*enabled=*/true);
  return probe.error() == 0;
}

CallerCredentials::CallerCredentials(const Context& ctx, bool enabled) {
  // A caller who is the backend's own user (root, for most root backends'
  // callers) costs no system call.
  if (!enabled || IsOwn(ctx)) return;
  // Groups and fsgid first, fsuid last, restored in reverse: the usual rule
  // of changing the user id last. (Leaving fsuid 0 drops only the filesystem
  // capabilities, not CAP_SETGID, so the order is not strictly needed; keeping
  // it means the guard does not depend on that detail.)
  if ((error_ = ThreadGroups(&saved_groups_)) != 0) return;
  if ((error_ = SetThreadGroups(ctx.groups)) != 0) return;
  groups_set_ = true;

  saved_fsgid_ = static_cast<gid_t>(syscall(SYS_setfsgid, ctx.gid));
  fsgid_set_ = true;
  if (CurrentFsgid() != ctx.gid) {
    error_ = EPERM;
    Restore();
    return;
  }

  saved_fsuid_ = static_cast<uid_t>(syscall(SYS_setfsuid, ctx.uid));
  fsuid_set_ = true;
  if (CurrentFsuid() != ctx.uid) {
    error_ = EPERM;
    Restore();
  }
}

CallerCredentials::~CallerCredentials() { Restore(); }

void CallerCredentials::Restore() {
  if (fsuid_set_) {
    syscall(SYS_setfsuid, saved_fsuid_);
    if (CurrentFsuid() != saved_fsuid_) DieRestoring("fsuid");
    fsuid_set_ = false;
  }
  if (fsgid_set_) {
    syscall(SYS_setfsgid, saved_fsgid_);
    if (CurrentFsgid() != saved_fsgid_) DieRestoring("fsgid");
    fsgid_set_ = false;
  }
  if (groups_set_) {
    if (SetThreadGroups(saved_groups_) != 0) DieRestoring("groups");
    groups_set_ = false;
  }
}

}  // namespace examples
}  // namespace fusehost
