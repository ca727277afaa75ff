"""The Python SDK's dispatch without a daemon, for test_python_sdk*.py: Batch
messages go straight to the FileSystem servicer of fusehost (run, one),
and Files is a tiny fixed tree, mfusepy style, to run them on."""

import errno
import stat
import warnings

from pyfhlib import import_fusehost

fuse = import_fusehost()
from fusehost import _server  # noqa: E402
from fusehost._proto import pb  # noqa: E402

NS = 10**9


def servicer(ops, **options):
    opts = _server.backend_options(dict(options))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _server.make_backend(ops, options.get("raw_fi", False),
                                    "utf-8", opts)


def run(ops_or_servicer, *ops, caller=(1000, 1000, 4242), **options):
    """Executes one batch of (kind, request) pairs; returns the results in
    op order."""
    s = ops_or_servicer if isinstance(ops_or_servicer, _server.Servicer) \
        else servicer(ops_or_servicer, **options)
    batch = pb.Batch(mount_id=7)
    for i, (kind, req) in enumerate(ops):
        op = batch.ops.add(id=100 + i)
        op.caller.uid, op.caller.gid, op.caller.pid = caller
        op.caller.groups.extend([caller[1], 27])
        getattr(op, kind).CopyFrom(req)
    reply = s.Execute(batch, None)
    by_id = {r.id: r for r in reply.results}
    assert len(by_id) == len(ops)
    return [by_id[100 + i] for i in range(len(ops))]


def one(ops, kind, req, **kw):
    return run(ops, (kind, req), **kw)[0]


class Files(fuse.Operations):
    """A tiny fixed tree, mfusepy style."""
    use_ns = True

    def __init__(self):
        self.calls = []
        self.files = {
            "/": {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2},
            "/a": {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1,
                   "st_size": 5, "st_uid": 1000, "st_gid": 100,
                   "st_ino": 77, "st_mtime": 1500000000 * NS + 5,
                   "st_atime": 1000000000 * NS + 123456789,
                   "st_ctime": 1600000000 * NS},
        }

    def getattr(self, path, fh=None):
        self.calls.append(("getattr", path, fh))
        if path not in self.files:
            raise fuse.FuseOSError(errno.ENOENT)
        return self.files[path]

    def readdir(self, path, fh):
        return [".", "..", ("a", self.files["/a"], 0),
                ("typed", stat.S_IFLNK, 0), ("mode_only",
                                             {"st_mode": stat.S_IFDIR}, 0),
                "plain"]

    def read(self, path, size, offset, fh):
        return b"0123456789"[offset:offset + size + 3]  # more than asked

    def write(self, path, data, offset, fh):
        return len(data) + 10  # claims more than sent

    def mkdir(self, path, mode):
        self.files[path] = {"st_mode": stat.S_IFDIR | mode, "st_nlink": 2}
        return 0

    def create(self, path, mode):  # fusepy's two-argument form
        self.files[path] = {"st_mode": stat.S_IFREG | mode, "st_nlink": 1}
        return 42

    def chmod(self, path, mode):
        return -errno.EPERM  # libfuse style negative return

    def unlink(self, path):
        raise RuntimeError("bug in the filesystem")

    def rmdir(self, path):
        raise OSError(errno.ENOTEMPTY, "not empty")

    def symlink(self, target, source):
        raise OSError("no errno")

    def truncate(self, path, length, fh=None):
        raise fuse.FuseOSError(70000)

    def utimens(self, path, times=None):
        self.calls.append(("utimens", path, times))
        return 0
