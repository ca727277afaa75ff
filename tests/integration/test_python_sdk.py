"""The Python SDK's dispatch, without a daemon: Batch messages go straight to
the FileSystem servicer of fusehost, and the replies are checked field by
field (errno mapping, attribute conversion, readdir batching, handles,
caller context, mfusepy calling conventions, FUSE() option mapping).
Invalidations (Operations.notify_*) are checked in
test_python_sdk_notices.py."""

import errno
import logging
import os
import stat
import threading

import pytest

from pyfhlib import import_fusehost
from sdk_dispatch import NS, Files, one, run, servicer

fuse = import_fusehost()
from fusehost._mount import split_options  # noqa: E402
from fusehost._proto import pb  # noqa: E402


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
             hard_remove=True, debug=False, nonempty=False,
             prefetch_contents=16, write_behind=True), "MyFs")
    assert daemon.split(",") == [
        "default_permissions", "allow_other", "ro", "attr_timeout=2.5",
        "max_write=65536", "prefetch_contents=16", "write_behind",
        "fsname=MyFs"]
    assert backend.use_ino and backend.nothreads and backend.direct_io
    assert sorted(ignored) == ["auto_cache", "big_writes"]
    # Without default_permissions libfuse leaves checks to the filesystem.
    daemon, _, _ = split_options({"fsname": "x"}, "MyFs")
    assert daemon == "no_default_permissions,fsname=x"
    assert fuse.parse_options("allow_other,fsname=a=b") == {
        "allow_other": True, "fsname": "a=b"}


def test_mount_options_from_the_environment_are_added_over_fuses(
        monkeypatch):
    """$FUSE_HOSTD_MOUNT_OPTIONS gives a ported program the daemon's
    options without an edit; they take precedence over its FUSE() call's."""
    from fusehost import _mount
    monkeypatch.setenv("FUSE_HOSTD_MOUNT_OPTIONS",
                       "write_behind,default_permissions,fsname=env,threads=3")
    kwargs = _mount.with_environment_options(
        {"fsname": "call", "allow_other": True})
    assert kwargs == {"fsname": "env", "allow_other": True,
                      "write_behind": True, "default_permissions": True,
                      "threads": "3"}
    daemon, backend, ignored = split_options(kwargs, "MyFs")
    assert daemon.split(",") == ["default_permissions", "fsname=env",
                                 "allow_other", "write_behind"]
    assert backend.threads == 3 and not ignored
    monkeypatch.delenv("FUSE_HOSTD_MOUNT_OPTIONS")
    assert _mount.with_environment_options({"ro": True}) == {"ro": True}


def test_fuse_fails_clearly_without_a_daemon(tmp_path):
    with pytest.raises(fuse.FuseHostError) as e:
        fuse.FUSE(fuse.Operations(), str(tmp_path), foreground=True,
                  control_socket=str(tmp_path / "nothing.sock"))
    assert "fuse-hostd is not reachable" in str(e.value)
    assert "nothing.sock" in str(e.value)
