"""Write-behind when the backend fails it: a change the backend refuses
comes back at the next fsync (also of a listed directory, also from a
backend without fsync), is counted and logged, and the daemon forgets its
early answer; a backend killed with a change queued leaves a consistent
state; an unmount sends what is queued first (write_behind_lib.py has what
the write-behind tests share)."""

import os
import signal
import stat
import threading
import time

import pytest

import fhlib
from fhlib import is_mounted
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from restart_lib import kill_backend, stop_backend
from write_behind_lib import (OPTIONS, write_behind_stats, cached, fsync, perm,
                              refusing_mount, refusal_reported)


pytestmark = pytest.mark.usefixtures("needs_daemon")


def test_a_refused_change_is_reported_by_the_next_fsync(py_mounts):  # noqa: F811
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("write_file", "refuse-me", b"x", 0o644),
            ("write_file", "other", b"y", 0o644),
            ("stat", "refuse-me"), ("stat", "other")])
    cached(ops, m, "refuse-me", "other")
    before = write_behind_stats(m)
    # Answered early: 0, before the backend has seen it.
    assert ops.one(("chmod", "refuse-me", 0o600)) is True
    assert write_behind_stats(m).early == before.early + 1
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r[0] is True, r
    assert r[1] == "EACCES", r
    assert r[2] is True, r
    # The daemon forgot its early answer: the backend's mode is back.
    assert ops.one(("stat", "refuse-me"))["perm"] == 0o644
    wb = write_behind_stats(m)
    assert wb.refused == 1 and wb.queued == 0, wb
    log = fhlib.tail(m.daemon.log, py_mounts.daemon_log_start, 200000)
    assert "write-behind: chmod of /refuse-me failed at the backend" in log, \
        log
    # Other changes of that mount are not refused.
    assert ops.one(("chmod", "other", 0o640)) is True
    assert fsync(ops, "other") is True
    assert ops.one(("stat", "other"))["perm"] == 0o640
    assert write_behind_stats(m).refused == 1


def test_a_refused_change_is_reported_by_fsync_of_a_listed_directory(
        py_mounts):  # noqa: F811
    """fsyncdir waits for the queue and reports its errors too, also on a
    directory the daemon opens from its own cached listing."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("mkdir", "y", 0o755),
            ("write_file", "d/refuse-this", b"x"), ("write_file", "y/z", b"z"),
            ("stat", "d/refuse-this"), ("listdir", "."), ("listdir", "d"),
            ("listdir", "y")])
    cached(ops, m, "d/refuse-this")
    assert ops.one(("chmod", "d/refuse-this", 0o600)) is True
    assert fsync(ops, "y", directory=True) == "EACCES"
    assert fsync(ops, "y", directory=True) is True
    assert fsync(ops, "y/z") is True
    assert ops.one(("stat", "d/refuse-this"))["perm"] == 0o644
    assert write_behind_stats(m).refused == 1


def test_a_refused_rmdir_is_reported_by_the_next_fsync(
        py_mounts):  # noqa: F811
    """An rmdir answered early (the daemon made the directory and knows it
    is empty) that the backend refuses (ENOTEMPTY: as if another client had
    made a name in it) is reported by the next fsync, and the directory
    shows through the mount again."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "refuse-d", 0o755), ("mkdir", "plain", 0o755),
            ("write_file", "other", b"o", 0o644), ("stat", "refuse-d"),
            ("stat", "plain"), ("stat", "."), ("listdir", ".")])
    before = write_behind_stats(m)
    # Both answered early: 0, before the backend has seen them. The one
    # the backend refuses goes last: its refusal makes the daemon forget
    # the root's attributes, and an rmdir after that would wait for the
    # backend.
    assert ops.run([("rmdir", "plain"), ("rmdir", "refuse-d")]) == \
        [True, True]
    assert write_behind_stats(m).early == before.early + 2
    refusal_reported(py_mounts, m, ops, before, "ENOTEMPTY",
                     "write-behind: rmdir of /refuse-d failed at the backend")
    # The daemon and the kernel forgot the early answer.
    r = ops.run([("stat", "refuse-d"), ("stat", "plain"), ("listdir", ".")])
    assert stat.S_ISDIR(r[0]["mode"]), r
    assert r[1] == "ENOENT", r
    assert sorted(r[2]) == ["other", "refuse-d"], r


