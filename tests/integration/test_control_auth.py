"""Who may do what through the control socket, tested against the real
daemon as real unprivileged users (fhtest_a, fhtest_b): each refusal path
and each allowed path of mounting, unmounting, listing and inspecting;
backend ownership and impersonation; option filtering; mount limits."""

import os
import signal

import pytest

import fhlib
from fhcontrol import (Ctl, mount_options, refused, start_daemon,  # noqa: F401
                       track_mount, user_backend, user_bins, user_dir,
                       wait_unmounted)
from fhlib import is_mounted, run_cmd

pytestmark = pytest.mark.usefixtures("needs_daemon")


@pytest.fixture
def env(mounts, users, user_bins):
    """A daemon of its own (fuse.conf under the test's control), fhtest_a's
    home with a running backend of theirs and a mountpoint."""
    d = start_daemon(mounts)
    a = users.a
    home = user_dir(mounts, a, "home_a")
    e = type("Env", (), {})()
    e.daemon = d
    e.ctl = Ctl(d, user_bins)
    e.a, e.b, e.root = a, users.b, users.root
    e.home = home
    e.backend = user_backend(mounts, user_bins, a, home)
    e.mnt = user_dir(mounts, a, "home_a/mnt")
    e.mounts = mounts
    e.user_bins = user_bins
    return e


def ops_as(mounts, user, cwd):
    return mounts.ops(user, cwd)


# --- the allowed path ----------------------------------------------------------------

def test_user_mounts_own_backend_on_own_directory(env):
    res = env.ctl(env.a, "mount", env.backend.addr, env.mnt)
    assert res.returncode == 0, res
    track_mount(env.mounts, env.daemon, env.mnt)
    opts = mount_options(env.mnt)
    # The mount belongs to the requester, and is nosuid,nodev.
    assert "user_id=%d" % env.a.uid in opts, opts
    assert "group_id=%d" % env.a.gid in opts, opts
    assert "nosuid" in opts and "nodev" in opts, opts
    assert "allow_other" not in opts
    r = ops_as(env.mounts, env.a, env.mnt).ok([
        ("write_file", "f", b"mine"), ("read_file", "f"), ("stat", "f")])
    assert r[1] == b"mine"
    assert r[2]["uid"] == env.a.uid
    # Without allow_other, nobody else gets in: not b, not even root.
    assert fhlib.is_err(ops_as(env.mounts, env.b, "/").one(
        ("stat", env.mnt + "/f")), "EACCES")

    # The owner sees it in list (owner name, backend, options, state)...
    res = env.ctl(env.a, "list").check()
    line = [l for l in res.stdout.splitlines() if env.mnt in l]
    assert len(line) == 1, res
    fields = line[0].split()
    assert fields[:4] == [env.mnt, env.backend.addr, env.a.name, "mounted"], \
        fields
    assert "nosuid,nodev" in fields[4]
    # ...root sees it too, another user does not.
    assert env.mnt in env.ctl(env.root, "list").check().stdout
    assert env.mnt not in env.ctl(env.b, "list").check().stdout

    # Relative paths are the caller's.
    res = run_cmd(["sh", "-c", "cd %s && %s --control_socket=%s unmount mnt"
                   % (env.home, env.ctl.bin, env.daemon.sock)], user=env.a)
    assert res.returncode == 0, res
    assert not is_mounted(env.mnt)
    log = env.daemon.log_text()
    assert "audit: uid=%d(%s)" % (env.a.uid, env.a.name) in log
    assert "mount %s at %s: allowed" % (env.backend.addr, env.mnt) in log
    assert "unmount %s: allowed" % env.mnt in log


