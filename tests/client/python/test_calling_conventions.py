"""How the Python SDK calls the operations whose arguments differ between
libfuse 2 and 3: as mfusepy calls them, with fusehost's extra arguments
(renameat2's flags, the handle of truncate, chmod, chown and utimens) only
for methods that name a parameter for them. A decorator's `*args` names
nothing, so a method wrapped in one is called as mfusepy calls it.

Each batch goes through the servicer's Execute, as the daemon's batches do
(nothing is mounted). Needs `bazel build //...`; runs as any user.
"""

import errno
import functools

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb

_RENAME_NOREPLACE = 1
_FILE = {"st_mode": 0o100644, "st_nlink": 1, "st_mtime": 5, "st_atime": 5,
         "st_ctime": 5}


def passing_on(func):
    """A decorator in the style of mfusepy's loopback example: it takes
    whatever it is given and passes it on."""
    def wrapper(self, path, *args, **kwargs):
        return func(self, path, *args, **kwargs)
    return wrapper


class Recorder(fusehost.Operations):
    """Records the arguments of every call."""
    use_ns = True

    def __init__(self):
        self.calls = []

    def getattr(self, path, fh=None):
        self.calls.append(("getattr", path, fh))
        return dict(_FILE)


def run(ops, *ops_to_run, instance=5):
    servicer = _server.make_backend(
        ops, options=_server.backend_options({}), instance=instance)
    try:
        batch = pb.Batch(mount_id=1)
        for i, fill in enumerate(ops_to_run, 1):
            op = batch.ops.add(id=i)
            fill(op)
        result = servicer.Execute(batch, None)
        return sorted(result.results, key=lambda r: r.id)
    finally:
        servicer.shutdown()


def op(kind, **fields):
    """Fills an Op as a `kind` request with `fields` (an optional field
    left out stays unset)."""
    def fill(o):
        request = getattr(o, kind)
        request.SetInParent()
        for name, value in fields.items():
            setattr(request, name, value)
    return fill


def rename(old, new, flags=0):
    return op("rename", old_path=old, new_path=new, flags=flags)


def truncate(path, size, **fh):
    return op("truncate", path=path, size=size, **fh)


def chmod(path, mode, **fh):
    return op("chmod", path=path, mode=mode, **fh)


def getattr_op(path, **fh):
    return op("getattr", path=path, **fh)


class TwoArgRename(Recorder):
    def rename(self, old, new):
        self.calls.append(("rename", old, new))


class FlagsRename(Recorder):
    def rename(self, old, new, flags):
        self.calls.append(("rename", old, new, flags))


class WrappedRename(Recorder):
    @passing_on
    def rename(self, old, new, *rest):
        self.calls.append(("rename", old, new) + rest)


def test_rename_gets_flags_only_when_it_names_a_third_parameter():
    ops = FlagsRename()
    r = run(ops, rename(b"/a", b"/b", _RENAME_NOREPLACE))
    assert r[0].posix_errno == 0
    assert ("rename", "/a", "/b", _RENAME_NOREPLACE) in ops.calls
    for cls in (TwoArgRename, WrappedRename):
        ops = cls()
        r = run(ops, rename(b"/a", b"/b"), rename(b"/c", b"/d", 1))
        assert r[0].posix_errno == 0, cls
        assert ("rename", "/a", "/b") in ops.calls, cls
        # Flags it cannot be told of are refused, never dropped: a
        # RENAME_NOREPLACE carried out as a plain rename would replace.
        assert r[1].posix_errno == errno.EINVAL, cls
        assert not any(c[1] == "/c" for c in ops.calls), cls


class TwoArgTruncate(Recorder):
    def truncate(self, path, length):
        self.calls.append(("truncate", path, length))


class HandleTruncate(Recorder):
    def truncate(self, path, length, fh=None):
        self.calls.append(("truncate", path, length, fh))


class WrappedTruncate(Recorder):
    @passing_on
    def truncate(self, path, *rest):
        self.calls.append(("truncate", path) + rest)


