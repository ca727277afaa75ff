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
from ._mount import FUSE, fuse_exit, parse_options
from ._operations import (ENOATTR, ENOTSUP, FuseOSError, LoggingMixIn,
                          Operations, log_callback, overrides)
from ._server import FuseHostError, serve

# mfusepy's names for the stand-ins of libfuse structs.
fuse_file_info = FileInfo
c_flock_t = Flock

__all__ = [
    "Caller", "ENOATTR", "ENOTSUP", "FUSE", "FileInfo", "Flock",
    "FuseHostError", "FuseOSError", "LoggingMixIn", "Operations",
    "fuse_exit", "fuse_file_info", "fuse_get_caller", "fuse_get_context",
    "log_callback", "overrides", "parse_options", "serve",
    "stat_result_to_dict",
]
