"""The daemon's own behaviour: the control CLI, mount options, errors,
unmounting, and what happens when a backend or the daemon goes away."""

import os
import signal
import time

import pytest

import fhlib
from fhlib import is_mounted, mount_entry, run_cmd, wait_until

pytestmark = pytest.mark.usefixtures("needs_daemon")

DEAD = ("ENOTCONN", "EIO")


def one_line_error(res):
    """fuse-hostctl's error contract: non-zero exit, one line on stderr."""
    assert res.returncode != 0, res
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one error line: %r" % (res,)
    return lines[0]


# --- list / mount / unmount ---------------------------------------------------------

def test_list_shows_mount_and_unmount_removes_it(mounts):
    m = mounts.mount("memory", options="allow_other")
    res = m.daemon.list().check()
    lines = [l for l in res.stdout.splitlines() if m.path in l.split()]
    assert len(lines) == 1, res
    fields = lines[0].split()
    assert fields[0] == m.path
    assert fields[1] == m.backend.addr
    assert "allow_other" in lines[0]
    assert "mounted" in fields
    entry = mount_entry(m.path)
    assert entry[2] == "fuse.hostd", entry
    assert entry[0] == m.backend.addr, entry   # default source: the backend
    opts = entry[3].split(",")
    assert "allow_other" in opts and "default_permissions" in opts, entry
    assert "nosuid" in opts and "nodev" in opts, entry
    assert "user_id=0" in opts and "group_id=0" in opts, entry

    m.daemon.unmount(m.path).check()
    assert not is_mounted(m.path)
    res = m.daemon.list().check()
    assert m.path not in res.stdout
    # The directory is an ordinary empty directory again.
    assert os.listdir(m.path) == []
    # And it can be mounted again.
    r = m.daemon.mount(m.backend.addr, m.path, "allow_other")
    assert r.returncode == 0, r
    assert is_mounted(m.path)
    ops = mounts.ops(cwd=m.path)
    assert ops.ok([("write_file", "f", b"x"), ("read_file", "f")])[1] == b"x"


def test_two_mounts_of_one_backend_and_listing(mounts):
    b = mounts.backend("memory")
    m1 = mounts.mount(backend=b)
    m2 = mounts.mount(backend=b)
    ops = mounts.ops()
    ops.ok([("write_file", m1.path + "/shared", b"both")])
    assert ops.one(("read_file", m2.path + "/shared")) == b"both"
    res = mounts.daemon.list().check()
    assert m1.path in res.stdout and m2.path in res.stdout


def test_read_only_mount(mounts):
    root = mounts.mkdir("backing_ro")
    with open(os.path.join(root, "pre"), "wb") as f:
        f.write(b"existing")
    os.mkdir(os.path.join(root, "dir"))
    m = mounts.mount("loopback", options="ro,allow_other", root=root)
    assert "ro" in mount_entry(m.path)[3].split(",")
    r = mounts.ops(cwd=m.path).run([
        ("read_file", "pre"),
        ("write_file", "new", b"x"),
        ("open", "pre", ["O_WRONLY"]),
        ("open", "pre", ["O_RDWR"]),
        ("mkdir", "d2", 0o755),
        ("unlink", "pre"),
        ("rmdir", "dir"),
        ("rename", "pre", "p2"),
        ("chmod", "pre", 0o600),
        ("truncate", "pre", 0),
        ("setxattr", "pre", "user.x", b"1"),
        ("symlink", "pre", "l"),
        ("utimensat", "pre", "NOW", "NOW"),
        ("statvfs", "."),
        ("listdir", "."),
    ])
    assert r[0] == b"existing"
    for i in range(1, 13):
        assert r[i] == "EROFS", (i, r[i])
    assert r[13]["flag"] & os.ST_RDONLY
    assert r[14] == ["dir", "pre"]
    for name in ("new", "d2", "l", "p2"):
        assert not os.path.lexists(os.path.join(root, name))
    for user in (mounts.users.a,):
        r = mounts.ops(user, m.path).run([("write_file", "u", b"x")])
        assert r[0] in ("EROFS", "EACCES")


