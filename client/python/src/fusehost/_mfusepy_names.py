"""The rest of mfusepy's public names: types that filesystems use in
annotations, C type names, libfuse's version, and small helpers.

mfusepy binds libfuse with ctypes, so many of its names are ctypes
structures handed to libfuse. fusehost links no libfuse: where such a name
stands for something a filesystem sees (the file info of raw_fi, the lock of
lock(), the caller, init_with_config's two arguments) it is the object
fusehost passes in its place; where it stands for a C type it is the same
ctypes type (Linux x86-64 sizes, as mfusepy defines them there); libfuse's
own plumbing (its callback table, buffers, function pointer types) is left
out, with the reason in tests/client/python/test_mfusepy_names.py.

Threads: nothing here has state.
"""

import ctypes
import logging
import os
from collections.abc import Iterable
from typing import Union

from ._context import Caller
from ._convert import FileInfo, Flock, Settings

# --- types for annotations ----------------------------------------------------

# What readdir returns: names, or (name, attributes, offset) tuples whose
# attributes are a getattr dict or an int st_mode.
ReadDirResult = Iterable[Union[str, tuple[str, dict[str, int], int],
                               tuple[str, int, int]]]

# An entry of a ctypes structure's _fields_: (name, type) or, for a bit
# field, (name, type, bits).
FieldsEntry = Union[tuple[str, type], tuple[str, type, int]]

# --- loggers --------------------------------------------------------------------

# The SDK's logger (errors of operations, the debug option).
log = logging.getLogger("fuse")
# LoggingMixIn's and log_callback's logger.
callback_logger = logging.getLogger("fuse.log-mixin")

# --- C types of the system's structures (Linux) -----------------------------------

c_dev_t = ctypes.c_ulonglong
c_fsblkcnt_t = ctypes.c_ulonglong
c_fsfilcnt_t = ctypes.c_ulonglong
c_gid_t = ctypes.c_uint
c_mode_t = ctypes.c_uint
c_off_t = ctypes.c_longlong
c_pid_t = ctypes.c_int
c_uid_t = ctypes.c_uint


class c_timespec(ctypes.Structure):
    """struct timespec: seconds and nanoseconds."""
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class c_utimbuf(ctypes.Structure):
    """The two times utimensat(2) sets: access and modification."""
    _fields_ = [("actime", c_timespec), ("modtime", c_timespec)]


# What getattr describes (fusehost also accepts one as getattr's result)
# and what statfs describes.
c_stat = os.stat_result
c_statvfs = os.statvfs_result

# --- what operations are given in place of libfuse's structures ---------------------

# raw_fi's file info and lock()'s lock.
fuse_file_info = FileInfo
c_flock_t = Flock
# The caller of an operation: uid, gid, pid, umask (fuse_get_caller()).
fuse_context = Caller


class fuse_conn_info(Settings):
    """init_with_config's first argument: the connection's settings
    (proto_major, proto_minor, max_write, capable, want, time_gran, ...).
    `capable` holds the features a filesystem may ask fuse-hostd for
    (FUSE_CAP_POSIX_ACL), `want` the ones asked for (the class attribute
    `wanted_features`, then set_feature_flag here); the other settings are
    informational: changing them changes nothing."""

    # libfuse 3.14 has no 64-bit capable_ext / want_ext.
    _has_extended_features = False

    def __init__(self, **values):
        self.capable = 0
        self.want = 0
        super().__init__(**values)

    def is_capable(self, flags):
        """Whether every flag in `flags` may be asked for."""
        return self.capable & flags == flags

    def is_wanted(self, flags):
        """Whether every flag in `flags` is asked for."""
        return self.want & flags == flags

    def set_feature_flag(self, flag):
        """Asks for `flag`; False (and nothing asked) when it may not be."""
        if not self.is_capable(flag):
            return False
        self.want |= flag
        return True

    def unset_feature_flag(self, flag):
        """No longer asks for `flag`."""
        self.want &= ~flag


class fuse_config(Settings):
    """init_with_config's second argument: the mount's configuration
    (entry_timeout, attr_timeout, use_ino, nullpath_ok, ...).
    Informational: changing them changes nothing (every operation on an
    open file gets its handle, and its path while it has one)."""


# --- libfuse's version ---------------------------------------------------------------

# The libfuse whose conventions operations are called with: 3 (init gets a
# config, rename has flags, getattr and the attribute changes may get a
# handle), minor 14, the libfuse fuse-hostd is built on.
FUSE_VERSION = (3, 14)


def get_fuse_version(libfuse=None):
    """(major, minor) of a library object's fuse_version() number (libfuse
    encodes 3.14 as 314, 2.9 as 29), or of the libfuse fusehost emulates
    when none is given."""
    if libfuse is None:
        return FUSE_VERSION
    number = libfuse.fuse_version()
    for scale in (10, 100):
        if number < scale * 10:
            return number // scale, number % scale
    raise AttributeError("cannot read libfuse version number %r" % number)


fuse_version_major, fuse_version_minor = FUSE_VERSION

# --- helpers ---------------------------------------------------------------------------


def time_of_timespec(ts, use_ns=False):
    """A timespec-like object (tv_sec, tv_nsec) as int nanoseconds, or as
    float seconds without use_ns."""
    if use_ns:
        return ts.tv_sec * 1000000000 + ts.tv_nsec
    return ts.tv_sec + ts.tv_nsec / 1e9


_TIME_KEYS = ("st_atime", "st_mtime", "st_ctime", "st_birthtime")


def set_st_attrs(st, attrs, use_ns=False):
    """Copies a getattr dict onto a struct-stat-like object: the times into
    its st_*timespec members (when it has them), other keys onto members
    it has; keys without a member are skipped."""
    for key, value in attrs.items():
        if key in _TIME_KEYS:
            ts = getattr(st, key + "spec", None)
            if ts is None:
                continue
            if use_ns:
                ts.tv_sec, ts.tv_nsec = divmod(int(value), 1000000000)
            else:
                ts.tv_sec = int(value)
                ts.tv_nsec = int((value - ts.tv_sec) * 1e9)
        elif getattr(st, key, None) is not None:
            setattr(st, key, value)
