"""FUSE over io_uring (mount option uring, daemon/fuse/uring_queues.h):
with the fuse module's enable_uring parameter set, the kernel hands
requests to a queue per CPU and the daemon answers them there. Files,
trees, extended attributes and writes larger than a page pass through the
rings unchanged; a killed caller's request taken from a ring is answered
EINTR at once; without the kernel's consent the mount works through
/dev/fuse; unmounting ends the queues' threads; and a kept daemon's uring
mount ends with that daemon instead of leaving callers waiting forever."""

import errno
import hashlib
import os
import signal
import subprocess
import time

import pytest

import daemon_stats
import fhlib
import pyfhlib
from fhlib import run_cmd
from test_daemon_restart import KeptDaemon

pytestmark = pytest.mark.usefixtures("needs_daemon")

HERE = os.path.dirname(os.path.abspath(__file__))
ENABLE = "/sys/module/fuse/parameters/enable_uring"
# File data through the daemon (and so through the rings), not through the
# backing file.
OPTIONS = "allow_other,uring,passthrough=off"


def set_enable_uring(value):
    with open(ENABLE, "w") as f:
        f.write(value)


@pytest.fixture
def enable_uring():
    """The fuse module's enable_uring, set to Y for the test and put back
    after. The kernel reads it at each connection's INIT."""
    assert os.path.exists(ENABLE), (
        "this kernel has no FUSE over io_uring (Linux 6.14 and later)")
    with open(ENABLE) as f:
        before = f.read().strip()
    set_enable_uring("Y")
    yield
    set_enable_uring(before)


def uring_requests(m):
    return daemon_stats.counted(m, r"io_uring\s+(\d+) kernel requests")