def test_fsname_and_subtype(mounts):
    m = mounts.mount("memory", options="allow_other,fsname=itest_source")
    entry = mount_entry(m.path)
    assert entry[0] == "itest_source" and entry[2] == "fuse.hostd", entry
    m2 = mounts.mount("memory", options="allow_other,subtype=itestfs,"
                      "fsname=other_name")
    entry = mount_entry(m2.path)
    assert entry[0] == "other_name" and entry[2] == "fuse.itestfs", entry
    res = run_cmd(["findmnt", "-n", "-o", "SOURCE,FSTYPE", m.path],
                  timeout=10).check()
    assert res.stdout.split() == ["itest_source", "fuse.hostd"]


def test_without_allow_other_other_users_are_refused(mounts, users):
    m = mounts.mount("memory", options="")
    root = mounts.ops(cwd=m.path)
    root.ok([("write_file", "f", b"x"), ("chmod", "f", 0o644),
             ("chmod", ".", 0o755)])
    assert "allow_other" not in mount_entry(m.path)[3].split(",")
    r = mounts.ops(users.a).run([
        ("stat", m.path),
        ("listdir", m.path),
        ("read_file", m.path + "/f"),
    ])
    for x in r:
        assert x in ("EACCES", "EPERM"), r
    res = run_cmd(["ls", m.path], user=users.a, timeout=30)
    assert res.returncode != 0
    # Root (the mount's owner) still gets in.
    assert root.one(("read_file", "f")) == b"x"


def test_timeouts_and_permissions_options_accepted(mounts, users):
    m = mounts.mount("memory", options="allow_other,attr_timeout=0,"
                     "entry_timeout=0,negative_timeout=0,timeout=5,"
                     "no_default_permissions")
    opts = mount_entry(m.path)[3].split(",")
    assert "default_permissions" not in opts, opts
    ops = mounts.ops(cwd=m.path)
    r = ops.run([("write_file", "f", b"x"), ("stat", "f"),
                 ("stat", "nothing")])
    assert r[0] is True and r[1]["size"] == 1 and r[2] == "ENOENT"


def test_zero_timeouts_see_backing_changes_at_once(mounts):
    """With attr/entry/negative timeouts 0 the kernel asks every time, so a
    change made behind the daemon's back (in the loopback's directory) shows
    through the mount at once."""
    m = mounts.mount("loopback", options="allow_other,attr_timeout=0,"
                     "entry_timeout=0,negative_timeout=0")
    ops = mounts.ops(cwd=m.path)
    back = os.path.join(m.backing, "x")
    assert ops.one(("stat", "x")) == "ENOENT"
    with open(back, "wb") as f:
        f.write(b"12345")
    st = ops.one(("stat", "x"))
    assert isinstance(st, dict) and st["size"] == 5, st
    with open(back, "ab") as f:
        f.write(b"678")
    assert ops.one(("stat", "x"))["size"] == 8
    assert ops.one(("read_file", "x")) == b"12345678"
    os.unlink(back)
    assert ops.one(("stat", "x")) == "ENOENT"
    os.mkdir(back)
    assert ops.one(("stat", "x"))["type"] == 0o040000