def test_user_mount_survives_backend_restart(env):
    # A backend that is away costs callers the mount's timeout.
    env.ctl(env.a, "mount", "-o", "timeout=2", env.backend.addr,
            env.mnt).check()
    track_mount(env.mounts, env.daemon, env.mnt)
    ops = ops_as(env.mounts, env.a, env.mnt)
    ops.ok([("write_file", "f", b"1")])
    env.backend.stop()
    assert fhlib.is_err(ops.one(("stat", "g")), "ENOTCONN", "EIO")
    env.backend.start()
    # Through the relay, reconnection works as for root's mounts.
    assert fhlib.wait_until(
        lambda: not fhlib.is_err(ops.one(("write_file", "g", b"2"))), 10)
    assert ops.one(("read_file", "g")) == b"2"


# --- mountpoints ----------------------------------------------------------------------

def test_mountpoint_refusals(env):
    d, a, b = env.daemon, env.a, env.b
    ctl = env.ctl
    addr = env.backend.addr
    # Someone else's directory, even a world-writable one.
    roots = env.mounts.mkdir("roots_dir", 0o777)
    refused(ctl(a, "mount", addr, roots), "not owned by you", daemon=d, user=a)
    # A symlink of a's own pointing there: judged by where it leads.
    link = os.path.join(env.home, "link")
    os.symlink(roots, link)
    refused(ctl(a, "mount", addr, link), "not owned by you", daemon=d, user=a)
    # b's directory behind b's private home: a cannot even get there.
    user_dir(env.mounts, b, "home_b", 0o700)
    b_dir = user_dir(env.mounts, b, "home_b/dir", 0o777)
    refused(ctl(a, "mount", addr, b_dir), "Permission denied", daemon=d,
            user=a)
    # a's own directory without write permission.
    ro = user_dir(env.mounts, a, "home_a/ro", 0o555)
    refused(ctl(a, "mount", addr, ro), "may not write", daemon=d, user=a)
    # Missing, and not a directory.
    refused(ctl(a, "mount", addr, env.home + "/missing"),
            "No such file or directory", daemon=d, user=a)
    with open(env.home + "/file", "w"):
        pass
    refused(ctl(a, "mount", addr, env.home + "/file"), "Not a directory",
            daemon=d, user=a)
    # Already mounted.
    ctl(a, "mount", addr, env.mnt).check()
    track_mount(env.mounts, d, env.mnt)
    refused(ctl(a, "mount", addr, env.mnt), "already a fuse-hostd mount",
            daemon=d, user=a)


def test_sticky_directory_of_someone_else(mounts, users, user_bins):
    # fusermount3's own rule (write access suffices) is configurable; the
    # sticky rule holds either way.
    d = start_daemon(mounts, "users { require_mountpoint_owner: false }")
    a = users.a
    home = user_dir(mounts, a, "home_a")
    backend = user_backend(mounts, user_bins, a, home)
    ctl = Ctl(d, user_bins)
    sticky = mounts.mkdir("sticky", 0o1777)
    refused(ctl(a, "mount", backend.addr, sticky), "sticky directory",
            daemon=d, user=a)
    shared = mounts.mkdir("shared", 0o777)
    ctl(a, "mount", backend.addr, shared).check()
    track_mount(mounts, d, shared)
    assert "user_id=%d" % a.uid in mount_options(shared)


# --- options --------------------------------------------------------------------------

def test_option_filtering(env):
    d, a, ctl, addr, mnt = env.daemon, env.a, env.ctl, env.backend.addr, env.mnt
    for opt, why in (("suid", "always nosuid,nodev"),
                     ("dev", "always nosuid,nodev"),
                     ("user_id=0", "sets it itself"),
                     ("group_id=0", "sets it itself"),
                     ("rootmode=40000", "sets it itself"),
                     ("allow_root", "kernel option"),
                     ("blkdev", "kernel option")):
        refused(ctl(a, "mount", addr, mnt, "-o", opt),
                "option %s is not allowed" % opt.split("=")[0], why,
                daemon=d, user=a)
    refused(ctl(a, "mount", addr, mnt, "-o", "allow_other"),
            "option allow_other is not allowed",
            "%s has no user_allow_other" % d.fuse_conf, daemon=d, user=a)
    assert not is_mounted(mnt)
    # Safe options are honoured; nosuid,nodev are always added.
    ctl(a, "mount", addr, mnt, "-o", "ro,noexec,fsname=mine,attr_timeout=0")\
        .check()
    track_mount(env.mounts, d, mnt)
    entry = fhlib.mount_entry(mnt)
    assert entry[0] == "mine", entry
    opts = entry[3].split(",")
    for o in ("ro", "noexec", "nosuid", "nodev"):
        assert o in opts, opts
    ctl(a, "unmount", mnt).check()


