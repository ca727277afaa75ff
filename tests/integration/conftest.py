"""Fixtures for the fuse-hostd integration tests.

Run as root with Debian's Python, outside Bazel:
    /usr/bin/python3 -m pytest tests/integration -q
Binaries come from $FUSE_HOSTD_BIN_DIR (default <repo>/bazel-bin).

Layout of one session (all under one /tmp/fuse-hostd-it-* dir, mode 0755 so
the test users can reach the runner and the mountpoints):
    runner/fsops_runner.py   the op runner every mount access goes through
    daemon/                  the session daemon's control socket and log
    tNNNN/                   one dir per test: backend sockets and logs,
                             mountpoints, loopback backing dirs
"""

import os
import shutil
import signal
import tempfile
import time

import pytest

import fhlib
from fhlib import Ops, User, is_mounted, run_cmd, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TEST_GROUP = "fhtest_shared"
TEST_USERS = ("fhtest_a", "fhtest_b")
TMP_PREFIX = "fuse-hostd-it-"

BACKENDS = ("memory", "loopback")
USER_KINDS = ("root", "user")


# --- reporting ------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# --- binaries -------------------------------------------------------------------

class Binaries:
    def __init__(self, bin_dir):
        self.dir = bin_dir
        self.daemon = fhlib.binary_path(bin_dir, "fuse-hostd")
        self.hostctl = fhlib.binary_path(bin_dir, "fuse-hostctl")
        self.helper = fhlib.binary_path(bin_dir, "mount.fuse.hostd")
        self.memory = fhlib.binary_path(bin_dir, "memory_fs")
        self.loopback = fhlib.binary_path(bin_dir, "loopback_fs")

    def missing(self):
        return [p for p in (self.daemon, self.hostctl, self.memory,
                            self.loopback) if not os.access(p, os.X_OK)]


@pytest.fixture(scope="session")
def bins():
    b = Binaries(os.environ.get("FUSE_HOSTD_BIN_DIR",
                                os.path.join(REPO, "bazel-bin")))
    missing = b.missing()
    if missing:
        pytest.fail("binaries missing (run `bazel build //...` or set "
                    "FUSE_HOSTD_BIN_DIR): %s" % ", ".join(missing),
                    pytrace=False)
    return b


# --- session environment ---------------------------------------------------------