def test_default_timeouts_see_backing_changes_soon(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    back = os.path.join(m.backing, "y")
    with open(back, "wb") as f:
        f.write(b"1")
    assert ops.one(("stat", "y"))["size"] == 1
    with open(back, "ab") as f:
        f.write(b"2345")
    # Attributes are trusted for attr_timeout (1 s by default), no longer.
    assert wait_until(lambda: ops.one(("stat", "y"))["size"] == 5, 5, 0.3)
    os.unlink(back)
    assert wait_until(lambda: ops.one(("stat", "y")) == "ENOENT", 5, 0.3)


def backend_ops(m):
    """How many ops the daemon has sent to the backend of mount `m`."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    for line in out.splitlines():
        f = line.split()
        if f[:1] == ["backend"]:
            return int(f[3])
    raise AssertionError("no backend line in stats:\n" + out)


def kernel_requests(m, op):
    """How many `op` requests the kernel has sent for mount `m`."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    for line in out.splitlines():
        f = line.split()
        if f[:1] == [op] and len(f) >= 2 and f[1].isdigit():
            return int(f[1])
    return 0


@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_read_only_close_sends_no_flush(mounts, kind):
    """Both examples mark read-only opens noflush, so close(2) of them costs
    no FLUSH round trip. Writable opens too, on memory and on a loopback of
    a local filesystem; a loopback of NFS, say, still flushes on close,
    where its flush reports write-back errors."""
    m = mounts.mount(kind)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"data")])
    flushes = kernel_requests(m, "flush")
    for _ in range(5):
        assert ops.one(("read_file", "f")) == b"data"
    assert kernel_requests(m, "flush") == flushes
    ops.ok([("append_file", "f", b"+")])
    assert ops.one(("read_file", "f")) == b"data+"
    local = kind == "memory" or run_cmd(
        ["stat", "-f", "-c", "%T", m.backing]).check().stdout.strip() in (
            "tmpfs", "ext2/ext3", "xfs", "btrfs")
    assert (kernel_requests(m, "flush") == flushes) == local


@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_making_files_costs_one_round_trip_each(mounts, kind):
    """Creating a file and writing it, as tar does, asks the backend for the
    create and the write only (the release goes in the background). The
    replies carry the attributes the kernel asks for next (the directory's,
    before the next create in it; the file's, after the write), so none of
    those GETATTRs reaches the backend."""
    # create + write + release per file
    sent = backend_ops_making_files(mounts, kind, 40)
    assert sent <= 3 * 40 + 2, sent


def backend_ops_making_files(mounts, kind, count):
    """Backend ops it takes to make `count` files of 100 bytes in a new,
    listed directory of a fresh `kind` mount (and stat them)."""
    m = mounts.mount(kind)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("listdir", "d")])
    before = backend_ops(m)
    ops.ok([("write_files", "d/f", count, 100)])
    got = ops.run([("stat", "d"), ("stat", "d/f%d" % (count - 1))])
    assert got[0]["nlink"] == 2 and got[1]["size"] == 100, got
    return backend_ops(m) - before


def test_small_files_come_with_their_open(mounts):
    """loopback sends a small file whole with its read-only open; the
    kernel's first read is answered from it (no backend round trip), and
    nothing later is: reads after the file changed see the change."""
    m = mounts.mount("loopback")
    back = os.path.join(m.backing, "small")
    with open(back, "wb") as f:
        f.write(b"first")
    ops = mounts.ops(cwd=m.path)
    assert ops.one(("stat", "small"))["size"] == 5
    before = backend_ops(m)
    assert ops.one(("read_file", "small")) == b"first"
    time.sleep(0.2)  # the release goes in the background
    assert backend_ops(m) - before == 2  # open and release: no read
    # A reader that stays open, like tail -f, sees what is appended.
    r = ops.run([("open", "small", ["O_RDONLY"]), ("read", "small", 100),
                 ("append_file", "small", b"+more"),
                 ("pread", "small", 100, 0), ("close", "small")])
    assert r[1] == b"first" and r[3] == b"first+more", r
    # Written through another handle between open and first read.
    r = ops.run([("open", "small", ["O_RDONLY"], 0o644, "r"),
                 ("open", "small", ["O_WRONLY", "O_TRUNC"], 0o644, "w"),
                 ("write", "w", b"new"), ("close", "w"),
                 ("read", "r", 100), ("close", "r")])
    assert r[4] == b"new", r


