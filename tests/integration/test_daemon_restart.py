"""fuse-hostd run by its keeper (`fuse-hostd --supervise`), killed with
SIGKILL or handed over with SIGUSR2: its mounts stay mounted, and programs
using them see a stall, not an error. Open files read and write on,
nameless open files stay reachable, open directories list on, a request
the dead daemon had read and not answered is answered by the next one, and
a mount that was unmounted is not brought back."""

import errno
import os
import shutil
import signal
import threading
import time

import pytest

import fhlib
from conftest import Daemon
from daemon_stats import passthrough_stats

pytestmark = pytest.mark.usefixtures("needs_daemon")


class KeptDaemon(Daemon):
    """fuse-hostd --supervise: `proc` is the keeper; the daemon is its
    child. `binary`: the file to run (the keeper starts the daemon from
    that path each time)."""

    def __init__(self, bins, workdir, binary=None):
        super().__init__(bins, workdir)
        self.binary = binary or bins.daemon

    def start(self, timeout=20):
        self.proc = fhlib.spawn_logged(
            [self.binary, "--supervise",
             "--control_socket=" + self.sock], self.log, cwd="/")
        if not fhlib.wait_ready(self.proc, lambda: self.daemon_pid() and
                                os.path.exists(self.sock) and
                                self.ctl("list", timeout=5).returncode == 0,
                                timeout, interval=0.1):
            raise AssertionError("the kept fuse-hostd did not start:\n" +
                                 fhlib.tail(self.log))
        return self

    def daemon_pid(self):
        """The keeper's child, or 0."""
        return fhlib.child_pid(self.proc.pid)

    def replace_daemon(self, sig, timeout=20):
        """Signals the daemon (SIGKILL) or the keeper (SIGUSR2: hand-over)
        and waits until the keeper runs a new daemon; returns its pid."""
        old = self.daemon_pid()
        assert old, "the keeper runs no daemon"
        os.kill(old if sig == signal.SIGKILL else self.proc.pid, sig)
        new = 0

        def replaced():
            nonlocal new
            new = self.daemon_pid()
            return new not in (0, old)
        assert fhlib.wait_until(replaced, timeout), (
            "the keeper started no new daemon:\n" + fhlib.tail(self.log))
        return new


@pytest.fixture
def kept(mounts):
    d = KeptDaemon(mounts.bins, mounts.path("kept_daemon"))
    mounts.daemons.append(d)
    return d.start()


@pytest.fixture(params=["memory", "loopback"])
def kind(request):
    return request.param


def test_open_files_names_and_directories_survive_a_killed_daemon(
        mounts, kept, kind):
    m = mounts.mount(kind, options="allow_other", daemon=kept)
    d = os.path.join(m.path, "d")
    os.mkdir(d)
    for i in range(50):
        with open(os.path.join(d, "f%02d" % i), "w") as f:
            f.write("file %d\n" % i)
    reader = os.open(os.path.join(d, "f07"), os.O_RDONLY)
    writer = os.open(os.path.join(m.path, "log"), os.O_WRONLY | os.O_CREAT,
                     0o644)
    os.write(writer, b"before\n")
    nameless = os.open(os.path.join(d, "gone"), os.O_RDWR | os.O_CREAT,
                       0o644)
    os.write(nameless, b"no name")
    os.unlink(os.path.join(d, "gone"))
    listing = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        kept.replace_daemon(signal.SIGKILL)
        # The first access waits for the new daemon; nothing fails.
        assert os.pread(reader, 100, 0) == b"file 7\n"
        os.write(writer, b"after\n")
        os.fsync(writer)
        assert os.fstat(nameless).st_size == 7
        assert os.pread(nameless, 100, 0) == b"no name"
        # The directory opened before the kill lists through its old handle.
        assert sorted(os.listdir(listing)) == ["f%02d" % i for i in range(50)]
        assert sorted(os.listdir(d)) == ["f%02d" % i for i in range(50)]
        with open(os.path.join(d, "new"), "w") as f:
            f.write("made after")
        os.rename(os.path.join(d, "new"), os.path.join(m.path, "moved"))
        with open(os.path.join(m.path, "moved")) as f:
            assert f.read() == "made after"
    finally:
        for fd in (reader, writer, nameless, listing):
            os.close(fd)
    with open(os.path.join(m.path, "log"), "rb") as f:
        assert f.read() == b"before\nafter\n"
    listed = kept.list()
    assert listed.returncode == 0 and listed.stdout.count(m.path) == 1
    assert "resumed" in fhlib.tail(kept.log)
    assert fhlib.is_mounted(m.path)


