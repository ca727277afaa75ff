"""The Python SDK's dispatch, without a daemon: Batch messages go straight to
the FileSystem servicer of fusehost, and the replies are checked field by
field (errno mapping, attribute conversion, readdir batching, handles,
caller context, mfusepy calling conventions, FUSE() option mapping).

Then invalidations (Operations.notify_*): the per-stream queues, the
Invalidations stream over a real gRPC server, and a filesystem whose files
change behind a mount of the session's daemon."""

import errno
import logging
import os
import socket
import stat
import tempfile
import threading
import time
import warnings

import grpc
import pytest

from fhlib import wait_until
from pyfhlib import import_fusehost, py_mounts  # noqa: F401  (fixture)

fuse = import_fusehost()
from fusehost import _invalidations, _server  # noqa: E402
from fusehost._mount import split_options  # noqa: E402
from fusehost._proto import pb, pb_grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

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


def test_getattr_converts_times_ids_and_ino_only_with_use_ino():
    r = one(Files(), "getattr", pb.GetattrRequest(path=b"/a"))
    assert r.posix_errno == 0 and r.WhichOneof("result") == "getattr"
    a = r.getattr.attr
    assert (a.mode, a.nlink, a.size, a.uid, a.gid) == (
        stat.S_IFREG | 0o644, 1, 5, 1000, 100)
    assert (a.mtime.sec, a.mtime.nsec) == (1500000000, 5)
    assert (a.atime.sec, a.atime.nsec) == (1000000000, 123456789)
    assert a.ino == 0
    r = one(Files(), "getattr", pb.GetattrRequest(path=b"/a"), use_ino=True)
    assert r.getattr.attr.ino == 77


def test_float_seconds_without_use_ns():
    class Old(fuse.Operations):
        def getattr(self, path, fh=None):
            return {"st_mode": stat.S_IFREG, "st_mtime": 1500000000.25}

    r = one(Old(), "getattr", pb.GetattrRequest(path=b"/x"))
    t = r.getattr.attr.mtime
    assert (t.sec, t.nsec) == (1500000000, 250000000)


def test_default_getattr_and_enosys_for_missing_operations():
    ops = fuse.Operations()
    r = run(ops,
            ("getattr", pb.GetattrRequest(path=b"/")),
            ("getattr", pb.GetattrRequest(path=b"/x")),
            ("mkdir", pb.MkdirRequest(path=b"/d", mode=0o755)),
            ("open", pb.OpenRequest(path=b"/f")),
            ("getxattr", pb.GetxattrRequest(path=b"/", name=b"user.x")),
            ("statfs", pb.StatfsRequest(path=b"/")),
            ("readdir", pb.ReaddirRequest(path=b"/")))
    assert r[0].getattr.attr.mode == stat.S_IFDIR | 0o755
    assert r[1].posix_errno == errno.ENOENT
    assert r[2].posix_errno == errno.ENOSYS
    assert r[3].posix_errno == 0 and r[3].open.fh == 0
    assert r[4].posix_errno == errno.ENOSYS
    assert r[5].statfs.bsize == 512 and r[5].statfs.namemax == 255
    assert r[6].posix_errno == errno.ENOSYS


def test_errors_become_errnos_like_mfusepy(caplog):
    caplog.set_level(logging.DEBUG, logger="fuse")
    r = run(Files(),
            ("unlink", pb.UnlinkRequest(path=b"/a")),
            ("rmdir", pb.RmdirRequest(path=b"/a")),
            ("symlink", pb.SymlinkRequest(path=b"/l", target=b"x")),
            ("chmod", pb.ChmodRequest(path=b"/a", mode=0o600)),
            ("truncate", pb.TruncateRequest(path=b"/a", size=0)),
            ("getattr", pb.GetattrRequest(path=b"/a")))
    assert [x.posix_errno for x in r] == [
        errno.EINVAL, errno.ENOTEMPTY, errno.EINVAL, errno.EPERM, errno.EIO,
        0]
    # Failed ops carry no result; the neighbour is untouched.
    assert r[3].WhichOneof("result") is None
    assert r[5].getattr.attr.size == 5
    text = caplog.text
    assert "Uncaught exception from FUSE operation unlink" in text
    assert "RuntimeError: bug in the filesystem" in text  # the traceback