def test_truncate_gets_the_handle_only_when_it_names_a_parameter_for_it():
    ops = HandleTruncate()
    run(ops, truncate(b"/f", 3, fh=9), truncate(b"/g", 4))
    assert ("truncate", "/f", 3, 9) in ops.calls
    assert ("truncate", "/g", 4, None) in ops.calls
    for cls in (TwoArgTruncate, WrappedTruncate):
        ops = cls()
        r = run(ops, truncate(b"/f", 3, fh=9))
        assert r[0].posix_errno == 0, cls
        assert ("truncate", "/f", 3) in ops.calls, cls


class KeywordChmod(Recorder):
    def chmod(self, path, mode, fh=None):
        self.calls.append(("chmod", path, mode, fh))


class WrappedChmod(Recorder):
    @passing_on
    def chmod(self, path, *rest, **kw):
        self.calls.append(("chmod", path) + rest + tuple(kw.items()))


def test_chmod_gets_the_handle_by_keyword_only_when_it_names_fh():
    ops = KeywordChmod()
    run(ops, chmod(b"/f", 0o600, fh=4))
    assert ("chmod", "/f", 0o600, 4) in ops.calls
    ops = WrappedChmod()
    r = run(ops, chmod(b"/f", 0o600, fh=4))
    assert r[0].posix_errno == 0
    assert ("chmod", "/f", 0o600) in ops.calls


class PathOnlyGetattr(fusehost.Operations):
    use_ns = True

    def __init__(self):
        self.calls = []

    def getattr(self, path):
        self.calls.append(path)
        return dict(_FILE)


class WrappedGetattr(Recorder):
    def __init__(self):
        super().__init__()
        inner = self.getattr

        @functools.wraps(inner)
        def logged(*args):
            self.calls.append(("logged",) + args)
            return inner(*args)
        # Not seen through: an instance attribute without __wrapped__.
        del logged.__wrapped__
        self.getattr = logged


def test_getattr_is_called_with_the_handle_as_mfusepy_calls_it():
    ops = Recorder()
    run(ops, getattr_op(b"/f"), getattr_op(b"/g", fh=8))
    assert ("getattr", "/f", None) in ops.calls
    assert ("getattr", "/g", 8) in ops.calls
    ops = WrappedGetattr()
    run(ops, getattr_op(b"/g", fh=8))
    assert ("logged", "/g", 8) in ops.calls
    ops = PathOnlyGetattr()
    r = run(ops, getattr_op(b"/f", fh=8))
    assert r[0].posix_errno == 0 and ops.calls == ["/f"]


class WrappedCreate(Recorder):
    @passing_on
    def create(self, path, *rest):
        self.calls.append(("create", path) + rest)
        return 3


class TwoArgCreate(Recorder):
    def create(self, path, mode):
        self.calls.append(("create", path, mode))
        return 3


def test_create_is_called_as_mfusepy_calls_it():
    create = op("create", path=b"/n", mode=0o100600, flags=2)
    ops = WrappedCreate()
    run(ops, create)
    assert ("create", "/n", 0o100600, 2) in ops.calls
    ops = TwoArgCreate()
    run(ops, create)
    assert ("create", "/n", 0o100600) in ops.calls


class ConfigInit(Recorder):
    def init_with_config(self, conn_info, config_3):
        self.calls.append(("init", type(conn_info), type(config_3)))
        config_3.nullpath_ok = True  # accepted, as mfusepy's example does


def test_init_with_config_gets_the_connection_and_the_configuration():
    ops = ConfigInit()
    servicer = _server.make_backend(ops, options=_server.backend_options({}))
    try:
        assert servicer.Init(pb.InitRequest(mount_id=1), None).posix_errno \
            == 0
    finally:
        servicer.shutdown()
    assert ops.calls == [("init", fusehost.fuse_conn_info,
                          fusehost.fuse_config)]


class WithIoctl(Recorder):
    def ioctl(self, path, cmd, arg, fh, flags, data):
        return 0


def test_the_init_reply_says_whether_ioctl_is_implemented():
    # Without it the daemon answers ENOTTY itself (every open() of Python
    # asks whether the file is a terminal).
    for ops, implemented in ((Recorder(), False), (WithIoctl(), True)):
        servicer = _server.make_backend(
            ops, options=_server.backend_options({}))
        try:
            reply = servicer.Init(pb.InitRequest(mount_id=1), None)
            assert reply.ioctl is implemented
        finally:
            servicer.shutdown()