def ring_threads(daemon_pid):
    """Threads of the daemon named fuse-ring-N."""
    names = []
    for tid in os.listdir("/proc/%d/task" % daemon_pid):
        try:
            with open("/proc/%d/task/%s/comm" % (daemon_pid, tid)) as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return [n for n in names if n.startswith("fuse-ring-")]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_files_trees_and_xattrs_pass_through_the_rings(mounts, enable_uring):
    root = mounts.mkdir("backing")
    m = mounts.mount("loopback", options=OPTIONS, root=root)
    cpus = os.sysconf("SC_NPROCESSORS_CONF")
    # Logged once the queues are registered, just after the INIT reply that
    # lets the mount complete: it may come a moment after.
    line = "requests come through %d io_uring queues" % cpus
    assert fhlib.wait_until(
        lambda: line in fhlib.tail(m.daemon.log, mounts.daemon_log_start),
        10), fhlib.tail(m.daemon.log, mounts.daemon_log_start)
    before = uring_requests(m)

    # A write and a read larger than a ring entry's page, and than one
    # request (the kernel splits at max_write).
    data = os.urandom(3 * 1024 * 1024 + 123)
    big = os.path.join(m.path, "big")
    with open(big, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    assert digest(os.path.join(root, "big")) == hashlib.sha256(
        data).hexdigest()
    run_cmd(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"]).check()
    assert digest(big) == hashlib.sha256(data).hexdigest()

    # A tree made and changed through the mount lands in the backing
    # directory as made.
    d = os.path.join(m.path, "d")
    os.makedirs(os.path.join(d, "sub"))
    for i in range(50):
        with open(os.path.join(d, "sub", "f%02d" % i), "w") as f:
            f.write("file %d\n" % i)
    os.symlink("sub/f07", os.path.join(d, "link"))
    os.rename(os.path.join(d, "sub", "f00"), os.path.join(d, "moved"))
    os.unlink(os.path.join(d, "sub", "f01"))
    os.chmod(os.path.join(d, "moved"), 0o600)
    os.setxattr(os.path.join(d, "moved"), "user.note", b"kept")
    assert os.getxattr(os.path.join(d, "moved"), "user.note") == b"kept"
    assert os.readlink(os.path.join(d, "link")) == "sub/f07"
    assert sorted(os.listdir(os.path.join(d, "sub"))) == [
        "f%02d" % i for i in range(2, 50)]
    listing = run_cmd(["ls", "-lR", d]).check().stdout
    assert "moved" in listing and "f49" in listing
    diff = run_cmd(["diff", "-r", "--no-dereference", d,
                    os.path.join(root, "d")])
    assert diff.returncode == 0, diff
    with open(os.path.join(root, "d", "sub", "f33")) as f:
        assert f.read() == "file 33\n"
    assert os.stat(os.path.join(root, "d", "moved")).st_mode & 0o777 == 0o600
    assert os.getxattr(os.path.join(root, "d", "moved"),
                       "user.note") == b"kept"
    for name in os.listdir(os.path.join(d, "sub")):
        os.unlink(os.path.join(d, "sub", name))
    os.rmdir(os.path.join(d, "sub"))
    assert not os.path.exists(os.path.join(root, "d", "sub"))

    # Those requests came through the rings, not /dev/fuse.
    assert uring_requests(m) - before >= 200, uring_requests(m)


def test_opens_answered_with_a_backing_file_through_the_rings(
        mounts, enable_uring):
    # With passthrough (the default), the replies to opens and creates
    # taken from a ring are patched (a backing file) before their commit.
    root = mounts.mkdir("backing")
    m = mounts.mount("loopback", options="allow_other,uring", root=root)
    path = os.path.join(m.path, "f")
    with open(path, "wb") as f:
        f.write(b"through the backing file")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.unlink(path)
        # Unlinked, it is read through the backing file the kernel holds.
        assert os.pread(fd, 100, 0) == b"through the backing file"
    finally:
        os.close(fd)
    opens, refused, _ = daemon_stats.passthrough_stats(m)
    assert opens >= 2 and refused == 0, (opens, refused)
    assert uring_requests(m) >= 4


def test_a_killed_callers_ring_request_is_answered_at_once(mounts,
                                                            enable_uring):
    sock = mounts.path("hostile.sock")
    backend = pyfhlib.PyProcess(
        mounts.bins, mounts.dir, "hostile",
        [os.path.join(HERE, "hostile_backend.py"), "--listen",
         "unix:" + sock, "--hang"], listen=sock)
    mounts.backends.append(backend)
    backend.start()
    m = mounts.mount(options="allow_other,uring,timeout=600",
                     backend=backend)
    p = subprocess.Popen(["cat", os.path.join(m.path, "file")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # cat waits in the kernel for the backend
    assert p.poll() is None
    # The lookup cat waits for came through a ring (the interrupt comes
    # through /dev/fuse and must find it).
    assert uring_requests(m) >= 1
    t0 = time.monotonic()
    p.kill()
    p.wait(timeout=30)
    assert time.monotonic() - t0 < 3, "SIGKILL took %.1f s" % (
        time.monotonic() - t0)


def test_without_the_kernels_consent_the_mount_uses_dev_fuse(mounts):
    assert os.path.exists(ENABLE)
    with open(ENABLE) as f:
        before = f.read().strip()
    set_enable_uring("N")
    try:
        root = mounts.mkdir("backing")
        m = mounts.mount("loopback", options=OPTIONS, root=root)
    finally:
        set_enable_uring(before)
    with open(os.path.join(m.path, "f"), "w") as f:
        f.write("through /dev/fuse\n")
    with open(os.path.join(root, "f")) as f:
        assert f.read() == "through /dev/fuse\n"
    assert uring_requests(m) == 0
    log = fhlib.tail(m.daemon.log, mounts.daemon_log_start)
    assert "the kernel offers no io_uring queues" in log, log


def test_unmounting_ends_the_queues_threads(mounts, enable_uring):
    d = mounts.new_daemon()
    pid = d.proc.pid
    for _ in range(3):
        root = mounts.mkdir("backing%d" % len(mounts.mounts))
        m = mounts.mount("loopback", options=OPTIONS, root=root, daemon=d)
        with open(os.path.join(m.path, "f"), "w") as f:
            f.write("x" * 100000)
        assert len(ring_threads(pid)) == os.sysconf("SC_NPROCESSORS_CONF")
        d.unmount(m.path).check()
        assert fhlib.wait_until(lambda: not ring_threads(pid), 10), \
            ring_threads(pid)
    assert d.alive()


def test_a_kept_daemons_uring_mount_ends_with_it(mounts, enable_uring):
    kept = KeptDaemon(mounts.bins, mounts.path("kept_daemon"))
    mounts.daemons.append(kept)
    kept.start()
    root = mounts.mkdir("backing")
    m = mounts.mount("loopback", options=OPTIONS, root=root, daemon=kept)
    with open(os.path.join(m.path, "f"), "w") as f:
        f.write("before\n")
    log = fhlib.tail(kept.log)
    assert "the mount ends with this daemon" in log, log
    kept.replace_daemon(signal.SIGKILL)
    # In a process of its own: a caller left waiting for an answer would
    # wait forever, unkillable, and only ending the connection frees it.
    p = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import os, sys\n"
         "try:\n"
         "    os.stat(sys.argv[1])\n"
         "    print('answered')\n"
         "except OSError as e:\n"
         "    print(e.errno)\n", os.path.join(m.path, "f")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        fhlib.force_unmount(m.path)
        p.communicate(timeout=20)
        pytest.fail("a stat on a uring mount whose daemon was killed never "
                    "returned")
    assert int(out.strip()) in (errno.ENOTCONN, errno.ECONNABORTED), out
