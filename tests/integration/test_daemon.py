"""The daemon's own behaviour: the control CLI, mount options, errors and
unmounting. Its caching is checked in test_daemon_caching.py, what happens
when a backend or the daemon goes away in test_daemon_failures.py."""

import os
import signal

import pytest

import fhlib
from fhlib import is_mounted, mount_entry, run_cmd, wait_until

pytestmark = pytest.mark.usefixtures("needs_daemon")


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


IOCTL_CALLS = r"""
import errno, fcntl, os, struct, sys
mnt = sys.argv[1]
ADD_ONE = (3 << 30) | (4 << 16) | (ord("M") << 8) | 1    # _IOWR('M', 1, u32)
UNKNOWN = (3 << 30) | (4 << 16) | (ord("M") << 8) | 9
with open(os.path.join(mnt, "f"), "wb") as f:
    f.write(b"x")
out = []
for path in ("f", "."):
    fd = os.open(os.path.join(mnt, path), os.O_RDONLY)
    try:
        out.append(struct.unpack("I", fcntl.ioctl(fd, ADD_ONE,
                                                  struct.pack("I", 41)))[0])
        try:
            fcntl.ioctl(fd, UNKNOWN, struct.pack("I", 0))
            out.append("answered")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    finally:
        os.close(fd)
print(out)
"""


def test_the_memory_example_answers_its_ioctl(mounts):
    # The C++ SDK's Ioctl through a real mount: the memory example adds one
    # to the number it is given (as mfusepy's memory example does), on a
    # file and on a directory, and knows no other command.
    m = mounts.mount("memory", options="allow_other")
    res = run_cmd(["/usr/bin/python3", "-c", IOCTL_CALLS, m.path]).check()
    assert res.stdout.strip() == "[42, 'ENOTTY', 42, 'ENOTTY']", res


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