def test_allow_other_with_user_allow_other(env):
    env.daemon.set_fuse_conf("user_allow_other\n")
    env.ctl(env.a, "mount", env.backend.addr, env.mnt, "-o", "allow_other")\
        .check()
    track_mount(env.mounts, env.daemon, env.mnt)
    assert "allow_other" in mount_options(env.mnt)
    ops_as(env.mounts, env.a, env.mnt).ok([("write_file", "f", b"x"),
                                           ("chmod", "f", 0o644)])
    assert ops_as(env.mounts, env.b, "/").one(
        ("read_file", env.mnt + "/f")) == b"x"


def test_allow_other_forbidden_by_configuration(mounts, users, user_bins):
    d = start_daemon(mounts, "users { allow_other: NEVER }")
    d.set_fuse_conf("user_allow_other\n")
    a = users.a
    home = user_dir(mounts, a, "home_a")
    backend = user_backend(mounts, user_bins, a, home)
    mnt = user_dir(mounts, a, "home_a/mnt")
    refused(Ctl(d, user_bins)(a, "mount", backend.addr, mnt, "-o",
                              "allow_other"),
            "configuration forbids it", daemon=d, user=a)


# --- backends -------------------------------------------------------------------------

def test_backend_of_another_user_is_refused(env, mounts, user_bins):
    d, a, b, ctl = env.daemon, env.a, env.b, env.ctl
    b_home = user_dir(mounts, b, "home_b", 0o755)
    # b's backend, owner-only as the SDK makes it: a cannot reach it.
    b_private = user_backend(mounts, user_bins, b, b_home, "private")
    refused(ctl(a, "mount", b_private.addr, env.mnt), "Permission denied",
            daemon=d, user=a)
    # b's backend open to everyone: reachable, but not a's.
    b_open = user_backend(mounts, user_bins, b, b_home, "open",
                          socket_mode=0o666)
    refused(ctl(a, "mount", b_open.addr, env.mnt),
            "does not run as you", "uid=%d(%s)" % (b.uid, b.name),
            daemon=d, user=a)
    # A symlink of a's own to it changes nothing.
    link = os.path.join(env.home, "b.sock")
    os.symlink(b_open.sock, link)
    refused(ctl(a, "mount", "unix:" + link, env.mnt), "does not run as you",
            daemon=d, user=a)
    # Root's backends are not a's either.
    root_backend = mounts.backend("memory")
    os.chmod(root_backend.sock, 0o666)
    refused(ctl(a, "mount", root_backend.addr, env.mnt),
            "does not run as you", "uid=0(root)", daemon=d, user=a)
    # And root may mount anyone's backend.
    env.ctl(env.root, "mount", b_open.addr, env.mnt).check()
    track_mount(mounts, d, env.mnt)