def test_listing_with_attributes_spares_lookups(mounts):
    """Every chunk of a listing comes with attributes (not only the first,
    as in the kernel's "auto" mode), so find needs no LOOKUP per name."""
    m = mounts.mount("loopback")
    # The loopback's watcher announces every file made below, and each
    # notice makes the kernel forget the name: one arriving after the
    # listing costs a LOOKUP. Notices come in the order of the changes, so
    # once a name made last shows (it was absent, and absence is cached
    # until its notice), the earlier ones have all been applied.
    marker = os.path.join(m.path, "many-made")
    assert not os.path.exists(marker)
    os.mkdir(os.path.join(m.backing, "many"))
    for i in range(400):  # far more than one 4 KiB readdir chunk
        open(os.path.join(m.backing, "many", "file-%03d" % i), "w").close()
    open(os.path.join(m.backing, "many-made"), "w").close()
    assert wait_until(lambda: os.path.exists(marker), 10, 0.02)
    before = kernel_requests(m, "lookup")
    res = run_cmd(["find", os.path.join(m.path, "many"), "-printf",
                   "%s\n"]).check()
    assert len(res.stdout.splitlines()) == 401
    assert kernel_requests(m, "lookup") - before <= 2


@pytest.mark.parametrize("read_ahead_kb", [None, 0])
def test_read_ahead_window(mounts, read_ahead_kb):
    """The daemon widens the kernel's read-ahead window once the mount is
    up (1 MiB unless read_ahead_kb= says otherwise; 0 keeps the kernel's), so
    a sequential read arrives in large requests: fewer round trips."""
    options = "allow_other"
    if read_ahead_kb is not None:
        options += ",read_ahead_kb=%d" % read_ahead_kb
    m = mounts.mount("loopback", options=options)
    with open(os.path.join(m.backing, "big"), "wb") as f:
        f.write(os.urandom(8 << 20))
    ops = mounts.ops(cwd=m.path)
    assert ops.one(("stat", "big"))["size"] == 8 << 20
    dev = os.stat(m.path).st_dev
    with open("/sys/class/bdi/%d:%d/read_ahead_kb" %
              (os.major(dev), os.minor(dev))) as f:
        window = int(f.read())
    assert window == (1024 if read_ahead_kb is None else 128), window
    before = kernel_requests(m, "read")
    data = ops.one(("read_file", "big"))
    assert len(data) == 8 << 20
    reads = kernel_requests(m, "read") - before
    # 8 MiB in requests of the window's size, give or take the start.
    if read_ahead_kb is None:
        assert reads <= 12, reads
    else:
        assert reads >= 60, reads


def test_own_changes_keep_the_cache(mounts):
    """inotify reports changes made through the mount like any other; the
    loopback recognises its own and does not announce them, so what the
    daemon and the kernel cached from those changes stays cached. Changes
    made behind the mount are still announced."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("listdir", "d")])  # listing cached
    script = []
    for i in range(20):
        script += [("write_file", "d/f%d" % i, b"x" * i),
                   ("chmod", "d/f%d" % i, 0o600)]
    script += [("rename", "d/f0", "d/g0"), ("unlink", "d/f1")]
    ops.ok(script)
    time.sleep(0.5)  # the watcher's events for all of it have been handled
    assert len(ops.one(("listdir", "d"))) == 19

    def asked():
        return (backend_ops(m), kernel_requests(m, "lookup"),
                kernel_requests(m, "getattr"))
    before = asked()
    r = ops.run([("stat", "d/f%d" % i) for i in range(2, 20)])
    assert [x["mode"] & 0o777 for x in r] == [0o600] * 18, r
    # Not even the kernel asks: nothing told it to forget.
    assert asked() == before
    with open(os.path.join(m.backing, "d", "f5"), "ab") as f:
        f.write(b"outside")
    assert wait_until(
        lambda: ops.one(("stat", "d/f5"))["size"] == 12, 5, 0.02)


def test_xattr_names_come_with_listings(mounts):
    """loopback lists each entry's xattr names in readdir, so getxattr of
    a name a file lacks (ls -l asks every file for its ACL) and listxattr
    are answered without a backend round trip; a change made behind the
    mount or through it is seen at once."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    for name in ("plain", "tagged"):
        with open(os.path.join(m.backing, name), "wb") as f:
            f.write(b"x")
    os.setxattr(os.path.join(m.backing, "tagged"), "user.k", b"v")
    assert sorted(ops.one(("listdir", "."))) == ["plain", "tagged"]

    before = backend_ops(m)
    r = ops.run([("getxattr", "plain", "system.posix_acl_access"),
                 ("getxattr", "plain", "user.k"),
                 ("listxattr", "plain"),
                 ("getxattr", "tagged", "system.posix_acl_access"),
                 ("listxattr", "tagged")])
    assert r == ["ENODATA", "ENODATA", [], "ENODATA", ["user.k"]], r
    assert backend_ops(m) == before
    assert ops.one(("getxattr", "tagged", "user.k")) == b"v"
    ls = run_cmd(["ls", "-l", m.path]).check()
    assert "plain" in ls.stdout and "tagged" in ls.stdout

    # Behind the mount: inotify tells the daemon.
    os.setxattr(os.path.join(m.backing, "plain"), "user.new", b"1")
    assert wait_until(
        lambda: ops.one(("getxattr", "plain", "user.new")) == b"1", 5, 0.02)
    assert ops.one(("listxattr", "plain")) == ["user.new"]
    os.removexattr(os.path.join(m.backing, "tagged"), "user.k")
    assert wait_until(
        lambda: ops.one(("listxattr", "tagged")) == [], 5, 0.02)
    # Through the mount.
    ops.ok([("setxattr", "tagged", "user.m", b"2")])
    assert ops.run([("getxattr", "tagged", "user.m"),
                    ("listxattr", "tagged")]) == [b"2", ["user.m"]]
    ops.ok([("removexattr", "plain", "user.new")])
    assert ops.run([("getxattr", "plain", "user.new"),
                    ("listxattr", "plain")]) == ["ENODATA", []]


