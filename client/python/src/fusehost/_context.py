"""Who is calling: the caller of the operation running on this thread."""

import collections
import threading

# The full caller of an operation (fuse_get_context() returns the first
# three). groups: supplementary group ids; mount_id: the mount the request
# belongs to (a backend served with serve() may have several).
Caller = collections.namedtuple("Caller",
                                "uid gid pid umask groups mount_id")

# Set by the server around each operation, on the thread that runs it.
_local = threading.local()


def set_current(caller_message, mount_id):
    _local.caller = caller_message
    _local.mount_id = mount_id


def clear_current():
    _local.caller = None


def current_mount_id():
    return getattr(_local, "mount_id", None)


def fuse_get_context():
    """(uid, gid, pid) of the process whose request this thread is serving;
    (0, 0, 0) outside an operation."""
    c = getattr(_local, "caller", None)
    if c is None:
        return 0, 0, 0
    return c.uid, c.gid, c.pid


def fuse_get_caller():
    """The full Caller (also umask and supplementary groups), or None
    outside an operation. An extension of fusehost, not in mfusepy."""
    c = getattr(_local, "caller", None)
    if c is None:
        return None
    return Caller(c.uid, c.gid, c.pid, c.umask, tuple(c.groups),
                  getattr(_local, "mount_id", 0))
