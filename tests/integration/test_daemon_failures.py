"""What happens when a backend or the daemon goes away: operations wait for
a backend that is away no longer than the mount's timeout, then fail rather
than hang; a restarted backend recovers the mount (test_backend_restart.py:
with its open files), and the daemon unmounts everything when stopped."""

import signal
import time

import pytest

import fhlib
from fhlib import is_mounted, mount_entry, run_cmd

pytestmark = pytest.mark.usefixtures("needs_daemon")

DEAD = ("ENOTCONN", "EIO")


# --- backends going away -----------------------------------------------------

def test_backend_killed_fails_within_the_timeout_then_restart_recovers(mounts):
    m = mounts.mount("memory", options="allow_other,timeout=2")
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
    m = mounts.mount("loopback", options="allow_other,timeout=2")
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


# --- the daemon going away ---------------------------------------------------

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