def test_backend_swapped_after_mount_is_never_reached(env, mounts, user_bins):
    """a mounts their own backend, stops it and puts a symlink to b's
    (world-connectable) socket in its place. The daemon reconnects as a,
    checks who answers, and refuses b's process: a never sees b's files."""
    d, a, b = env.daemon, env.a, env.b
    env.ctl(a, "mount", env.backend.addr, env.mnt).check()
    track_mount(mounts, d, env.mnt)
    ops = ops_as(mounts, a, env.mnt)
    ops.ok([("write_file", "a_file", b"a")])
    b_home = user_dir(mounts, b, "home_b", 0o755)
    b_open = user_backend(mounts, user_bins, b, b_home, "open",
                          socket_mode=0o666)
    env.backend.stop()
    if os.path.lexists(env.backend.sock):
        os.unlink(env.backend.sock)
    os.symlink(b_open.sock, env.backend.sock)
    for _ in range(3):
        # An open always reaches the backend (a stat may be answered from
        # the daemon's cache, which only holds what a's backend said).
        r = ops.one(("read_file", "a_file"))
        assert fhlib.is_err(r, "ENOTCONN", "EIO", "ETIMEDOUT"), r
    # The daemon dials when the mount needs the backend: keep asking.
    def refused():
        assert fhlib.is_err(ops.one(("read_file", "a_file")), "ENOTCONN",
                            "EIO", "ETIMEDOUT")
        return "refusing connection to backend" in d.log_text()
    assert fhlib.wait_until(refused, 15), fhlib.tail(d.log)
    # a's own backend back in place: the mount works again.
    os.unlink(env.backend.sock)
    env.backend.start()
    assert fhlib.wait_until(
        lambda: not fhlib.is_err(ops.one(("write_file", "again", b"2"))), 10)


def test_tcp_backends(mounts, users, user_bins):
    a = users.a
    port = fhlib.free_port()
    d = start_daemon(mounts)
    mnt = user_dir(mounts, a, "mnt_a")
    refused(Ctl(d, user_bins)(a, "mount", "127.0.0.1:%d" % port, mnt),
            "not a Unix socket", daemon=d, user=a)
    d2 = start_daemon(mounts, "users { allow_tcp_backends: true }")
    # Allowed now, but plain TCP only when asked for by name, and for users
    # only when the configuration allows that too (TLS: test_tls.py).
    refused(Ctl(d2, user_bins)(a, "mount", "127.0.0.1:%d" % port, mnt),
            "reached over TCP", "insecure", daemon=d2, user=a)
    refused(Ctl(d2, user_bins)(a, "mount", "127.0.0.1:%d" % port, mnt,
                               "-o", "insecure"),
            "plain TCP", "not allowed", daemon=d2, user=a)
    d3 = start_daemon(mounts, "users { allow_tcp_backends: true "
                      "allow_insecure_tcp_backends: true }")
    # Nothing listens there, so the backend is unreachable.
    refused(Ctl(d3, user_bins)(a, "mount", "127.0.0.1:%d" % port, mnt,
                               "-o", "insecure"),
            "unreachable", daemon=d3, user=a)


# --- other users' mounts -------------------------------------------------------------

def test_others_cannot_unmount_or_inspect(env, mounts):
    d, a, b, ctl = env.daemon, env.a, env.b, env.ctl
    ctl(a, "mount", env.backend.addr, env.mnt).check()
    track_mount(mounts, d, env.mnt)
    refused(ctl(b, "unmount", env.mnt), "not your mount", daemon=d, user=b)
    refused(ctl(b, "unmount", "--lazy", env.mnt), "not your mount", daemon=d,
            user=b)
    refused(ctl(b, "stats", env.mnt), "not your mount", daemon=d, user=b)
    assert env.mnt not in ctl(b, "stats").check().stdout
    assert is_mounted(env.mnt)
    # The owner may inspect it, and root may unmount it.
    assert env.mnt in ctl(a, "stats", env.mnt).check().stdout
    ctl(env.root, "unmount", env.mnt).check()
    assert not is_mounted(env.mnt)


