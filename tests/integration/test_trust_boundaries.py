"""Attacks on the daemon's trust boundaries, performed as an unprivileged
local user or a hostile backend would, against the real daemon: each test
does what an attacker did and checks the safe outcome."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import fhlib
from fhlib import is_mounted, run_cmd

import pyfhlib  # noqa: F401  (the py_mounts fixture)
from pyfhlib import py_mounts  # noqa: F401
from fhcontrol import (Ctl, start_daemon, track_mount, user_backend,  # noqa: F401
                       user_bins, user_dir)

pytestmark = pytest.mark.usefixtures("needs_daemon")

FORGED = "fuse-hostd: audit: uid=0(root) pid=1: mount unix:/x at /srv: allowed"


HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def user_python(session_tmp):
    """The fusehost package and hostile_backend.py where the test users can
    read them (bazel-bin lives under root's 0700 home)."""
    d = os.path.join(session_tmp, "upy")
    if not os.path.exists(d):
        shutil.copytree(os.path.join(pyfhlib.package_dir(), "fusehost"),
                        os.path.join(d, "fusehost"))
        shutil.copy(os.path.join(HERE, "hostile_backend.py"), d)
        run_cmd(["chmod", "-R", "a+rX", d]).check()
        os.chmod(session_tmp, 0o755)
    return d


def hostile(e, user, *flags, name="hostile", home=None):
    """hostile_backend.py run as `user`, listening in their home (fhtest_a's
    unless `home`)."""
    sock = os.path.join(home or e.home, name + ".sock")
    p = pyfhlib.PyProcess(e.mounts.bins, e.mounts.dir, name,
                          [os.path.join(e.user_python, "hostile_backend.py"),
                           "--listen", "unix:" + sock] + list(flags),
                          listen=sock, env={"PYTHONPATH": e.user_python},
                          prefix=user.prefix())
    e.mounts.backends.append(p)
    return p.start()


@pytest.fixture
def env(mounts, users, user_bins, user_python):
    d = start_daemon(mounts)
    e = type("Env", (), {})()
    e.daemon, e.mounts, e.user_bins = d, mounts, user_bins
    e.ctl = Ctl(d, user_bins)
    e.a, e.b, e.root = users.a, users.b, users.root
    e.home = user_dir(mounts, e.a, "home_a")
    e.user_python = user_python
    return e


@pytest.fixture
def root_tmpfs(mounts):
    """A tmpfs of root's: what a user must never be able to unmount."""
    victim = mounts.mkdir("victim")
    run_cmd(["mount", "-t", "tmpfs", "-o", "size=1m", "victim", victim]).check()
    yield victim
    while is_mounted(victim):
        if run_cmd(["umount", "-l", victim]).returncode != 0:
            break


# --- 1: mounts are what the kernel says they are, not a path -----------------------

def _mount_that_moves(env, victim):
    """fhtest_a's backend renames the mountpoint while the daemon mounts it
    and leaves a symlink to root's tmpfs where it was. Returns (old path,
    where the mount is)."""
    user_dir(env.mounts, env.a, "home_a/box")
    mnt = user_dir(env.mounts, env.a, "home_a/box/mnt")
    moved = os.path.join(env.home, "box", "moved")
    backend = hostile(env, env.a, "--rename-on-init", mnt, moved,
                      "--symlink-at-src", victim)
    res = env.ctl(env.a, "mount", backend.addr, mnt)
    assert res.returncode == 0, res
    assert fhlib.wait_until(lambda: is_mounted(moved), 5), \
        "not mounted on the directory that was checked (now %s)" % moved
    track_mount(env.mounts, env.daemon, moved)
    return mnt, moved


def test_a_moved_mountpoint_cannot_turn_unmounts_onto_other_mounts(
        env, root_tmpfs):
    mnt, moved = _mount_that_moves(env, root_tmpfs)
    # `list` shows where the mount is now.
    assert moved in env.ctl(env.root, "list").check().stdout
    # The old path is a symlink to root's tmpfs now: unmounting it, lazily
    # or not, as the user or as root, touches nothing of root's.
    for user in (env.a, env.root):
        for lazy in ([], ["--lazy"]):
            res = env.ctl(user, "unmount", *(lazy + [mnt]))
            assert res.returncode != 0, res
            assert is_mounted(root_tmpfs), "root's tmpfs was unmounted"
    assert is_mounted(moved)
    # Renaming a directory above it moves it again; the owner unmounts it
    # where it is now.
    run_cmd(["mv", os.path.join(env.home, "box"),
             os.path.join(env.home, "box2")], user=env.a).check()
    now = os.path.join(env.home, "box2", "moved")
    assert now in env.ctl(env.a, "list").check().stdout
    res = env.ctl(env.a, "unmount", now)
    assert res.returncode == 0, res
    assert not is_mounted(now)
    assert is_mounted(root_tmpfs)


def test_sigterm_detaches_a_moved_mount(env, root_tmpfs):
    mnt, moved = _mount_that_moves(env, root_tmpfs)
    # The owner moves the directory above the mount too.
    run_cmd(["mv", os.path.join(env.home, "box"),
             os.path.join(env.home, "elsewhere")], user=env.a).check()
    now = os.path.join(env.home, "elsewhere", "moved")
    assert is_mounted(now)
    code = env.daemon.stop(signal.SIGTERM, timeout=20)
    assert code is not None, "fuse-hostd hung on SIGTERM"
    assert not is_mounted(now), "the moved mount was left behind"
    assert is_mounted(root_tmpfs)


def test_restart_detaches_the_mounts_a_crash_left_wherever_they_moved(
        env, root_tmpfs):
    mnt, moved = _mount_that_moves(env, root_tmpfs)
    run_cmd(["mv", os.path.join(env.home, "box"),
             os.path.join(env.home, "later")], user=env.a).check()
    later = os.path.join(env.home, "later", "moved")
    env.daemon.stop(signal.SIGKILL, timeout=10)
    assert is_mounted(later)
    env.daemon.restart()
    assert fhlib.wait_until(lambda: not is_mounted(later), 10), \
        "a mount left by the crashed daemon is still there"
    assert is_mounted(root_tmpfs)
    assert "detached stale mount" in env.daemon.log_text()


def test_log_lines_cannot_be_forged(env):
    # A backend address with a newline and a whole audit line after it: the
    # request is refused, and its audit line names it, escaped.
    res = env.ctl(env.a, "mount", "unix:/nonexistent\n" + FORGED,
                  env.home)
    assert res.returncode != 0, res
    log = env.daemon.log_text()
    assert "unix:/nonexistent\\x0a" + FORGED in log, log[-2000:]
    for line in log.splitlines():
        assert not line.startswith("fuse-hostd: audit: uid=0(root)"), line
    # Terminal escapes are escaped too.
    env.ctl(env.a, "mount", "unix:/x\x1b[2K", env.home)
    assert "\x1b" not in env.daemon.log_text()


def test_list_rows_cannot_be_forged(env):
    # A mountpoint whose name holds a newline and a fake row for root's
    # `fuse-hostctl list`.
    mnt = user_dir(env.mounts, env.a, "home_a/m\n/srv/fake 1 root mounted rw")
    backend = user_backend(env.mounts, env.user_bins, env.a, env.home)
    res = env.ctl(env.a, "mount", backend.addr, mnt)
    assert res.returncode == 0, res
    track_mount(env.mounts, env.daemon, mnt)
    out = env.ctl(env.root, "list").check().stdout
    rows = out.splitlines()
    assert len(rows) == 2, out  # the header and the one real mount
    shown = mnt.replace("\n", "\\x0a").replace(" ", "\\x20")
    assert rows[1].split()[0] == shown, rows


# --- 10: set-user-ID bits after another user's write ------------------------------

@pytest.mark.parametrize("kind", ["loopback", "pyloopback"])
def test_setid_bits_go_when_another_user_writes(mounts, py_mounts, users,
                                                kind):
    if kind == "loopback":
        m = mounts.mount(kind="loopback", options="allow_other")
        factory = mounts
    else:
        m = py_mounts.mount(kind="loopback", options="allow_other")
        factory = py_mounts
    work = os.path.join(m.path, "w")
    os.mkdir(work)
    os.chmod(work, 0o777)
    a = factory.ops(users.a, work)
    b = factory.ops(users.b, work)
    a.ok([("write_file", "suid", b"x"), ("chmod", "suid", 0o4777),
          ("write_file", "sgid", b"x"), ("chmod", "sgid", 0o2777),
          ("write_file", "both", b"x"), ("chmod", "both", 0o6777),
          ("write_file", "trunc", b"x"), ("chmod", "trunc", 0o6777)])
    b.ok([("append_file", "suid", b"y"), ("append_file", "sgid", b"y"),
          ("append_file", "both", b"y"), ("truncate", "trunc", 0)])
    for name in ("suid", "sgid", "both", "trunc"):
        perm = a.one(("stat", name))["perm"]
        assert perm & 0o6000 == 0, "%s: %o after another user's write" % (
            name, perm)
        assert perm & 0o777 == 0o777, oct(perm)


# --- 3: who serves a mount is fixed when it is made -------------------------------

def test_nobody_else_can_serve_roots_mount(env, mounts):
    shared = mounts.mkdir("shared", 0o1777)   # as /tmp is
    sock = os.path.join(shared, "roots.sock")
    backend = mounts.backend("memory")
    # Root's backend listens in the shared directory.
    backend.stop()
    backend.sock = sock
    backend.addr = "unix:" + sock
    backend.start()
    m = mounts.mount(backend=backend, daemon=env.daemon,
                     options="allow_other,timeout=2")
    ops = mounts.ops(env.root, m.path)
    ops.ok([("write_file", "secret", b"root's")])
    # Root's backend stops; fhtest_a binds the same path.
    backend.stop()
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    env.home = shared
    impostor = hostile(env, env.a, name="roots")
    assert impostor.sock == sock
    r = ops.one(("stat", "file"))
    assert fhlib.is_err(r, "ENOTCONN"), r  # never the impostor's answer
    assert fhlib.wait_until(
        lambda: "not by uid 0" in env.daemon.log_text(), 5), \
        fhlib.tail(env.daemon.log)
    # Root's backend comes back (memory_fs: empty again): the mount works.
    impostor.stop()
    if os.path.exists(sock):
        os.unlink(sock)
    backend.start()
    assert fhlib.wait_until(
        lambda: not fhlib.is_err(ops.one(("write_file", "again", b"1"))), 10)


# --- 6: nothing leaks per reconnection ---------------------------------------------

def _threads_and_fds(pid):
    with open("/proc/%d/status" % pid) as f:
        threads = int([l for l in f if l.startswith("Threads:")][0].split()[1])
    return threads, len(os.listdir("/proc/%d/fd" % pid))


def test_reconnections_leak_no_threads_or_descriptors(env):
    backend = user_backend(env.mounts, env.user_bins, env.a, env.home)
    mnt = user_dir(env.mounts, env.a, "home_a/mnt")
    # Each cycle waits out the mount's timeout once.
    env.ctl(env.a, "mount", "-o", "timeout=1", backend.addr, mnt).check()
    track_mount(env.mounts, env.daemon, mnt)
    ops = env.mounts.ops(env.a, mnt)
    ops.ok([("write_file", "f", b"x")])

    def cycle():
        backend.stop()
        assert fhlib.is_err(ops.one(("stat", "gone")), "ENOTCONN")
        backend.start()  # memory_fs: empty again
        assert fhlib.wait_until(
            lambda: not fhlib.is_err(ops.one(("write_file", "f", b"x"))), 10)
    cycle()
    before = _threads_and_fds(env.daemon.proc.pid)
    for _ in range(20):
        cycle()
    after = _threads_and_fds(env.daemon.proc.pid)
    assert after[0] <= before[0] + 4, (before, after)
    assert after[1] <= before[1] + 4, (before, after)


# --- 5: deadlines, interrupts, listings that never end -----------------------------

def _hostile_mount(env, *flags, options=None):
    """fhtest_a's hostile backend mounted on their directory."""
    mnt = user_dir(env.mounts, env.a, "home_a/hmnt")
    backend = hostile(env, env.a, *flags)
    args = ["mount", backend.addr, mnt] + (["-o", options] if options else [])
    res = env.ctl(env.a, *args)
    assert res.returncode == 0, res
    track_mount(env.mounts, env.daemon, mnt)
    return mnt, backend


def test_requests_queued_behind_busy_messages_keep_their_deadline(env):
    # Reads never get an answer; 12 readers of 12 files fill the daemon's
    # messages in flight (4) and queue behind them. With timeout=2 each
    # must be answered about 2 s after it arrived, not after the ones
    # before it. (Reads, of distinct files: the kernel itself serializes
    # lookups in one directory and reads of one page.)
    mnt, _ = _hostile_mount(env, "--hang-reads", options="timeout=2")
    procs = [subprocess.Popen(
        env.a.prefix() + ["cat", os.path.join(mnt, "file%d" % i)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(12)]
    for p in procs:
        p.wait(timeout=60)
        assert p.returncode != 0
    # Each read was answered within its 2 s of arrival, by the daemon's own
    # statistics (latency from the kernel request's arrival to the answer,
    # in power-of-two buckets: 2 s falls in the one up to 2.1 s).
    stats = env.ctl(env.a, "stats", mnt).check().stdout
    read = [l.split() for l in stats.splitlines()
            if l.split()[:1] == ["read"]][0]
    assert int(read[1]) >= 12, stats
    assert read[5] == "2.0s", "read p99 %s with timeout=2:\n%s" % (
        read[5], stats)


def test_a_killed_process_does_not_wait_for_a_hung_backend(env):
    mnt, _ = _hostile_mount(env, "--hang", options="timeout=600")
    p = subprocess.Popen(env.a.prefix() + ["cat", os.path.join(mnt, "file")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # cat waits in the kernel for the backend
    assert p.poll() is None
    t0 = time.monotonic()
    p.kill()
    p.wait(timeout=30)
    assert time.monotonic() - t0 < 3, "SIGKILL took %.1f s" % (
        time.monotonic() - t0)


@pytest.mark.parametrize("err", [512, 516, 4095])
def test_errnos_the_kernel_refuses_become_eio(env, err):
    # From 512 on are the kernel's internal restart codes (ERESTARTSYS, ...):
    # /dev/fuse refuses a reply carrying one, so a daemon that passed it on
    # would leave the request unanswered, and close(2) waits for its FLUSH
    # without end, unkillable. EIO instead, at once.
    mnt, _ = _hostile_mount(env, "--errno", str(err))
    script = ("import os, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
              "for call in (lambda: os.pread(fd, 4, 0), lambda: os.close(fd)):\n"
              "    try:\n"
              "        call()\n"
              "        print('ok')\n"
              "    except OSError as e:\n"
              "        print(e.errno)\n")
    p = subprocess.Popen(env.a.prefix() + ["/usr/bin/python3", "-c", script,
                                           os.path.join(mnt, "file")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err_text = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        # Stuck in the kernel: only ending the FUSE connection frees it.
        fhlib.force_unmount(mnt)
        p.communicate(timeout=20)
        pytest.fail("a read or close of a file whose backend answered errno "
                    "%d never returned" % err)
    assert out.split() == ["5", "5"], (out, err_text)


@pytest.mark.parametrize("how", ["--repeat-page", "--endless-listing"])
def test_a_listing_that_never_ends_fails(env, how):
    mnt, _ = _hostile_mount(env, how)
    t0 = time.monotonic()
    res = run_cmd(["ls", "-f", mnt], user=env.a, timeout=120)
    assert res.returncode != 0, res
    # EIO once the daemon sees it repeat itself or grow past any real
    # directory, or ENOMEM once it would take more than the daemon lets
    # open directories hold: bounded either way.
    assert ("Input/output error" in res.stderr or
            "Cannot allocate memory" in res.stderr), res
    assert time.monotonic() - t0 < 60


# --- 6: helpers bounded by their own limit; 9: helpers not dumpable ----------------

def test_a_helper_stuck_in_the_users_hung_mount_is_bounded_and_untraceable(
        env):
    mnt, _ = _hostile_mount(env, "--hang", options="timeout=86400")
    with open("/proc/sys/fs/suid_dumpable") as f:
        dumpable = f.read().strip()
    with open("/proc/sys/fs/suid_dumpable", "w") as f:
        f.write("1")
    try:
        t0 = time.monotonic()
        # Resolving this mountpoint as the user walks into the hung mount.
        ctl = subprocess.Popen(
            env.a.prefix() + [env.ctl.bin,
                              "--control_socket=" + env.daemon.sock, "mount",
                              "unix:/nonexistent", os.path.join(mnt, "dir")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        helper = None
        for _ in range(50):
            helper = _helper_of(env.daemon.proc.pid, env.a.uid)
            if helper:
                break
            time.sleep(0.1)
        assert helper, "no helper process of the user's found"
        # The user cannot attach to it.
        res = run_cmd(["/usr/bin/python3", "-c", PTRACE_ATTACH, str(helper)],
                      user=env.a)
        assert res.stdout.strip() == "EPERM", res
        out, err = ctl.communicate(timeout=60)
        took = time.monotonic() - t0
        assert ctl.returncode != 0
        assert took < 20, "the helper held the request %.1f s" % took
    finally:
        with open("/proc/sys/fs/suid_dumpable", "w") as f:
            f.write(dumpable)


PTRACE_ATTACH = """
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
r = libc.ptrace(PTRACE_ATTACH, int(sys.argv[1]), None, None)
print("attached" if r == 0 else errno.errorcode[ctypes.get_errno()])
"""


def _helper_of(daemon_pid, uid):
    """A child process of the daemon running as `uid`."""
    for task in os.listdir("/proc/%d/task" % daemon_pid):
        try:
            with open("/proc/%d/task/%s/children" % (daemon_pid, task)) as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            try:
                with open("/proc/%s/status" % kid) as f:
                    uids = [l for l in f if l.startswith("Uid:")][0].split()
            except OSError:
                continue
            if int(uids[1]) == uid:
                return int(kid)
    return None


# --- 2: handles never outlive the backend instance that issued them ---------------

@pytest.mark.parametrize("passthrough", ["off", "auto"])
def test_a_handle_after_a_backend_restart_reaches_only_its_own_file(
        mounts, users, passthrough):
    """Forwarded, the daemon reopens the file as a under the new instance
    (whose handle numbers may name b's file). Passed through, the kernel
    goes on using the very file a opened. Either way: a's own data, never
    b's."""
    m = mounts.mount(kind="loopback",
                     options="allow_other,passthrough=" + passthrough)
    work = os.path.join(m.path, "w")
    os.mkdir(work)
    os.chmod(work, 0o777)
    a = mounts.ops(users.a, work)
    b = mounts.ops(users.b, work)
    a.ok([("write_file", "a_secret", b"a's", 0o600)])
    b.ok([("write_file", "b_secret", b"b's secret", 0o600)])
    # fhtest_a keeps a_secret open across a restart of the backend: the
    # daemon reopens it, as fhtest_a, and never hands a's old handle number
    # to the new backend, where it could name b's file.
    h = mounts.hold(a, [("open", "a_secret", ["O_RDWR"]), ("sync", "open"),
                        ("pread", "a_secret", 100, 0),
                        ("pwrite", "a_secret", b"OVERWRITTEN", 0)], cwd=work)
    h.wait_sync("open")
    m.backend.stop()
    m.backend.start()
    # fhtest_b opens their own file under the new instance, and keeps it.
    hb = mounts.hold(b, [("open", "b_secret", ["O_RDWR"]), ("sync", "open"),
                         ("pread", "b_secret", 100, 0)], cwd=work)
    hb.wait_sync("open")
    h.release()
    r = h.finish()
    assert r[2] == b"a's", r
    assert r[3] == len(b"OVERWRITTEN"), r
    hb.release()
    assert hb.finish()[2] == b"b's secret"
    assert b.one(("read_file", "b_secret")) == b"b's secret"
    assert a.one(("read_file", "a_secret")) == b"OVERWRITTEN"


# --- 6: per-user limits on the control socket ---------------------------------------

HOLD_CONNECTIONS = """
import socket, sys, time
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
print("held", flush=True)
time.sleep(60)
"""


def test_one_user_cannot_take_every_control_connection(env):
    # fhtest_a holds 16 connections (the default limit) and asks for more.
    holder = subprocess.Popen(
        env.a.prefix() + ["/usr/bin/python3", "-c", HOLD_CONNECTIONS,
                          env.daemon.sock, "16"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = env.ctl(env.a, "list")
        assert res.returncode != 0, res
        assert fhlib.wait_until(
            lambda: "refusing a control connection" in env.daemon.log_text(),
            5)
        # Others are not affected.
        assert env.ctl(env.b, "list").returncode == 0
        assert env.ctl(env.root, "list").returncode == 0
    finally:
        holder.kill()
        holder.wait()
    # Once they are closed, fhtest_a gets in again.
    assert fhlib.wait_until(
        lambda: env.ctl(env.a, "list").returncode == 0, 10)


def test_one_user_cannot_occupy_every_control_thread(env):
    mnt, _ = _hostile_mount(env, "--hang")
    # Each of these mount requests resolves its mountpoint in fhtest_a's
    # hung mount and waits there (up to the helpers' 10 s).
    stuck = [subprocess.Popen(
        env.a.prefix() + [env.ctl.bin, "--control_socket=" + env.daemon.sock,
                          "mount", "unix:/nonexistent",
                          os.path.join(mnt, "d%d" % i)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)]
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        res = env.ctl(env.a, "list")
        assert res.returncode != 0, res
        assert "requests in progress" in res.stderr, res
        assert time.monotonic() - t0 < 3
        assert env.ctl(env.b, "list").returncode == 0
    finally:
        for p in stuck:
            p.wait(timeout=60)


# --- 4: memory the daemon holds for one user's backend is bounded -------------------

OPEN_DIRECTORIES = """
import errno, os, sys
path, n = sys.argv[1], int(sys.argv[2])
fds, nomem = [], 0
for _ in range(n):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fds.append(fd)
    try:
        with os.scandir(fd) as it:
            for _ in it:
                pass
    except OSError as e:
        if e.errno != errno.ENOMEM:
            raise
        nomem += 1
print(nomem, flush=True)
sys.stdin.read()  # hold every directory open until told
"""


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])


def _open_many(env, path, n, user=None):
    """Opens and reads `path` n times as `user` (fhtest_a), keeping every
    directory open; returns (process, how many readdirs got ENOMEM)."""
    p = subprocess.Popen(
        (user or env.a).prefix() + ["/usr/bin/python3", "-c", OPEN_DIRECTORIES, path,
                          str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line, "the opener died"
    return p, int(line)


def test_open_directories_cannot_grow_the_daemon_without_bound(env):
    # A listing the daemon cannot cache (resume cookies), on a mount where
    # the kernel caches no listing either (attr_timeout=0, which users may
    # set): each open directory holds its own copy, about 6 MiB here; 40
    # of them would be 250 MiB. The mount's listing budget (64 MiB) holds
    # ten and refuses the rest; the daemon grows by that plus what parsing
    # the refused replies leaves with the allocator (about 105 MiB in all,
    # measured here).
    mnt, _ = _hostile_mount(env, "--huge-reply", str(4 << 20),
                            options="attr_timeout=0")
    pid = env.daemon.proc.pid
    before = _rss_kib(pid)
    p, nomem = _open_many(env, mnt, 40)
    try:
        grown = (_rss_kib(pid) - before) // 1024
        assert nomem > 0, "no readdir was refused"
        assert grown < 160, "the daemon grew by %d MiB" % grown
    finally:
        p.kill()
        p.wait()


def test_one_users_open_directories_leave_room_for_the_others(env):
    # All of one user's mounts share 64 MiB of open listings (each mount
    # has 64 MiB of its own, all mounts 256 MiB): fhtest_a's second mount
    # is refused what the first one holds, and fhtest_b, with a mount of
    # their own, is refused nothing. About 6 MiB per open directory here.
    home_b = user_dir(env.mounts, env.b, "home_b")

    def mount(user, home, name):
        d = user_dir(env.mounts, user, os.path.basename(home) + "/" + name)
        backend = hostile(env, user, "--huge-reply", str(4 << 20), name=name,
                          home=home)
        res = env.ctl(user, "mount", backend.addr, d, "-o", "attr_timeout=0")
        assert res.returncode == 0, res
        track_mount(env.mounts, env.daemon, d)
        return d

    first = mount(env.a, env.home, "one")
    second = mount(env.a, env.home, "two")
    third = mount(env.b, home_b, "three")
    openers = []
    try:
        p, nomem = _open_many(env, first, 8)
        openers.append(p)
        assert nomem == 0, "the first mount was refused %d listings" % nomem
        p, nomem = _open_many(env, second, 8)
        openers.append(p)
        assert nomem > 0, "one user's two mounts held 16 big listings"
        p, nomem = _open_many(env, third, 8, user=env.b)
        openers.append(p)
        assert nomem == 0, "another user was refused %d listings" % nomem
    finally:
        for p in openers:
            p.kill()
            p.wait()


def test_open_directories_share_a_cached_listing(env):
    mnt, _ = _hostile_mount(env, "--huge-listing", str(4 << 20),
                            "--ttl-ms", "60000")
    run_cmd(["ls", "-f", mnt], user=env.a).check()  # now cached
    pid = env.daemon.proc.pid
    before = _rss_kib(pid)
    p, nomem = _open_many(env, mnt, 100)
    try:
        grown = (_rss_kib(pid) - before) // 1024
        assert nomem == 0
        assert grown < 64, "100 opens of one cached directory cost %d MiB" % (
            grown)
    finally:
        p.kill()
        p.wait()


def test_big_cached_listings_stay_within_the_cache_bound(env):
    # Sixty directories of about 5.5 MiB of listing each (4 MiB of 200-byte
    # names), all cacheable for a minute: held whole, 330 MiB of listings
    # alone. The cache keeps at most its bound (64 MiB) and evicts the rest;
    # the daemon's growth is that plus what the allocator keeps of the
    # replies it parsed (about 150 MiB in all, measured here).
    mnt, _ = _hostile_mount(env, "--huge-listing", str(4 << 20),
                            "--ttl-ms", "60000")
    pid = env.daemon.proc.pid
    before = _rss_kib(pid)
    for i in range(60):
        res = run_cmd(["ls", "-f", os.path.join(mnt, "dir%d" % i)],
                      user=env.a, timeout=120).check()
        assert len(res.stdout.split()) > 20000
    out = env.daemon.ctl("stats", mnt).check().stdout
    held = re.search(r"cache entries.*, (\d+) KiB \(limit (\d+) KiB\)", out)
    assert held, out
    assert int(held.group(1)) <= int(held.group(2)) == 64 * 1024, out
    grown = (_rss_kib(pid) - before) // 1024
    assert grown < 250, "the daemon grew by %d MiB" % grown