def test_entry_and_create_replies_carry_attributes():
    ops = Files()
    r = run(ops,
            ("mkdir", pb.MkdirRequest(path=b"/d", mode=0o750)),
            ("create", pb.CreateRequest(path=b"/n", mode=0o600,
                                        flags=os.O_WRONLY)))
    assert r[0].entry.attr.mode == stat.S_IFDIR | 0o750
    assert r[1].create.open.fh == 42
    assert r[1].create.attr.mode == stat.S_IFREG | 0o600
    # getattr after create gets the new handle, as the C++ SDK does.
    assert ("getattr", "/n", 42) in ops.calls


def test_read_is_cut_and_write_clamped():
    r = run(Files(),
            ("read", pb.ReadRequest(path=b"/a", fh=1, offset=2, size=4)),
            ("write", pb.WriteRequest(path=b"/a", fh=1, offset=0,
                                      data=b"abc")))
    assert r[0].read.data == b"2345"
    assert r[1].write.size == 3


def test_readdir_one_reply_with_attributes_and_types():
    r = one(Files(), "readdir", pb.ReaddirRequest(path=b"/", fh=3))
    rd = r.readdir
    assert rd.eof
    names = [e.name for e in rd.entries]
    assert names == [b"a", b"typed", b"mode_only", b"plain"]
    a = rd.entries[0]
    assert a.attr.size == 5 and a.attr.mtime.sec == 1500000000
    assert all(e.offset == 0 for e in rd.entries)
    assert rd.entries[1].type == stat.S_IFLNK
    assert not rd.entries[2].HasField("attr")
    assert rd.entries[2].type == stat.S_IFDIR
    assert rd.entries[3].type == 0 and not rd.entries[3].HasField("attr")


def test_readdir_stat_results_are_full_attributes(tmp_path):
    (tmp_path / "f").write_bytes(b"12345")

    class Loop(fuse.Operations):
        use_ns = True

        def getattr(self, path, fh=None):
            return os.lstat(str(tmp_path) + path)

        def readdir(self, path, fh):
            return [(n, os.lstat(os.path.join(str(tmp_path), n)), 0)
                    for n in os.listdir(str(tmp_path))]

    st = os.lstat(str(tmp_path / "f"))
    r = run(Loop(), ("readdir", pb.ReaddirRequest(path=b"/")),
            ("getattr", pb.GetattrRequest(path=b"/f")), use_ino=True)
    e = r[0].readdir.entries[0]
    for a in (e.attr, r[1].getattr.attr):
        assert a.size == 5 and a.ino == st.st_ino and a.mode == st.st_mode
        assert a.mtime.sec * NS + a.mtime.nsec == st.st_mtime_ns


def test_readdir_entries_may_carry_xattr_names():
    """A fourth tuple item lists the entry's xattr names (str or bytes;
    None: unknown); they go out only with complete attributes."""
    full = {"st_mode": stat.S_IFREG | 0o644, "st_size": 1}

    class Tagged(fuse.Operations):
        use_ns = True

        def readdir(self, path, fh):
            return [("none", full, 0, []),
                    ("some", full, 0, ["user.a", b"user.b"]),
                    ("unknown", full, 0, None),
                    ("typed", stat.S_IFREG, 0, ["user.c"]),
                    ("three", full, 0)]

    e = one(Tagged(), "readdir", pb.ReaddirRequest(path=b"/")).readdir.entries
    assert [x.name for x in e] == [b"none", b"some", b"unknown", b"typed",
                                   b"three"]
    assert e[0].attr.xattr_names_known and list(e[0].attr.xattr_names) == []
    assert e[1].attr.xattr_names_known
    assert list(e[1].attr.xattr_names) == [b"user.a", b"user.b"]
    for x in (e[2], e[4]):
        assert x.attr.size == 1 and not x.attr.xattr_names_known
    assert not e[3].HasField("attr") and e[3].type == stat.S_IFREG