def test_unmount_cannot_be_redirected_by_a_symlink(env, mounts, user_bins):
    """a renames a directory above their mount and puts a symlink to b's
    directory in its place, then asks to unmount the old path: that names
    b's mount now, which a may not unmount."""
    d, a, b, ctl = env.daemon, env.a, env.b, env.ctl
    b_home = user_dir(mounts, b, "home_b", 0o755)
    b_backend = user_backend(mounts, user_bins, b, b_home)
    b_mnt = user_dir(mounts, b, "home_b/mnt")
    ctl(b, "mount", b_backend.addr, b_mnt).check()
    track_mount(mounts, d, b_mnt)
    sub = user_dir(mounts, a, "home_a/sub")
    a_mnt = user_dir(mounts, a, "home_a/sub/mnt")
    ctl(a, "mount", env.backend.addr, a_mnt).check()
    os.rename(sub, sub + ".moved")
    track_mount(mounts, d, sub + ".moved/mnt")
    os.symlink(b_home, sub)
    refused(ctl(a, "unmount", a_mnt), "not your mount", daemon=d, user=a)
    assert is_mounted(b_mnt)


# --- limits ---------------------------------------------------------------------------

def test_mount_limits(mounts, users, user_bins):
    d = start_daemon(mounts, "users { max_mounts_per_user: 2 max_mounts: 3 }")
    ctl = Ctl(d, user_bins)
    a, b = users.a, users.b
    homes = {}
    for u in (a, b):
        h = user_dir(mounts, u, "home_" + u.name)
        homes[u.name] = (h, user_backend(mounts, user_bins, u, h))

    made = {}

    def mnt(u, i):
        key = (u.name, i)
        if key not in made:
            made[key] = user_dir(mounts, u, "home_%s/m%d" % (u.name, i))
        return made[key]

    h, ba = homes[a.name]
    for i in range(2):
        p = mnt(a, i)
        ctl(a, "mount", ba.addr, p).check()
        track_mount(mounts, d, p)
    res = ctl(a, "mount", ba.addr, mnt(a, 2))
    refused(res, "you already have 2 mounts", daemon=d, user=a)
    h, bb = homes[b.name]
    p = mnt(b, 0)
    ctl(b, "mount", bb.addr, p).check()
    track_mount(mounts, d, p)
    refused(ctl(b, "mount", bb.addr, mnt(b, 1)), "too many user mounts",
            daemon=d, user=b)
    # Root is not counted and not limited.
    rb = mounts.backend("memory")
    p = mounts.mkdir("root_mnt")
    ctl(users.root, "mount", rb.addr, p).check()
    track_mount(mounts, d, p)
    # Unmounting frees a slot.
    ctl(a, "unmount", mnt(a, 0)).check()
    p = mnt(a, 3)
    ctl(a, "mount", ba.addr, p).check()
    track_mount(mounts, d, p)


def test_fuse_conf_mount_max(mounts, users, user_bins):
    d = start_daemon(mounts)
    d.set_fuse_conf("mount_max = 1\n")
    ctl = Ctl(d, user_bins)
    a = users.a
    home = user_dir(mounts, a, "home_a")
    backend = user_backend(mounts, user_bins, a, home)
    m1, m2 = user_dir(mounts, a, "home_a/m1"), user_dir(mounts, a, "home_a/m2")
    ctl(a, "mount", backend.addr, m1).check()
    track_mount(mounts, d, m1)
    refused(ctl(a, "mount", backend.addr, m2), "too many user mounts",
            "mount_max", daemon=d, user=a)


def test_no_daemon_and_usage_errors(mounts, users, user_bins):
    ctl = user_bins.hostctl
    res = run_cmd([ctl, "--control_socket=" + mounts.path("none.sock"),
                   "list"], user=users.a)
    refused(res, "fuse-hostd is not running")
    res = run_cmd([ctl, "stats", "a", "b"], user=users.a)
    assert res.returncode == 2, res


def test_sigterm_unmounts_user_mounts(env):
    env.ctl(env.a, "mount", env.backend.addr, env.mnt).check()
    assert env.daemon.stop(signal.SIGTERM, timeout=15) == 0
    assert wait_unmounted(env.mnt)