def test_a_refused_change_is_reported_by_a_backend_without_fsync(
        py_mounts):  # noqa: F811
    """A backend that implements no fsync (the SDK answers ENOSYS, which
    the kernel takes for success, asking no more) still gets its refusal
    reported: fsync returns the error rather than 0."""
    m = refusing_mount(py_mounts, "--without-fsync")
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("write_file", "refuse-me", b"x", 0o644),
            ("write_file", "other", b"y", 0o644), ("stat", "refuse-me")])
    cached(ops, m, "refuse-me")
    assert ops.one(("chmod", "refuse-me", 0o600)) is True
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r[0] is True and r[3] is True, r
    assert r[1] == "EACCES", r
    assert r[2] is True, r
    assert ops.one(("stat", "refuse-me"))["perm"] == 0o644
    assert write_behind_stats(m).refused == 1


# --- 6. a backend killed with a change queued ---------------------------------------------

def test_a_backend_killed_with_a_change_queued(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    f = os.path.join(m.path, "f")
    ops.ok([("write_file", f, b"data", 0o644), ("stat", f)])
    cached(ops, m, f)
    before = write_behind_stats(m)
    stop_backend(m)
    try:
        # Answered early: it does not wait for the stopped backend.
        assert ops.run([("chmod", f, 0o600)], timeout=20) == [True]
        wb = write_behind_stats(m)
        assert wb.early == before.early + 1 and wb.queued >= 1, wb
    finally:
        kill_backend(m)
    m.backend.start()

    synced = fsync(ops, f)
    backing = perm(os.path.join(m.backing, "f"))
    seen = ops.one(("stat", f))["perm"]
    if synced is True:
        # Sent again to the new backend, and applied.
        assert backing == 0o600 and seen == 0o600, (backing, seen)
        assert write_behind_stats(m).refused == 0
    else:
        # Lost with the connection, and reported: the mount shows what the
        # backend holds.
        assert isinstance(synced, fhlib.Err), synced
        assert seen == backing, (synced, seen, backing)
        assert write_behind_stats(m).refused == 1
        assert fsync(ops, f) is True
    assert write_behind_stats(m).queued == 0

    # The mount goes on working.
    g = os.path.join(m.path, "g")
    r = ops.run([("write_file", g, b"after the restart"), ("read_file", g),
                 ("chmod", g, 0o640), ("stat", g)])
    assert r[:3] == [True, b"after the restart", True], r
    assert r[3]["perm"] == 0o640, r
    assert fsync(ops, g) is True
    with open(os.path.join(m.backing, "g"), "rb") as fh:
        assert fh.read() == b"after the restart"
    assert perm(os.path.join(m.backing, "g")) == 0o640


def test_an_unmount_sends_the_queued_changes_first(mounts):
    # The backend is stopped while three chmods are answered early: they
    # wait in the daemon. An unmount must send them before it lets go of
    # the backend, not drop them (a program that chmods and unmounts would
    # otherwise lose its changes without a word).
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    names = ["f1", "f2", "f3"]
    paths = [os.path.join(m.path, n) for n in names]
    ops.ok([("write_file", p, b"data", 0o644) for p in paths])
    cached(ops, m, *paths)
    stop_backend(m)
    resumed = False
    try:
        assert ops.run([("chmod", p, 0o600) for p in paths],
                       timeout=20) == [True] * 3
        assert write_behind_stats(m).queued == 3
        unmount = threading.Thread(
            target=lambda: m.daemon.unmount(m.path, timeout=60))
        unmount.start()
        time.sleep(1)  # the unmount is waiting for the stopped backend
        m.backend.signal(signal.SIGCONT)
        resumed = True
        unmount.join(60)
        assert not unmount.is_alive()
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
    assert fhlib.wait_until(lambda: not is_mounted(m.path), 20)
    assert [perm(os.path.join(m.backing, n)) for n in names] == [0o600] * 3