def test_readdir_with_offset_pages_resume():
    n = 2500

    class Big(fuse.Operations):
        use_ns = True

        def readdir_with_offset(self, path, offset, fh):
            for i in range(offset, n):
                yield "f%05d" % i, {"st_mode": stat.S_IFREG}, i + 1

    s = servicer(Big())
    seen, offset, rounds = [], 0, 0
    while True:
        rounds += 1
        rd = one(s, "readdir", pb.ReaddirRequest(path=b"/", offset=offset)
                 ).readdir
        seen += [e.name for e in rd.entries]
        if rd.eof:
            break
        offset = rd.entries[-1].offset
    assert seen == [b"f%05d" % i for i in range(n)]
    assert rounds == 3


def test_fuse_get_context_is_the_callers_per_thread():
    seen = []

    class Ctx(fuse.Operations):
        def getattr(self, path, fh=None):
            seen.append((path, fuse.fuse_get_context(),
                         fuse.fuse_get_caller().groups,
                         threading.current_thread().name))
            return {"st_mode": stat.S_IFREG}

    run(Ctx(), ("getattr", pb.GetattrRequest(path=b"/x")),
        caller=(1234, 567, 89))
    assert seen[0][1] == (1234, 567, 89)
    assert seen[0][2] == (567, 27)
    assert fuse.fuse_get_context() == (0, 0, 0)  # outside an operation


def test_batch_ops_run_concurrently():
    """A blocking op does not hold up its batch neighbours."""
    release = threading.Event()

    class Slow(fuse.Operations):
        def getattr(self, path, fh=None):
            if path == "/slow":
                assert release.wait(10)
            else:
                release.set()
            return {"st_mode": stat.S_IFREG}

    r = run(Slow(), ("getattr", pb.GetattrRequest(path=b"/slow")),
            ("getattr", pb.GetattrRequest(path=b"/fast")))
    assert [x.posix_errno for x in r] == [0, 0]


def test_nothreads_serialises():
    active, most = [0], [0]
    lock = threading.Lock()

    class Count(fuse.Operations):
        def getattr(self, path, fh=None):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            threading.Event().wait(0.01)
            with lock:
                active[0] -= 1
            return {"st_mode": stat.S_IFREG}

    run(Count(), *[("getattr", pb.GetattrRequest(path=b"/x"))] * 8,
        nothreads=True)
    assert most[0] == 1


def test_utimens_now_omit_and_times_like_mfusepy():
    ops = Files()
    now_omit = pb.UtimensRequest(
        path=b"/a", atime=pb.TimeSet(kind=pb.TimeSet.NOW),
        mtime=pb.TimeSet(kind=pb.TimeSet.OMIT))
    both_now = pb.UtimensRequest(path=b"/a",
                                 atime=pb.TimeSet(kind=pb.TimeSet.NOW),
                                 mtime=pb.TimeSet(kind=pb.TimeSet.NOW))
    explicit = pb.UtimensRequest(
        path=b"/a", atime=pb.TimeSet(kind=pb.TimeSet.SET,
                                     time=pb.Timespec(sec=5, nsec=6)),
        mtime=pb.TimeSet(kind=pb.TimeSet.SET, time=pb.Timespec(sec=7)))
    run(ops, ("utimens", now_omit))
    run(ops, ("utimens", both_now), ("utimens", explicit))
    calls = [c for c in ops.calls if c[0] == "utimens"]
    atime, mtime = calls[0][2]
    assert mtime == 1500000000 * NS + 5  # OMIT: the current value
    assert abs(atime - __import__("time").time_ns()) < 60 * NS
    assert calls[1][2] is None  # both NOW: mfusepy's times=None
    assert calls[2][2] == (5 * NS + 6, 7 * NS)