def test_bad_option_is_refused(mounts):
    b = mounts.backend("memory")
    mp = mounts.mountpoint()
    res = mounts.daemon.mount(b.addr, mp, "attr_timeout=banana")
    one_line_error(res)
    assert not is_mounted(mp)


# --- errors of fuse-hostctl ---------------------------------------------------------

def test_error_no_daemon(mounts, bins):
    sock = mounts.path("nobody.sock")
    for args in (["list"], ["mount", "unix:/x.sock", mounts.mountpoint()],
                 ["unmount", mounts.dir]):
        res = run_cmd([bins.hostctl, "--control_socket=" + sock] + args,
                      timeout=30)
        line = one_line_error(res)
        assert res.elapsed < 15, res
        assert sock in line or "daemon" in line.lower() or \
            "connect" in line.lower(), line


def test_error_backend_unreachable(mounts):
    mp = mounts.mountpoint()
    dead = mounts.path("nothing_listens.sock")
    res = mounts.daemon.mount("unix:" + dead, mp, "allow_other", timeout=60)
    one_line_error(res)
    assert res.elapsed < 30, res
    assert not is_mounted(mp)
    # A socket file with nobody listening behind it.
    import socket
    s = socket.socket(socket.AF_UNIX)
    stale = mounts.path("stale.sock")
    s.bind(stale)
    s.close()
    res = mounts.daemon.mount("unix:" + stale, mp, "allow_other", timeout=60)
    one_line_error(res)
    assert not is_mounted(mp)
    assert mp not in mounts.daemon.list().check().stdout


def test_error_mountpoint_missing(mounts):
    b = mounts.backend("memory")
    missing = mounts.path("does_not_exist")
    line = one_line_error(mounts.daemon.mount(b.addr, missing, "allow_other"))
    assert "does_not_exist" in line or "exist" in line.lower() or \
        "no such" in line.lower(), line
    f = mounts.path("a_file")
    open(f, "w").close()
    one_line_error(mounts.daemon.mount(b.addr, f, "allow_other"))
    assert not is_mounted(f)


def test_error_already_mounted(mounts):
    m = mounts.mount("memory")
    b2 = mounts.backend("memory")
    line = one_line_error(mounts.daemon.mount(b2.addr, m.path, "allow_other"))
    assert "already" in line.lower() or "exists" in line.lower(), line
    # The first mount is untouched.
    assert mounts.ops(cwd=m.path).ok([("write_file", "f", b"1"),
                                      ("read_file", "f")])[1] == b"1"
    entries = [e for e in fhlib.proc_mounts() if e[1] == m.path]
    assert len(entries) == 1


