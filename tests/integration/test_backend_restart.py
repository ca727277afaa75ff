"""A backend killed (SIGKILL) and started again on the same socket while
files are open: descriptors keep working (the daemon reopens their files as
the user who opened them), reads lose nothing, a write in flight when the
backend died fails with EIO rather than vanishing, a file unlinked while open
cannot come back, and a backend that stays away past the mount's timeout
costs ENOTCONN. Against the C++ loopback and the Python loopback."""

import errno
import hashlib
import os
import signal
import threading
import time

import pytest

from daemon_stats import passthrough_stats
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from restart_lib import (SDKS, Spawner, backend_receive_queue, kill_backend,
                         loopback_mount, restart_backend, start_backend,
                         stop_backend)

pytestmark = pytest.mark.usefixtures("needs_daemon")

MIB = 1 << 20


@pytest.fixture(params=SDKS)
def sdk(request):
    return request.param


@pytest.fixture
def spawner():
    s = Spawner()
    yield s
    s.close()


def test_reads_through_one_descriptor_survive_restarts(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    data = os.urandom(8 * MIB)
    with open(os.path.join(m.backing, "big"), "wb") as f:
        f.write(data)
    fd = os.open(os.path.join(m.path, "big"), os.O_RDONLY)
    try:
        got = [os.pread(fd, MIB, 0)]
        # Past the read-ahead window, so each part comes from the backend.
        for part in range(2, 8, 2):
            restart_backend(m, spawner)
            got.append(os.pread(fd, 2 * MIB, (part - 1) * MIB))
        got.append(os.pread(fd, 2 * MIB, 7 * MIB))
    finally:
        os.close(fd)
    assert b"".join(got) == data


def test_a_restarted_backend_is_told_of_the_mount(py_mounts, sdk, spawner):
    # The new process gets the mount's Init (its filesystem's init runs,
    # and it learns the mount's passthrough socket): opens after the
    # restart are passed through again, as before it.
    m = loopback_mount(py_mounts, sdk, options="allow_other")
    data = os.urandom(64 * 1024)
    with open(os.path.join(m.backing, "f"), "wb") as f:
        f.write(data)

    def read_through_the_mount():
        with open(os.path.join(m.path, "f"), "rb") as f:
            assert f.read() == data

    read_through_the_mount()
    before = passthrough_stats(m)[0]
    assert before == 1
    restart_backend(m, spawner)
    # The daemon learns of the new run from its first reply, and greets it
    # then; the opens meanwhile are forwarded.
    deadline = time.monotonic() + 10
    while passthrough_stats(m)[0] == before:
        assert time.monotonic() < deadline, (
            "no open was passed through after the restart")
        read_through_the_mount()
    assert passthrough_stats(m)[1] == 0   # no descriptor refused


def test_a_writer_keeps_its_descriptor_across_restarts(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    path = os.path.join(m.path, "log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = hashlib.sha256()
    try:
        for i in range(6):
            chunk = os.urandom(256 * 1024)
            assert os.write(fd, chunk) == len(chunk)
            written.update(chunk)
            os.fsync(fd)
            if i % 2 == 0:
                restart_backend(m, spawner)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(os.path.join(m.backing, "log"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == written.hexdigest()
    # The reopen was O_TRUNC-free: nothing written before a restart was
    # emptied by it (the digest above), and the file was not created anew.


def test_unsynced_writes_before_a_restart_make_the_next_fsync_fail(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    fd = os.open(os.path.join(m.path, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"acknowledged, never synced")
        restart_backend(m, spawner)
        os.write(fd, b"; after")
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        os.fsync(fd)  # reported once; later data is synced as usual
    finally:
        os.close(fd)
    with open(os.path.join(m.backing, "f"), "rb") as f:
        assert f.read() == b"acknowledged, never synced; after"


def test_a_write_in_flight_when_the_backend_dies_fails_with_eio(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    fd = os.open(os.path.join(m.path, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = os.urandom(32 * 1024)

    def write(outcome):
        try:
            # One FUSE write: page-aligned, and within max_write.
            outcome["wrote"] = os.pwrite(fd, chunk, 4096)
        except OSError as e:
            outcome["errno"] = e.errno

    def received():
        return backend_receive_queue(spawner, m.backend.sock)

    try:
        os.write(fd, b"x")
        os.fsync(fd)
        # The write has left the daemon once its data waits, unread, at the
        # stopped backend's socket (an idle backend's socket is empty). The
        # kernel may first ask for the file's security.capability xattr:
        # then that request is what waits, the write is not sent yet, and
        # the backend is let go to try again.
        for _ in range(10):
            outcome = {}
            # A listing tells the daemon which xattrs the file has (none),
            # so that it answers that request itself when it can.
            os.listdir(m.path)
            stop_backend(m)
            writer = threading.Thread(target=write, args=(outcome,))
            writer.start()
            deadline = time.monotonic() + 2
            while received() < 1024 and time.monotonic() < deadline:
                time.sleep(0.01)
            if received() >= 1024:
                break
            m.backend.signal(signal.SIGCONT)
            writer.join(30)
            assert outcome == {"wrote": len(chunk)}, outcome
            os.fsync(fd)  # durable: the restart below does not concern it
        else:
            pytest.fail("no write reached the stopped backend")
        kill_backend(m)
        writer.join(30)
        assert not writer.is_alive()
        assert outcome == {"errno": errno.EIO}, outcome
        start_backend(m, spawner)
        # The descriptor still works; the lost write is the caller's to redo.
        assert os.pwrite(fd, b"y", 1) == 1
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(os.path.join(m.backing, "f"), "rb") as f:
        data = f.read()
    # "x", "y", and what a try before the one that was held wrote, if any.
    assert data in (b"xy", b"xy" + bytes(4094) + chunk), data[:16]


def test_a_directory_listing_survives_a_restart(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    d = os.path.join(m.backing, "d")
    os.mkdir(d)
    names = {"entry-%04d-%s" % (i, "n" * 150) for i in range(3000)}
    for n in names:
        open(os.path.join(d, n), "w").close()
    seen = set()
    with os.scandir(os.path.join(m.path, "d")) as it:
        for entry in it:
            seen.add(entry.name)
            if len(seen) == 100:
                restart_backend(m, spawner)
    assert seen == names
    # And a fresh open of the directory, under the new backend, too.
    assert set(os.listdir(os.path.join(m.path, "d"))) == names


def test_a_file_unlinked_while_open_cannot_be_reopened(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk)
    with open(os.path.join(m.backing, "gone"), "wb") as f:
        f.write(os.urandom(4 * MIB))
    path = os.path.join(m.path, "gone")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.unlink(path)
        restart_backend(m, spawner)
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, 3 * MIB)
        assert e.value.errno in (errno.ESTALE, errno.EIO), e.value
        # A file now at that name is not what the descriptor meant.
        with open(os.path.join(m.backing, "gone"), "wb") as f:
            f.write(b"another file")
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, 0)
        assert e.value.errno in (errno.ESTALE, errno.EIO), e.value
    finally:
        # A backend that asks for a FLUSH on close gets none: close(2) says
        # so too.
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno in (errno.ESTALE, errno.EIO), e
    with open(m.daemon.log, errors="replace") as f:
        assert "cannot be reopened" in f.read()


def test_a_backend_away_past_the_timeout_is_enotconn(
        py_mounts, sdk, spawner):
    m = loopback_mount(py_mounts, sdk,
                       options="allow_other,passthrough=off,timeout=2")
    with open(os.path.join(m.backing, "f"), "wb") as f:
        f.write(os.urandom(4 * MIB))
    fd = os.open(os.path.join(m.path, "f"), os.O_RDONLY)
    try:
        kill_backend(m)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, 3 * MIB)
        elapsed = time.monotonic() - t0
        assert e.value.errno == errno.ENOTCONN, e.value
        assert 1.5 <= elapsed < 10, "failed after %.1fs (timeout=2)" % elapsed
        start_backend(m, spawner)
        assert len(os.pread(fd, 4096, 3 * MIB)) == 4096
    finally:
        os.close(fd)