def test_rename_flags_only_for_methods_that_take_them():
    class Two(fuse.Operations):
        def rename(self, old, new):
            return 0

    class Three(fuse.Operations):
        got = None

        def rename(self, old, new, flags):
            Three.got = flags
            return 0

    req = pb.RenameRequest(old_path=b"/a", new_path=b"/b", flags=1)
    assert one(Two(), "rename", req).posix_errno == errno.EINVAL
    assert one(Two(), "rename", pb.RenameRequest(
        old_path=b"/a", new_path=b"/b")).posix_errno == 0
    assert one(Three(), "rename", req).posix_errno == 0 and Three.got == 1


def test_raw_fi_passes_file_info_objects():
    class Raw(fuse.Operations):
        def open(self, path, fi):
            assert fi.flags == os.O_RDWR
            fi.fh = 99
            fi.direct_io = True
            return 0

        def read(self, path, size, offset, fi):
            return b"fh=%d" % fi.fh

    r = run(Raw(), ("open", pb.OpenRequest(path=b"/f", flags=os.O_RDWR)),
            ("read", pb.ReadRequest(path=b"/f", fh=99, size=100)),
            raw_fi=True)
    assert r[0].open.fh == 99 and r[0].open.direct_io
    assert r[1].read.data == b"fh=99"


def test_nullpath_and_xattr_names():
    class X(fuse.Operations):
        flag_nullpath_ok = True

        def read(self, path, size, offset, fh):
            return repr(path).encode()

        def listxattr(self, path):
            return ["user.a", "user.b"]

        def getxattr(self, path, name, position=0):
            return name  # str values are encoded

    r = run(X(), ("read", pb.ReadRequest(path=b"", fh=1, size=100)),
            ("listxattr", pb.ListxattrRequest(path=b"/f")),
            ("getxattr", pb.GetxattrRequest(path=b"/f", name=b"user.a")))
    assert r[0].read.data == b"None"
    assert r[1].xattr.data == b"user.a\0user.b\0"
    assert r[2].xattr.data == b"user.a"


def test_odd_bytes_in_names_round_trip():
    names = []

    class N(fuse.Operations):
        def getattr(self, path, fh=None):
            names.append(path)
            return {"st_mode": stat.S_IFREG}

        def readdir(self, path, fh):
            return [os.fsdecode(b"caf\xe9")]

    r = run(N(), ("getattr", pb.GetattrRequest(path=b"/caf\xe9")),
            ("readdir", pb.ReaddirRequest(path=b"/")))
    assert os.fsencode(names[0]) == b"/caf\xe9"
    assert r[1].readdir.entries[0].name == b"caf\xe9"


def test_logging_mixin_and_call_dispatch(caplog):
    caplog.set_level(logging.DEBUG, logger="fuse.log-mixin")

    class Logged(fuse.LoggingMixIn, fuse.Operations):
        def getattr(self, path, fh=None):
            return {"st_mode": stat.S_IFREG, "st_size": 3}

    r = one(Logged(), "getattr", pb.GetattrRequest(path=b"/x"))
    assert r.getattr.attr.size == 3
    assert "-> getattr /x" in caplog.text
    assert "<- getattr" in caplog.text


def test_init_destroy_and_init_errors_refuse_the_mount():
    events = []

    class Life(fuse.Operations):
        def init(self, path):
            events.append(("init", path))

        def destroy(self, path):
            events.append(("destroy", path))

        def lock(self, path, fh, cmd, lock):
            return 0

    s = servicer(Life())
    reply = s.Init(pb.InitRequest(mount_id=3), None)
    assert reply.posix_errno == 0 and reply.posix_locks
    assert not reply.flock_locks and reply.name.endswith(":Life")
    s.Destroy(pb.DestroyRequest(mount_id=3), None)
    s.destroy_once(3)  # only once per mount
    assert events == [("init", "/"), ("destroy", "/")]

    class Broken(fuse.Operations):
        def init(self, path):
            raise OSError(errno.EACCES, "no")

    assert servicer(Broken()).Init(pb.InitRequest(), None).posix_errno == \
        errno.EACCES


