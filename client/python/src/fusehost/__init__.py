"""fusehost: write fuse-hostd backends in Python with mfusepy's API.

An mfusepy (or fusepy) filesystem runs unchanged after replacing
`import mfusepy as fuse` with `import fusehost as fuse`:

    import errno, stat
    import fusehost as fuse

    class Hello(fuse.Operations):
        use_ns = True

        def getattr(self, path, fh=None):
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path == "/hello":
                return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1,
                        "st_size": 6}
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path, fh):
            return [".", "..", "hello"]

        def read(self, path, size, offset, fh):
            return b"hello\\n"[offset:offset + size]

    fuse.FUSE(Hello(), "/mnt/hello", foreground=True, allow_other=True)

FUSE() serves the operations on a private socket and asks the running
fuse-hostd to mount them; serve() only serves, for `fuse-hostctl mount`.

The daemon and the kernel cache attributes and listings for 1 s, or for
`default_ttl` seconds (a class attribute). A filesystem whose files also
change other than through the mount says so, from any thread, and the
daemon drops what it cached at once:

    fs.notify_changed("/hello")          # contents or attributes changed,
                                         # or the file appeared
    fs.notify_removed("/old")            # the name is gone
    fs.notify_subtree_changed("/dir")    # anything at or below it

These only queue (they never block on the daemon); see Operations.
See README.md, "Writing a backend in Python".
"""

from ._context import Caller, fuse_get_caller, fuse_get_context
from ._convert import FileInfo, Flock, stat_result_to_dict
from . import _features
from ._features import *  # noqa: F401,F403  (flags and ACLs: its __all__)
from ._mfusepy_names import (
    FieldsEntry, ReadDirResult, c_dev_t, c_flock_t, c_fsblkcnt_t,
    c_fsfilcnt_t, c_gid_t, c_mode_t, c_off_t, c_pid_t, c_stat, c_statvfs,
    c_timespec, c_uid_t, c_utimbuf, callback_logger, fuse_config,
    fuse_conn_info, fuse_context, fuse_file_info, fuse_version_major,
    fuse_version_minor, get_fuse_version, log, set_st_attrs,
    time_of_timespec)
from ._mount import FUSE, fuse_exit, parse_options
from ._operations import (ENOATTR, ENOTSUP, FuseOSError, LoggingMixIn,
                          Operations, log_callback, overrides)
from ._passthrough import Passthrough
from ._server import FuseHostError, serve

__all__ = [
    # mfusepy's names (tests/client/python/test_mfusepy_names.py lists
    # the ones left out, and why).
    "ENOATTR", "ENOTSUP", "FUSE", "FieldsEntry", "FuseOSError",
    "LoggingMixIn", "Operations", "ReadDirResult", "c_dev_t", "c_flock_t",
    "c_fsblkcnt_t", "c_fsfilcnt_t", "c_gid_t", "c_mode_t", "c_off_t",
    "c_pid_t", "c_stat", "c_statvfs", "c_timespec", "c_uid_t", "c_utimbuf",
    "callback_logger", "fuse_config", "fuse_conn_info", "fuse_context",
    "fuse_exit", "fuse_file_info", "fuse_get_context", "fuse_version_major",
    "fuse_version_minor", "get_fuse_version", "log", "log_callback",
    "overrides", "set_st_attrs", "time_of_timespec",
    # fusehost's own.
    "Caller", "FileInfo", "Flock", "FuseHostError", "Passthrough",
    "fuse_get_caller",
    "parse_options", "serve", "stat_result_to_dict",
]
# Feature flags (FUSE_CAP_*) and POSIX ACLs: mfusepy's names, and a few of
# fusehost's own (tests/client/python/test_mfusepy_names.py says which).
__all__ += _features.__all__
