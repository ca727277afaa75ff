"""Acting as the caller, for loopback.py: CallerCredentials switches the
calling thread's fsuid, fsgid and groups, and @as_caller runs an operation
under the credentials of the user who asked."""

import errno
import functools
import os

import fusehost as fuse
from loopback_libc import SYSCALLS, libc, set_thread_groups


class CallerCredentials:
    """Switches the calling thread's fsuid, fsgid and groups to the caller's
    for one operation. While fsuid is not 0 the kernel also drops the
    thread's filesystem capabilities, so a root backend really gets the
    caller's rights."""

    @staticmethod
    def process_can_switch():
        if os.geteuid() != 0 or "setgroups" not in SYSCALLS:
            return False
        try:
            with CallerCredentials(65534, 65534, ()):
                pass
            return True
        except OSError:
            return False

    def __init__(self, uid, gid, groups):
        self.uid, self.gid, self.groups = uid, gid, groups

    def __enter__(self):
        self.saved_groups = os.getgroups()
        set_thread_groups(self.groups)
        self.saved_gid = libc.setfsgid(self.gid)
        self.saved_uid = libc.setfsuid(self.uid)
        if libc.setfsuid(-1) != self.uid or libc.setfsgid(-1) != self.gid:
            self.__exit__()
            raise OSError(errno.EPERM, "cannot act as uid %d" % self.uid)
        return self

    def __exit__(self, *exc):
        libc.setfsuid(self.saved_uid)
        libc.setfsgid(self.saved_gid)
        set_thread_groups(self.saved_groups)
        if libc.setfsuid(-1) != self.saved_uid:
            # Going on would run later operations as a stranger.
            os.abort()


def as_caller(method):
    """Runs an operation of a filesystem object with the caller's
    credentials when the object's `switch` is set, unless the caller is
    root in the object's own group (`gid`)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        caller = fuse.fuse_get_caller() if self.switch else None
        if caller is None or (caller.uid == 0 and caller.gid == self.gid):
            return method(self, *args, **kwargs)
        with CallerCredentials(caller.uid, caller.gid, caller.groups):
            return method(self, *args, **kwargs)

    return run