def test_fuse_options_map_to_the_daemon_and_the_sdk():
    daemon, backend, ignored = split_options(
        dict(allow_other=True, ro=True, default_permissions=True,
             attr_timeout=2.5, max_write=65536, use_ino=True, nothreads=True,
             direct_io=True, big_writes=True, auto_cache=True,
             hard_remove=True, debug=False, nonempty=False), "MyFs")
    assert daemon.split(",") == [
        "default_permissions", "allow_other", "ro", "attr_timeout=2.5",
        "max_write=65536", "fsname=MyFs"]
    assert backend.use_ino and backend.nothreads and backend.direct_io
    assert sorted(ignored) == ["auto_cache", "big_writes"]
    # Without default_permissions libfuse leaves checks to the filesystem.
    daemon, _, _ = split_options({"fsname": "x"}, "MyFs")
    assert daemon == "no_default_permissions,fsname=x"
    assert fuse.parse_options("allow_other,fsname=a=b") == {
        "allow_other": True, "fsname": "a=b"}


def test_fuse_fails_clearly_without_a_daemon(tmp_path):
    with pytest.raises(fuse.FuseHostError) as e:
        fuse.FUSE(fuse.Operations(), str(tmp_path), foreground=True,
                  control_socket=str(tmp_path / "nothing.sock"))
    assert "fuse-hostd is not reachable" in str(e.value)
    assert "nothing.sock" in str(e.value)


# --- invalidations: the queues ------------------------------------------------------

CHANGED, REMOVED, SUBTREE = (_invalidations.CHANGED, _invalidations.REMOVED,
                             _invalidations.SUBTREE)


def test_hub_delivers_to_every_subscriber_in_order_and_drops_without():
    hub = _invalidations.InvalidationHub()
    hub.publish(CHANGED, "/before")  # nobody listens: dropped
    first, second = hub.subscribe(), hub.subscribe()
    hub.publish(CHANGED, "/a")
    hub.publish(REMOVED, "/b")
    hub.publish(SUBTREE, "/c")
    for sub in (first, second):
        assert sub.take(1) == [(CHANGED, "/a"), (REMOVED, "/b"),
                               (SUBTREE, "/c")]
    start = time.monotonic()
    assert first.take(0.02) == []  # times out empty
    assert time.monotonic() - start >= 0.015


def test_overflow_collapses_to_a_subtree_notice_for_the_root():
    hub = _invalidations.InvalidationHub()
    small = hub.subscribe(max_queued=3)
    large = hub.subscribe()
    for i in range(3):
        hub.publish(CHANGED, "/%d" % i)
    assert small.take(0) == [(CHANGED, "/0"), (CHANGED, "/1"),
                             (CHANGED, "/2")]
    for i in range(10):
        hub.publish(CHANGED, "/%d" % i)
    assert small.take(0) == [(SUBTREE, "/")]
    # Once the collapsed queue was taken, notices queue normally again.
    hub.publish(REMOVED, "/x")
    assert small.take(0) == [(REMOVED, "/x")]
    # The other subscriber's queue was not touched.
    assert len(large.take(0)) == 14


def test_close_wakes_a_waiting_take_and_unsubscribes():
    hub = _invalidations.InvalidationHub()
    sub = hub.subscribe()
    hub.publish(CHANGED, "/dropped")
    closer = threading.Timer(0.05, sub.close)
    closer.start()
    assert sub.take(0) == [(CHANGED, "/dropped")]
    start = time.monotonic()
    assert sub.take(10) is None
    assert time.monotonic() - start < 5
    closer.join()
    assert hub.subscription_count() == 0
    hub.publish(CHANGED, "/after")
    assert sub.take(0) is None