def _session_alive(session_dir):
    """True if the pytest process that made session_dir still runs (another
    run of the suite may be going on beside this one)."""
    try:
        with open(os.path.join(session_dir, "pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _cleanup_stale_mounts(only=None):
    """Detaches FUSE mounts left under /tmp/fuse-hostd-it-* by earlier runs
    that were killed (or, with `only`, under that one session dir)."""
    for _, mp, fstype, _ in fhlib.proc_mounts():
        if not fstype.startswith("fuse"):
            continue
        if only is not None:
            if mp.startswith(only + "/"):
                fhlib.force_unmount(mp)
            continue
        if not mp.startswith("/tmp/" + TMP_PREFIX):
            continue
        session_dir = "/".join(mp.split("/")[:3])
        if not _session_alive(session_dir):
            fhlib.force_unmount(mp)


@pytest.fixture(scope="session")
def session_tmp():
    if os.geteuid() != 0:
        pytest.fail("the integration tests must run as root", pytrace=False)
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing (run scripts/setup.sh)",
                    pytrace=False)
    _cleanup_stale_mounts()
    d = tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    yield d
    # Remove it only if nothing is still mounted inside (rmtree would walk
    # into a mount, and might block on it). FUSE_HOSTD_IT_KEEP=1 keeps it
    # (logs of the daemon and every backend).
    if os.environ.get("FUSE_HOSTD_IT_KEEP") == "1":
        print("\nkept %s" % d)
    elif not any(mp.startswith(d + "/") for _, mp, _, _ in fhlib.proc_mounts()):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def runner_path(session_tmp):
    d = os.path.join(session_tmp, "runner")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    dst = os.path.join(d, "fsops_runner.py")
    shutil.copyfile(os.path.join(os.path.dirname(__file__),
                                 "fsops_runner.py"), dst)
    os.chmod(dst, 0o755)
    return dst


class TestUsers:
    def __init__(self):
        self.group_gid = fhlib.ensure_group(TEST_GROUP)
        self.a = fhlib.ensure_user(TEST_USERS[0], TEST_GROUP)
        self.b = fhlib.ensure_user(TEST_USERS[1], TEST_GROUP)
        self.root = User("root")


@pytest.fixture(scope="session")
def users():
    """fhtest_a and fhtest_b, sharing the supplementary group fhtest_shared.
    Created once (kept afterwards: creation is idempotent)."""
    return TestUsers()


# --- processes ---------------------------------------------------------------------

class Daemon:
    """A fuse-hostd process with its own control socket."""

    def __init__(self, bins, workdir):
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.bins = bins
        self.workdir = workdir
        self.sock = os.path.join(workdir, "control.sock")
        self.log = os.path.join(workdir, "daemon.log")
        self.proc = None

    def start(self, timeout=20):
        self.proc = fhlib.spawn_logged(
            [self.bins.daemon, "--control_socket=" + self.sock], self.log,
            cwd="/")
        if fhlib.wait_ready(self.proc, lambda: os.path.exists(self.sock) and
                            self.ctl("list", timeout=5).returncode == 0,
                            timeout, interval=0.1):
            return self
        if self.proc.poll() is not None:
            raise AssertionError("fuse-hostd exited with %s:\n%s" % (
                self.proc.returncode, fhlib.tail(self.log)))
        raise AssertionError("fuse-hostd did not serve %s within %ss:\n%s" %
                             (self.sock, timeout, fhlib.tail(self.log)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def restart(self):
        """Starts a fresh process on the same control socket (after a
        crash: the session goes on, and only the test that crashed the
        daemon reports it)."""
        if self.alive():
            self.stop(timeout=10)
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        return self.start()

    def ctl(self, *args, timeout=30):
        return run_cmd([self.bins.hostctl, "--control_socket=" + self.sock]
                       + list(args), timeout=timeout)

    def mount(self, backend_addr, mountpoint, options=None, timeout=30):
        args = ["mount", backend_addr, mountpoint]
        if options:
            args += ["-o", options]
        return self.ctl(*args, timeout=timeout)

    def unmount(self, mountpoint, lazy=False, timeout=30):
        args = ["unmount"] + (["--lazy"] if lazy else []) + [mountpoint]
        return self.ctl(*args, timeout=timeout)

    def list(self):
        return self.ctl("list", timeout=15)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the daemon; returns its exit code, or None if it had to be
        killed after `timeout` seconds."""
        if self.proc is None:
            return None
        return fhlib.stop_process(self.proc, sig, timeout)


class Backend:
    """One backend process serving on a Unix socket."""

    def __init__(self, bins, kind, workdir, name, root=None, args=()):
        self.bins = bins
        self.kind = kind
        self.name = name
        self.root = root
        self.args = list(args)
        self.sock = os.path.join(workdir, name + ".sock")
        self.addr = "unix:" + self.sock
        self.log = os.path.join(workdir, name + ".log")
        self.proc = None

    def command(self):
        if self.kind == "memory":
            return [self.bins.memory, "--listen=" + self.addr] + self.args
        if self.kind == "loopback":
            return [self.bins.loopback, "--listen=" + self.addr,
                    "--root=" + self.root] + self.args
        raise ValueError(self.kind)

    def start(self, timeout=20):
        self.proc = fhlib.spawn_logged(self.command(), self.log, cwd="/")
        if fhlib.wait_ready(self.proc,
                            lambda: fhlib.socket_connectable(self.sock),
                            timeout):
            return self
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (
                self.kind, self.proc.returncode, fhlib.tail(self.log)))
        raise AssertionError("%s backend did not listen on %s within %ss:\n%s"
                             % (self.kind, self.sock, timeout,
                                fhlib.tail(self.log)))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, grace=2):
        """SIGTERM, then SIGKILL after `grace` seconds. (Teardown does not
        test how backends shut down, so it does not wait long.)"""
        if self.proc is None or self.proc.poll() is not None:
            return
        # Some tests SIGSTOP a backend; stopped, it would not act on SIGTERM.
        self.proc.send_signal(signal.SIGCONT)
        fhlib.stop_process(self.proc, timeout=grace)


class TcpLoopback:
    """loopback_fs on plain TCP (the mount says `insecure`)."""

    def __init__(self, mounts, root, args=()):
        self.root = root
        self.port = fhlib.free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.log = mounts.path("tcp-loopback.log")
        self.proc = fhlib.spawn_logged(
            [mounts.bins.loopback, "--listen=" + self.addr, "--root=" + root]
            + list(args), self.log, cwd="/")
        assert fhlib.wait_ready(self.proc,
                                lambda: fhlib.tcp_connectable(self.port), 20)

    def mount(self, mounts, options):
        """Mounts it at a new mountpoint (unmounted at teardown)."""
        mp = mounts.mountpoint()
        r = mounts.daemon.mount(self.addr, mp, options)
        assert r.returncode == 0, r
        m = Mount(mounts.daemon, None, mp, options)
        mounts.mounts.append(m)
        return m

    def stop(self):
        fhlib.stop_process(self.proc, timeout=5)


class Mount:
    def __init__(self, daemon, backend, mountpoint, options):
        self.daemon = daemon
        self.backend = backend
        self.path = mountpoint
        self.options = options

    @property
    def backing(self):
        return self.backend.root if self.backend else None


@pytest.fixture(scope="session")
def daemon(bins, session_tmp):
    """The session's fuse-hostd. Tests that stop or kill a daemon make their
    own with `mounts.new_daemon()`."""
    d = Daemon(bins, os.path.join(session_tmp, "daemon"))
    d.start()
    yield d
    for _, mp, fstype, _ in fhlib.proc_mounts():
        if mp.startswith(session_tmp + "/") and fstype.startswith("fuse"):
            d.unmount(mp, lazy=True, timeout=10)
    code = d.stop(timeout=15)
    if code != 0:
        print("fuse-hostd exit code %r; log tail:\n%s" % (
            code, fhlib.tail(d.log)))
    _cleanup_stale_mounts(only=session_tmp)


_test_counter = [0]


class PerTestDir:
    """A test's own directory (tNNNN in the session's), ops run there as any
    user, and runners held in the background, which cleanup kills."""

    def __init__(self, session_tmp, runner_path, users):
        _test_counter[0] += 1
        self.dir = os.path.join(session_tmp, "t%04d" % _test_counter[0])
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.runner_path = runner_path
        self.users = users
        self.held = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def mkdir(self, name, mode=0o755):
        p = self.path(name)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def ops(self, user=None, cwd=None):
        return Ops(self.runner_path, user or self.users.root, cwd)

    def hold(self, ops_obj, ops, cwd=None):
        h = ops_obj.start(ops, cwd=cwd)
        self.held.append(h)
        return h


class MountFactory(PerTestDir):
    """Per-test backends, daemons, mounts and helper processes, all cleaned
    up at teardown, also when the test failed."""

    def __init__(self, bins, daemon, session_tmp, runner_path, users):
        super().__init__(session_tmp, runner_path, users)
        self.bins = bins
        self.daemon = daemon
        self.backends = []
        self.mounts = []
        self.daemons = []
        self._n = 0
        self.daemon_log_start = fhlib.file_size(daemon.log)

    def new_daemon(self):
        self._n += 1
        d = Daemon(self.bins, self.path("daemon%d" % self._n))
        self.daemons.append(d)
        return d.start()

    def backend(self, kind="memory", root=None, args=()):
        self._n += 1
        if kind == "loopback" and root is None:
            root = self.mkdir("backing%d" % self._n)
        b = Backend(self.bins, kind, self.dir, "%s%d" % (kind, self._n), root,
                    args)
        self.backends.append(b)
        return b.start()

    def mountpoint(self):
        self._n += 1
        return self.mkdir("mnt%d" % self._n)

    def mount(self, kind="memory", options="allow_other", backend=None,
              daemon=None, root=None):
        daemon = daemon or self.daemon
        backend = backend or self.backend(kind, root=root)
        mp = self.mountpoint()
        r = daemon.mount(backend.addr, mp, options)
        assert r.returncode == 0, "mount failed: %r\ndaemon log:\n%s" % (
            r, fhlib.tail(daemon.log, self.daemon_log_start))
        assert is_mounted(mp), "fuse-hostctl mount returned 0 but %s is " \
            "not in /proc/self/mounts" % mp
        m = Mount(daemon, backend, mp, options)
        self.mounts.append(m)
        return m

    def cleanup(self, failed):
        if failed:
            print("---- daemon log (this test) ----")
            print(fhlib.tail(self.daemon.log, self.daemon_log_start))
            for d in self.daemons:
                print("---- %s ----" % d.log)
                print(fhlib.tail(d.log))
            for b in self.backends:
                print("---- %s ----" % b.log)
                print(fhlib.tail(b.log, max_bytes=3000))
        for b in self.backends:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGCONT)
        for h in self.held:
            h.kill()
        t0 = time.monotonic()
        for m in self.mounts:
            if is_mounted(m.path):
                if m.daemon.alive():
                    try:
                        m.daemon.unmount(m.path, timeout=15)
                        if is_mounted(m.path):
                            m.daemon.unmount(m.path, lazy=True, timeout=15)
                    except fhlib.CommandTimeout:
                        pass
                fhlib.force_unmount(m.path)
        t1 = time.monotonic()
        for d in self.daemons:
            d.stop(timeout=10)
        t2 = time.monotonic()
        for b in self.backends:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.terminate()
        for b in self.backends:
            b.stop()
        t3 = time.monotonic()
        if t3 - t0 > 2:
            print("slow teardown: unmount %.1fs, daemons %.1fs, backends "
                  "%.1fs" % (t1 - t0, t2 - t1, t3 - t2))
        if not self.daemon.alive():
            code = self.daemon.proc.returncode
            log = fhlib.tail(self.daemon.log, self.daemon_log_start)
            self.daemon.restart()
            pytest.fail("the session's fuse-hostd died during this test "
                        "(exit status %s; restarted for the next tests). "
                        "Its log since the test began:\n%s" % (code, log),
                        pytrace=False)
        for m in self.mounts:
            if is_mounted(m.path):
                fhlib.force_unmount(m.path)


def _factory(request, cls, bins, daemon, session_tmp, runner_path, users):
    if not daemon.alive():   # (died outside a test's teardown check)
        print("session fuse-hostd had died (exit %s); restarting it" %
              daemon.proc.returncode)
        daemon.restart()
    f = cls(bins, daemon, session_tmp, runner_path, users)
    yield f
    f.cleanup(_test_failed(request))


@pytest.fixture
def mounts(request, bins, daemon, session_tmp, runner_path, users):
    yield from _factory(request, MountFactory, bins, daemon, session_tmp,
                        runner_path, users)


@pytest.fixture
def node_mounts(request, bins, daemon, session_tmp, runner_path, users):
    """Like `mounts`, with the Node examples (examples/node/) as the
    backends of mount()."""
    from nodefhlib import NodeMountFactory
    yield from _factory(request, NodeMountFactory, bins, daemon,
                        session_tmp, runner_path, users)


# --- the parametrized filesystem fixture -------------------------------------------

class FsCtx:
    """A fresh mount of one backend, seen by one user.

    work:        MNT/work, a directory owned by the user (the ops' cwd)
    ops:         runs op lists as the user, cwd = work
    root_ops:    the same as root
    backing_work: for loopback, the backing dir's work/ (same files)
    """

    def __init__(self, kind, user, mount, mounts, users):
        self.kind = kind
        self.user = user
        self.mount = mount
        self.mounts = mounts
        self.users = users
        self.mnt = mount.path
        self.work = os.path.join(self.mnt, "work")
        self.backing_work = (os.path.join(mount.backing, "work")
                             if mount.backing else None)
        self.ops = mounts.ops(user, self.work)
        self.root_ops = mounts.ops(users.root, self.work)
        self.is_root = user.is_root

    def p(self, name):
        return os.path.join(self.work, name)

    def tool(self, args, timeout=120, user="self"):
        u = self.user if user == "self" else user
        return run_cmd(args, timeout=timeout, user=u)

    def __repr__(self):
        return "FsCtx(%s, %s, %s)" % (self.kind, self.user.name, self.mnt)


def make_fs(kind, user_kind, mounts, users, options="allow_other"):
    user = users.root if user_kind == "root" else users.a
    m = mounts.mount(kind, options=options)
    root_ops = mounts.ops(users.root, m.path)
    root_ops.ok([("mkdir", "work", 0o755),
                 ("chown", "work", user.uid, user.gid)])
    return FsCtx(kind, user, m, mounts, users)


# FUSE_HOSTD_IT_NATIVE=1 checks the suite itself: `fs` is then a plain
# directory on the local filesystem instead of a mount (no binaries needed;
# tests that need the daemon are skipped). Every ops test should pass there,
# since the loopback backend must behave like the local filesystem.
NATIVE = os.environ.get("FUSE_HOSTD_IT_NATIVE") == "1"


class NativeFactory(PerTestDir):
    """Stands in for MountFactory in native mode."""

    def mount(self, kind="memory", options=None):
        return Mount(None, None, self.mkdir("native"), options)

    def cleanup(self, failed):
        for h in self.held:
            h.kill()


# The programs that serve each kind of backend in the operation checks
# (fixtures fs, loopback_fs, root_fs): the C++ examples, and the Node ones
# (fusehost, examples/node/), whose test ids start with "node".
SDKS = ("cpp",) if NATIVE else ("cpp", "node")
_FACTORIES = {"cpp": "mounts", "node": "node_mounts"}


def _sdk_id(sdk, kind):
    return kind if sdk == "cpp" else sdk + kind


def _fs_fixture(request, kind, user_kind, users, sdk="cpp"):
    if NATIVE:
        f = NativeFactory(request.getfixturevalue("session_tmp"),
                          request.getfixturevalue("runner_path"), users)
        request.addfinalizer(lambda: f.cleanup(False))
        return make_fs(kind, user_kind, f, users)
    return make_fs(kind, user_kind,
                   request.getfixturevalue(_FACTORIES[sdk]), users)


_FS_PARAMS = [(s, b, u) for s in SDKS for b in BACKENDS for u in USER_KINDS]


@pytest.fixture(params=_FS_PARAMS,
                ids=["%s-%s" % (_sdk_id(s, b), u) for s, b, u in _FS_PARAMS])
def fs(request, users):
    sdk, kind, user_kind = request.param
    return _fs_fixture(request, kind, user_kind, users, sdk)


@pytest.fixture(params=[(s, u) for s in SDKS for u in USER_KINDS],
                ids=["%s-%s" % (_sdk_id(s, "loopback"), u)
                     for s in SDKS for u in USER_KINDS])
def loopback_fs(request, users):
    sdk, user_kind = request.param
    return _fs_fixture(request, "loopback", user_kind, users, sdk)


@pytest.fixture(params=[(s, b) for s in SDKS for b in BACKENDS],
                ids=[_sdk_id(s, b) for s in SDKS for b in BACKENDS])
def root_fs(request, users):
    """Every backend, as root only (for tool-heavy tests)."""
    sdk, kind = request.param
    return _fs_fixture(request, kind, "root", users, sdk)


@pytest.fixture
def needs_daemon():
    if NATIVE:
        pytest.skip("needs the daemon (FUSE_HOSTD_IT_NATIVE=1)")