def test_error_unmount_not_a_mount(mounts):
    d = mounts.mkdir("plain")
    line = one_line_error(mounts.daemon.unmount(d))
    assert "not" in line.lower(), line
    one_line_error(mounts.daemon.unmount(mounts.path("missing")))
    # A mount that is not fuse-hostd's: refused, and left alone.
    t = mounts.mkdir("tmpfs")
    run_cmd(["mount", "-t", "tmpfs", "none", t], timeout=10).check()
    try:
        one_line_error(mounts.daemon.unmount(t))
        assert is_mounted(t)
    finally:
        run_cmd(["umount", t], timeout=10)


# --- busy and lazy unmount --------------------------------------------------------

def test_unmount_busy_then_lazy(mounts):
    m = mounts.mount("memory")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"still here")])
    h = mounts.hold(ops, [
        ("open", m.path + "/f", ["O_RDONLY"], 0, "f"),
        ("sync", "open"),
        ("pread", "f", 100, 0),
        ("close", "f"),
    ])
    h.wait_sync("open")
    res = m.daemon.unmount(m.path)
    line = one_line_error(res)
    assert "busy" in line.lower(), line
    assert is_mounted(m.path)
    m.daemon.unmount(m.path, lazy=True).check()
    assert not is_mounted(m.path)
    # The open file keeps working until it is closed.
    h.release()
    r = h.finish()
    assert r[2] == b"still here" and r[3] is True
    # Then the daemon forgets the mount.
    assert wait_until(lambda: m.path not in m.daemon.list().stdout, 10), \
        m.daemon.list()


def test_unmount_busy_cwd(mounts):
    m = mounts.mount("memory")
    import subprocess
    p = subprocess.Popen(["sleep", "60"], cwd="/", start_new_session=True)
    try:
        # A process whose cwd is in the mount keeps it busy.
        sh = subprocess.Popen(["sh", "-c", 'cd "$1" && echo in && exec sleep 60',
                               "sh", m.path], stdout=subprocess.PIPE,
                              text=True, cwd="/", start_new_session=True)
        try:
            import selectors
            sel = selectors.DefaultSelector()
            sel.register(sh.stdout, selectors.EVENT_READ)
            assert sel.select(20)
            assert sh.stdout.readline().strip() == "in"
            one_line_error(m.daemon.unmount(m.path))
            assert is_mounted(m.path)
        finally:
            os.killpg(sh.pid, signal.SIGKILL)
            sh.wait(timeout=10)
        m.daemon.unmount(m.path).check()
        assert not is_mounted(m.path)
    finally:
        p.kill()
        p.wait()


# --- backends going away -------------------------------------------------------------

def test_backend_killed_fails_fast_then_restart_recovers(mounts):
    m = mounts.mount("memory")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "before", b"x")])
    m.backend.signal(signal.SIGKILL)
    m.backend.proc.wait(timeout=10)

    t0 = time.monotonic()
    r = ops.run([("write_file", "after_kill", b"y")], timeout=30)
    elapsed = time.monotonic() - t0
    assert r[0] in DEAD, r
    assert elapsed < 5, "op took %.1fs with the backend dead" % elapsed
    r = ops.run([("mkdir", "d", 0o755), ("listdir", "."),
                 ("stat", "never_seen")], timeout=30)
    for x in (r[0], r[2]):
        assert x in DEAD, r
    # ls returns (whatever it prints) rather than hanging.
    res = run_cmd(["ls", "-la", m.path], timeout=15)
    assert res.elapsed < 10
    res = run_cmd(["stat", m.path], timeout=15)
    assert res.elapsed < 10
    # The daemon itself is fine and still lists the mount.
    assert m.path in m.daemon.list().check().stdout

    # Same socket, new process: the mount works again (memory_fs starts
    # empty).
    m.backend.start()
    deadline = time.monotonic() + 20
    while True:
        r = ops.run([("write_file", "after_restart", b"z"),
                     ("read_file", "after_restart")], timeout=30)
        if r[0] is True or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r == [True, b"z"], r
    assert "after_restart" in ops.one(("listdir", "."))