def test_notify_methods_check_their_paths():
    ops = fuse.Operations()
    ops.notify_changed("/ok")
    ops.notify_removed(b"/bytes")
    ops.notify_subtree_changed(os.fsdecode(b"/caf\xe9"))
    for bad in ("relative", "", b"rel", "/a\0b"):
        with pytest.raises(ValueError):
            ops.notify_changed(bad)
    with pytest.raises(TypeError):
        ops.notify_removed(42)
    # Each object has its own notices.
    assert _invalidations.hub_of(ops) is _invalidations.hub_of(ops)
    assert _invalidations.hub_of(ops) is not \
        _invalidations.hub_of(fuse.Operations())


def test_init_reply_carries_default_ttl():
    class Ttl(fuse.Operations):
        default_ttl = 60

    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == \
        60000
    Ttl.default_ttl = 0.0001  # never 0, which would mean the daemon's
    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == 1
    Ttl.default_ttl = float("inf")
    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == \
        (1 << 32) - 1
    assert servicer(fuse.Operations()).Init(
        pb.InitRequest(), None).default_ttl_ms == 0
    for bad in ("60", -1, float("nan"), True):
        Ttl.default_ttl = bad
        with pytest.raises(ValueError):
            servicer(Ttl())


def test_worker_pool_grows_for_long_calls():
    from fusehost._workers import Workers
    pool = Workers(1, "test")
    second_ran = threading.Event()

    def stream():
        with pool.long_call():
            # With the pool's only thread here, another call still runs.
            return second_ran.wait(10)

    first = pool.submit(stream)
    second = pool.submit(second_ran.set)
    assert first.result(20) is True
    second.result(1)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(print)


# --- invalidations: the stream over gRPC ----------------------------------------------

@pytest.fixture
def grpc_backend():
    """Serves a filesystem on a Unix socket with one operation thread (so
    the pool has 3 threads for calls); yields (fs, servicer, server, stub).
    """
    class Fs(fuse.Operations):
        use_ns = True

    fs = Fs()
    s = servicer(fs, threads=1)
    d = tempfile.mkdtemp(prefix="fusehost-test-")
    address = "unix:" + os.path.join(d, "backend.sock")
    server = _server.start_server(s, address)
    channel = grpc.insecure_channel(address)
    try:
        yield fs, s, server, pb_grpc.FileSystemStub(channel)
    finally:
        channel.close()
        _server.stop_server(server, s, grace=0)
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


def open_streams(stub, fs, n):
    # The deadline keeps a missing notice from hanging the test.
    streams = [stub.Invalidations(pb.InvalidationsRequest(mount_id=i),
                                  timeout=20)
               for i in range(n)]
    for st in streams:
        st.initial_metadata()  # sent as soon as the stream is subscribed
    assert _invalidations.hub_of(fs).subscription_count() == n
    return streams


def read_notices(stream, n):
    return [(x.kind, x.path) for x in (next(stream) for _ in range(n))]


def test_every_stream_gets_notices_in_order(grpc_backend):
    fs, _, _, stub = grpc_backend
    fs.notify_changed("/dropped")  # no stream yet
    first, second = open_streams(stub, fs, 2)
    fs.notify_changed("/a")
    fs.notify_removed(b"/b")
    fs.notify_subtree_changed(os.fsdecode(b"/caf\xe9"))
    for i in range(500):  # a burst keeps its order
        fs.notify_changed("/f%d" % i)
    expected = [(CHANGED, b"/a"), (REMOVED, b"/b"), (SUBTREE, b"/caf\xe9")] + \
        [(CHANGED, b"/f%d" % i) for i in range(500)]
    assert read_notices(first, 503) == expected
    assert read_notices(second, 503) == expected
    # A stream the daemon gave up no longer gets notices; the other does.
    first.cancel()
    assert wait_until(
        lambda: _invalidations.hub_of(fs).subscription_count() == 1, 5)
    fs.notify_changed("/z")
    assert read_notices(second, 1) == [(CHANGED, b"/z")]


