// Makes the calling thread act as the user who issued a request, for the
// length of one operation.
//
// Linux checks file permissions against a thread's filesystem uid and gid
// (fsuid, fsgid) and its supplementary groups, and files a thread creates get
// its fsuid/fsgid as owner. Setting these to the caller's makes every
// permission decision and every new file's ownership exactly what the caller
// would have got on the underlying directory, without reimplementing POSIX
// (or ACL) permission rules in the backend.
//
// The kernel keeps all three per thread, but glibc's setgroups() applies the
// change to every thread of the process (POSIX wants process-wide ids; glibc
// signals each thread to get it). The guard therefore uses the raw syscalls,
// which touch only the calling thread, so that operations of different
// callers can run concurrently on different threads.

#ifndef FUSE_HOSTD_EXAMPLES_LOOPBACK_CALLER_CREDENTIALS_H_
#define FUSE_HOSTD_EXAMPLES_LOOPBACK_CALLER_CREDENTIALS_H_

#include <sys/types.h>

#include <vector>

#include "client/filesystem.h"

namespace fusehost {
namespace examples {

// RAII guard: the constructor switches the calling thread's fsuid, fsgid and
// supplementary groups to `ctx`'s (when `enabled`), the destructor restores
// them. While fsuid is not 0 the kernel also drops the thread's
// filesystem capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, ...) and
// raises them again on restore, so a root backend really gets the caller's
// rights, not root's.
//
// A caller with the thread's own identity (same fsuid, fsgid and set of
// groups; the thread's own is read once per thread) is not switched to: the
// twelve system calls of a switch and its restore would change nothing.
//
// Thread use: affects only the thread that creates it; it must be destroyed on
// that same thread (keep it on the stack). Guards must not be nested.
class CallerCredentials {
 public:
  // Whether this process may switch identities: it has CAP_SETUID and
  // CAP_SETGID in its effective set (normally: it runs as root) and a trial
  // switch of the calling thread succeeds. Otherwise a backend can only act
  // as itself.
  static bool ProcessCanSwitch();

  // Switches to `ctx` when `enabled`; does nothing otherwise.
  CallerCredentials(const Context& ctx, bool enabled);
  ~CallerCredentials();

  CallerCredentials(const CallerCredentials&) = delete;
  CallerCredentials& operator=(const CallerCredentials&) = delete;

  // 0, or the errno why switching failed. Then the thread is back to its own
  // identity and the operation must not run: running it as the backend would
  // hand the caller the backend's rights.
  int error() const { return error_; }

 private:
  // Undoes whatever the constructor changed, most recent first. Aborts if the
  // thread cannot get its own identity back: continuing would run later
  // operations as a stranger.
  void Restore();

  int error_ = 0;
  bool groups_set_ = false;
  bool fsgid_set_ = false;
  bool fsuid_set_ = false;
  std::vector<gid_t> saved_groups_;
  gid_t saved_fsgid_ = 0;
  uid_t saved_fsuid_ = 0;
};

}  // namespace examples
}  // namespace fusehost

#endif  // FUSE_HOSTD_EXAMPLES_LOOPBACK_CALLER_CREDENTIALS_H_