def test_backend_killed_with_open_file(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"data")])
    h = mounts.hold(ops, [
        ("open", "f", ["O_RDWR"]),
        ("sync", "open"),
        ("pwrite", "f", b"new", 0),
        ("fsync", "f"),
        ("close", "f"),
    ], cwd=m.path)
    h.wait_sync("open")
    m.backend.signal(signal.SIGKILL)
    m.backend.proc.wait(timeout=10)
    t0 = time.monotonic()
    h.release()
    r = h.finish(timeout=30)
    assert time.monotonic() - t0 < 10
    assert r[3] in DEAD or r[4] in DEAD or r[2] in DEAD, r
    # Unmount still works with the backend gone.
    res = m.daemon.unmount(m.path, timeout=30)
    if res.returncode != 0:
        m.daemon.unmount(m.path, lazy=True, timeout=30).check()
    assert not is_mounted(m.path)


def test_backend_stopped_call_times_out(mounts):
    m = mounts.mount("memory", options="allow_other,timeout=2")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"x")])
    m.backend.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = ops.run([("write_file", "while_stopped", b"y")], timeout=60)
        elapsed = time.monotonic() - t0
        assert isinstance(r[0], fhlib.Err), r
        assert 1.5 <= elapsed <= 10, "failed after %.1fs (timeout=2)" % elapsed
        # The daemon keeps answering its control socket meanwhile.
        assert m.path in m.daemon.list().check().stdout
    finally:
        m.backend.signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while True:
        r = ops.run([("write_file", "after", b"z"), ("read_file", "after")],
                    timeout=30)
        if r[0] is True or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r == [True, b"z"], r


# --- the daemon going away ------------------------------------------------------------

def test_daemon_sigterm_unmounts_everything(mounts):
    d = mounts.new_daemon()
    m1 = mounts.mount("memory", daemon=d)
    m2 = mounts.mount("loopback", daemon=d)
    mounts.ops(cwd=m1.path).ok([("write_file", "f", b"x")])
    code = d.stop(signal.SIGTERM, timeout=10)
    assert code == 0, "fuse-hostd exit code %r:\n%s" % (code,
                                                       fhlib.tail(d.log))
    for m in (m1, m2):
        assert not is_mounted(m.path), mount_entry(m.path)
    left = [e for e in fhlib.proc_mounts()
            if e[2].startswith("fuse") and e[1].startswith(d.workdir)]
    assert not left
    assert not any(e[1] in (m1.path, m2.path) for e in fhlib.proc_mounts())


def test_daemon_sigint_with_busy_mount(mounts):
    """SIGINT (like SIGTERM) unmounts even a busy mount and exits 0."""
    d = mounts.new_daemon()
    m = mounts.mount("memory", daemon=d)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"x")])
    h = mounts.hold(ops, [("open", "f", ["O_RDONLY"]), ("sync", "open"),
                          ("read", "f", 10)], cwd=m.path)
    h.wait_sync("open")
    t0 = time.monotonic()
    code = d.stop(signal.SIGINT, timeout=10)
    assert code == 0, "fuse-hostd exit code %r after %.1fs:\n%s" % (
        code, time.monotonic() - t0, fhlib.tail(d.log))
    assert not is_mounted(m.path)
    # The holder's next op fails rather than hangs.
    h.release()
    r = h.finish(timeout=20)
    assert isinstance(r[2], (bytes, fhlib.Err))


def test_daemon_killed_mount_fails_fast(mounts):
    """SIGKILL leaves no one to answer the kernel: ops must fail (ENOTCONN),
    not hang; a lazy umount then cleans up."""
    d = mounts.new_daemon()
    m = mounts.mount("memory", daemon=d)
    d.proc.kill()
    d.proc.wait(timeout=10)
    r = mounts.ops(cwd=None).run([("stat", m.path + "/x"),
                                  ("write_file", m.path + "/y", b"")],
                                 timeout=20)
    for x in r:
        assert x in DEAD, r