def test_streams_do_not_take_threads_from_operations(grpc_backend):
    fs, _, _, stub = grpc_backend
    # More streams than the pool's 3 threads: all open at once, and
    # operations still run.
    streams = open_streams(stub, fs, 6)
    batch = pb.Batch(mount_id=1, ops=[
        pb.Op(id=i, getattr=pb.GetattrRequest(path=b"/")) for i in range(3)])
    for _ in range(3):
        reply = stub.Execute(batch, timeout=5)
        assert [r.getattr.attr.mode for r in reply.results] == \
            [stat.S_IFDIR | 0o755] * 3
    fs.notify_changed("/x")
    for st in streams:
        assert read_notices(st, 1) == [(CHANGED, b"/x")]


def test_stopping_the_server_ends_streams_at_once(grpc_backend):
    fs, s, server, stub = grpc_backend
    streams = open_streams(stub, fs, 2)
    start = time.monotonic()
    _server.stop_server(server, s, grace=10)
    assert time.monotonic() - start < 2
    for st in streams:
        with pytest.raises(grpc.RpcError) as e:
            next(st)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _invalidations.hub_of(fs).subscription_count() == 0


# --- invalidations: through the daemon ------------------------------------------------

def control(path, request):
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(path)
        c.sendall(request.encode() + b"\n")
        answer = c.makefile().readline().strip()
    assert not answer.startswith("error"), (request, answer)
    return answer


def changed_at(ctl, request):
    """Makes the change; returns when its notice went out (monotonic)."""
    return float(control(ctl, request).split()[1])


def within(seconds, since, pred):
    """Polls pred until it holds; asserts that it did within `seconds` of
    `since` (a time.monotonic())."""
    while not pred():
        assert time.monotonic() - since < seconds, \
            "not visible %.0f ms after the notice" % (seconds * 1000)
        time.sleep(0.002)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_notices_reach_the_mount_despite_a_long_ttl(py_mounts):
    mp = py_mounts.mountpoint()
    ctl = py_mounts.path("notify.ctl")
    p = py_mounts.python([os.path.join(HERE, "notifying_fs.py"), mp, ctl],
                         mountpoint=mp, name="notify")
    # The daemon opens the stream once mounted; notices before reach nobody.
    assert wait_until(lambda: control(ctl, "streams") == "1", 10), \
        p.output()
    f, g, h = (os.path.join(mp, n) for n in "fgh")
    assert read(f) == b"one" and os.stat(g).st_size == 6
    assert sorted(os.listdir(mp)) == ["f", "g"]
    assert not os.path.exists(h)

    # Without a notice the old attributes stay, beyond the daemon's 1 s
    # default: default_ttl (60 s) reached the daemon and the kernel.
    control(ctl, "quiet /f four")
    time.sleep(1.5)
    assert os.stat(f).st_size == 3

    sent = changed_at(ctl, "set /f changed")
    within(0.1, sent, lambda: os.stat(f).st_size == 7)
    assert read(f) == b"changed"

    sent = changed_at(ctl, "remove /g")
    within(0.1, sent, lambda: not os.path.exists(g))
    with pytest.raises(FileNotFoundError):
        os.stat(g)

    # A new name: its absence and the root's listing were cached.
    sent = changed_at(ctl, "set /h new")
    within(0.1, sent, lambda: os.path.exists(h))
    assert sorted(os.listdir(mp)) == ["f", "h"]
    assert read(h) == b"new"

    # Unmounting ends the stream and FUSE() returns.
    py_mounts.daemon.unmount(mp).check()
    assert p.wait(20) == 0, p.output()