def test_writes_the_kernel_holds_reach_the_backend_after_a_killed_daemon(
        mounts, kept):
    """With the kernel's writeback cache (writeback_cache) the pages a
    program wrote wait in the kernel: the next daemon takes their writes,
    and the kernel still places appends (the backend's opens carry no
    O_APPEND after the restart either)."""
    m = mounts.mount("loopback", options="allow_other,writeback_cache",
                     daemon=kept)
    data = os.urandom(300000)
    path = os.path.join(m.path, "gathered")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data[:150000])
        kept.replace_daemon(signal.SIGKILL)
        os.write(fd, data[150000:])
        os.fsync(fd)
    finally:
        os.close(fd)
    backing = os.path.join(m.backing, "gathered")
    with open(backing, "rb") as f:
        assert f.read() == data
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"tail")
    finally:
        os.close(fd)
    with open(backing, "rb") as f:
        assert f.read() == data + b"tail"
    assert "resumed" in fhlib.tail(kept.log)


def test_a_request_the_dead_daemon_read_is_answered_by_the_next(
        mounts, kept):
    m = mounts.mount("memory", options="allow_other", daemon=kept)
    path = os.path.join(m.path, "f")
    with open(path, "w") as f:
        f.write("contents")
    got = {}

    def read_it():
        try:
            with open(path) as f:
                got["data"] = f.read()
        except OSError as e:
            got["errno"] = e.errno
    m.backend.signal(signal.SIGSTOP)
    t = threading.Thread(target=read_it)
    t.start()
    try:
        # The open has reached the daemon, which waits for the backend.
        time.sleep(0.5)
        assert t.is_alive(), "the open did not wait for the stopped backend"
        kept.replace_daemon(signal.SIGKILL)
    finally:
        m.backend.signal(signal.SIGCONT)
    t.join(30)
    assert not t.is_alive()
    assert got == {"data": "contents"}


def test_a_hand_over_fails_no_call(mounts, kept, kind):
    m = mounts.mount(kind, options="allow_other", daemon=kept)
    for i in range(20):
        with open(os.path.join(m.path, "f%d" % i), "w") as f:
            f.write("x" * i)
    errors = []
    calls = [0]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                for i in range(20):
                    p = os.path.join(m.path, "f%d" % i)
                    step = "stat"
                    assert os.stat(p).st_size == i
                    step = "open"
                    with open(p) as f:
                        step = "read"
                        assert f.read() == "x" * i
                        step = "close"
                    calls[0] += 1
            except (OSError, AssertionError) as e:
                errors.append("%s: %r" % (step, e))
    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        first = kept.daemon_pid()
        kept.replace_daemon(signal.SIGUSR2)
        assert kept.daemon_pid() != first
        before = calls[0]
        assert fhlib.wait_until(lambda: calls[0] > before + 50, 20)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert "handing over" in fhlib.tail(kept.log)


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGKILL])
def test_a_file_held_open_across_a_restart_opens_again(mounts, kept, kind,
                                                       sig):
    # The kernel holds opens the previous daemon answered, with passthrough
    # (loopback) or through the page cache. Opens of the same file answered
    # by the next daemon must agree with them, or the kernel fails them with
    # EIO (fs/fuse/iomode.c).
    m = mounts.mount(kind, options="allow_other", daemon=kept)
    paths = [os.path.join(m.path, n) for n in ("held_r", "held_w")]
    for p in paths:
        with open(p, "w") as f:
            f.write("before\n")
    reader = open(paths[0])
    writer = open(paths[1], "r+")
    try:
        # Twice: the second daemon must pass on what it inherited.
        for n in (1, 2):
            kept.replace_daemon(sig)
            if kind == "loopback":
                # Passed through: the backing ids the kernel holds are known
                # (asked once the new daemon answers on its control socket).
                assert fhlib.wait_until(
                    lambda: kept.ctl("list", timeout=5).returncode == 0, 20)
                assert passthrough_stats(m)[2] == 2
            for mode in ("r", "r+"):
                with open(paths[0], mode) as f:
                    assert f.read() == "before\n"
                with open(paths[1], mode) as f:
                    assert f.read() == "before\n" + "after\n" * (n - 1)
            reader.seek(0)
            assert reader.read() == "before\n"
            writer.seek(0, os.SEEK_END)
            writer.write("after\n")
            writer.flush()
            want = "before\n" + "after\n" * n
            with open(paths[1]) as f:
                assert f.read() == want
            assert os.stat(paths[1]).st_size == len(want)
    finally:
        reader.close()
        writer.close()
    # The ids the kernel held for them are closed with their last release
    # (the daemon learns of it just after the close returns).
    if kind == "loopback":
        assert fhlib.wait_until(lambda: passthrough_stats(m)[2] == 0, 10), (
            passthrough_stats(m))
    # Once the inherited opens are gone, the file opens as before.
    for p in paths:
        with open(p) as f:
            assert f.read().startswith("before\n")


