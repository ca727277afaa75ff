"""The C library calls loopback.py makes that Python's os module lacks:
openat2 (paths that cannot leave the root), a per-thread setgroups,
renameat2 and fallocate."""

import ctypes
import errno
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]

# Raw syscall numbers: glibc's setgroups() changes every thread of the
# process; the syscall changes only the calling one.
SYSCALLS = {
    "x86_64": {"setgroups": 116, "openat2": 437},
    "aarch64": {"setgroups": 159, "openat2": 437},
}.get(platform.machine(), {})

RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


# openat2(2) as a ctypes function with fixed argument types, and one
# immutable open_how: converting arguments is most of a ctypes call's cost.
_HOW = _OpenHow(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0,
                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
_HOW_REF = ctypes.byref(_HOW)
_HOW_SIZE = ctypes.sizeof(_HOW)
_OPENAT2_NR = SYSCALLS.get("openat2", -1)
_openat2 = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                            use_errno=True)(("syscall", libc))


def check(ret):
    """`ret`, the result of a libc call; OSError of its errno when < 0."""
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def set_thread_groups(groups):
    """setgroups(2) for the calling thread only."""
    array = (ctypes.c_uint * len(groups))(*groups)
    check(libc.syscall(SYSCALLS["setgroups"], ctypes.c_size_t(len(groups)),
                       array))


def openat2_beneath(root_fd, rel):
    """O_PATH descriptor of directory `rel` below `root_fd`, resolved with
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS."""
    while True:
        fd = _openat2(_OPENAT2_NR, root_fd, os.fsencode(rel), _HOW_REF,
                      _HOW_SIZE)
        if fd >= 0:
            return fd
        if ctypes.get_errno() != errno.EAGAIN:  # EAGAIN: a rename raced
            check(fd)