def test_an_upgrade_hands_over_to_the_new_binary(mounts):
    # The binary at the path the keeper runs is replaced, as a package
    # upgrade does (a new file renamed over the old one); the hand-over
    # starts the new file, and the mount goes on through it.
    binary = mounts.path("fuse-hostd")
    shutil.copy(mounts.bins.daemon, binary)
    kept = KeptDaemon(mounts.bins, mounts.path("upgraded"), binary=binary)
    mounts.daemons.append(kept)
    kept.start()
    m = mounts.mount("memory", options="allow_other", daemon=kept)
    with open(os.path.join(m.path, "f"), "w") as f:
        f.write("before the upgrade")
    reader = os.open(os.path.join(m.path, "f"), os.O_RDONLY)
    try:
        old_exe = os.stat("/proc/%d/exe" % kept.daemon_pid())
        # A different file: the same program with one byte more, which the
        # loader ignores.
        shutil.copy(mounts.bins.daemon, binary + ".new")
        with open(binary + ".new", "ab") as f:
            f.write(b"\0")
        os.rename(binary + ".new", binary)
        new_pid = kept.replace_daemon(signal.SIGUSR2)
        new_exe = os.stat("/proc/%d/exe" % new_pid)
        assert (new_exe.st_dev, new_exe.st_ino) != (old_exe.st_dev,
                                                    old_exe.st_ino)
        assert new_exe.st_ino == os.stat(binary).st_ino
        assert os.pread(reader, 100, 0) == b"before the upgrade"
        with open(os.path.join(m.path, "g"), "w") as f:
            f.write("after")
    finally:
        os.close(reader)
    assert sorted(os.listdir(m.path)) == ["f", "g"]


def test_an_unmounted_mount_is_not_brought_back(mounts, kept):
    a = mounts.mount("memory", options="allow_other", daemon=kept)
    b = mounts.mount("memory", options="allow_other", daemon=kept)
    assert kept.unmount(b.path).returncode == 0
    assert not fhlib.is_mounted(b.path)
    kept.replace_daemon(signal.SIGKILL)
    with open(os.path.join(a.path, "f"), "w") as f:
        f.write("a lives")
    assert not fhlib.is_mounted(b.path)
    listed = kept.list().stdout
    assert a.path in listed and b.path not in listed


def test_stopping_the_keeper_unmounts_everything(mounts, kept):
    m = mounts.mount("memory", options="allow_other", daemon=kept)
    assert kept.stop(signal.SIGTERM, timeout=20) == 0
    assert not fhlib.is_mounted(m.path)


def test_without_a_keeper_a_killed_daemons_mounts_end(mounts):
    d = mounts.new_daemon()
    m = mounts.mount("memory", options="allow_other", daemon=d)
    d.stop(signal.SIGKILL)
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(m.path, "x"))
    assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
