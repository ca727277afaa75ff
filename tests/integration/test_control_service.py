"""fuse-hostd as a system service: configuration (and its errors),
static mounts, the sd_notify protocol (with a NOTIFY_SOCKET of the test's
own, no systemd needed), socket activation, recovery from a crash, stats,
the metrics endpoint, gRPC health checking, the mount(8)/fstab helper, the
install command and the systemd units."""

import os
import re
import shutil
import signal
import socket
import time
import urllib.request

import pytest

import fhlib
from fhcontrol import (Ctl, mount_options, refused, start_daemon,  # noqa: F401
                       track_mount, user_backend, user_bins, user_dir,
                       wait_unmounted)
from fhlib import is_mounted, run_cmd

pytestmark = pytest.mark.usefixtures("needs_daemon")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# --- configuration -------------------------------------------------------------------

@pytest.mark.parametrize("text,where,what", [
    ("users {\n  max_mounts: -1\n}\n", ":2:15: ", "Expected integer"),
    ("colour: \"blue\"\n", ":1:", "colour"),
    ("\n\ncontrol_socket: \"relative.sock\"\n", ":3:1: control_socket",
     "absolute"),
    ("metrics_address: \"localhost\"\n", ":1:1: metrics_address", "HOST:PORT"),
    ("mount {\n  backend: \"unix:/x\"\n  mountpoint: \"/m\"\n"
     "  options: \"timeout=soon\"\n}\n", ":4:3: options", "timeout"),
    ("mount { backend: \"unix:/x\" mountpoint: \"/m\" owner: \"no-such-user\" }",
     ":1:", "no user named"),
], ids=["syntax", "unknown-field", "relative-path", "bad-address",
        "bad-option", "unknown-owner"])
def test_bad_configuration_is_rejected_with_file_line_reason(
        mounts, bins, text, where, what):
    conf = write(mounts.path("bad.conf"), text)
    for extra in (["--check_config"], ["--control_socket=" +
                                       mounts.path("c.sock")]):
        res = run_cmd([bins.daemon, "--config=" + conf] + extra, timeout=20)
        assert res.returncode == 2, res
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert len(lines) == 1, res
        assert lines[0].startswith("fuse-hostd: " + conf + where), lines
        assert what in lines[0], lines
    assert not os.path.exists(mounts.path("c.sock"))


def test_configuration_files(mounts, bins):
    # An explicit file must exist; the shipped default file is valid.
    res = run_cmd([bins.daemon, "--config=" + mounts.path("missing.conf"),
                   "--check_config"])
    assert res.returncode == 2 and "cannot read" in res.stderr, res
    res = run_cmd([bins.daemon, "--config=" +
                   os.path.join(REPO, "packaging", "fuse-hostd.conf"),
                   "--check_config"]).check()
    assert "ok" in res.stdout


def test_static_mounts(mounts, users, user_bins):
    a = users.a
    root_backend = mounts.backend("memory")
    home = user_dir(mounts, a, "home_a")
    a_backend = user_backend(mounts, user_bins, a, home)
    m1 = mounts.mkdir("static1")
    m2 = user_dir(mounts, a, "home_a/static2")
    missing = mounts.mkdir("static3")
    d = start_daemon(mounts, """
mount { backend: "%s" mountpoint: "%s" options: "ro,allow_other" }
mount { backend: "%s" mountpoint: "%s" owner: "%s" }
mount {
  backend: "unix:%s"
  mountpoint: "%s"
}
""" % (root_backend.addr, m1, a_backend.addr, m2, a.name,
       mounts.path("nothing.sock"), missing))
    for m in (m1, m2):
        track_mount(mounts, d, m)
    assert "ro" in mount_options(m1) and "allow_other" in mount_options(m1)
    assert "user_id=%d" % a.uid in mount_options(m2)
    assert not is_mounted(missing)
    # (Line 5: the test's daemon config starts with its fuse_conf line.)
    assert re.search(r"static mount %s \(%s:5\) failed: .*unreachable" % (
        re.escape(missing), re.escape(d.config)), d.log_text()), d.log_text()
    # Static mounts are ordinary mounts: the owner manages theirs.
    Ctl(d, user_bins)(a, "unmount", m2).check()
    assert not is_mounted(m2)


# --- sd_notify, socket activation, crash recovery ------------------------------------

class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def close(self):
        self.sock.close()


def test_sd_notify_protocol(mounts):
    note = NotifySocket(mounts.path("notify.sock"))
    try:
        d = start_daemon(mounts, env={"NOTIFY_SOCKET": note.path,
                                      "WATCHDOG_USEC": "400000"})
        msgs = []
        while not any(m.startswith("READY=1") for m in msgs):
            m = note.next()
            assert m is not None, "no READY=1; got %r" % msgs
            msgs.append(m)
        ready = [m for m in msgs if m.startswith("READY=1")][0]
        assert re.match(r"READY=1\nSTATUS=serving on .*; 0 mounts$", ready), \
            ready
        # WatchdogSec: pings every half interval.
        t0 = time.monotonic()
        pings = 0
        while pings < 3:
            m = note.next()
            assert m is not None
            pings += m == "WATCHDOG=1"
        assert time.monotonic() - t0 < 3
        assert d.stop(signal.SIGTERM, timeout=15) == 0
        rest = []
        while True:
            m = note.next(timeout=1)
            if m is None:
                break
            rest.append(m)
        assert any(m.startswith("STOPPING=1\nSTATUS=") for m in rest), rest
    finally:
        note.close()


def test_socket_activation(mounts, users, user_bins):
    """systemd-socket-activate plays systemd: it owns the listening socket
    and starts the daemon with it as fd 3 (LISTEN_FDS=1)."""
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate is not installed")
    workdir = mounts.mkdir("activated")
    sock = os.path.join(workdir, "control.sock")
    proc = fhlib.spawn_logged(
        ["systemd-socket-activate", "-l", sock, mounts.bins.daemon,
         "--config=/dev/null", "--control_socket=" + sock],
        os.path.join(workdir, "daemon.log"))
    try:
        assert fhlib.wait_until(lambda: os.path.exists(sock), 10)
        os.chmod(sock, 0o666)  # what SocketMode=0666 does
        # The first connection starts the daemon.
        ctl = run_cmd([mounts.bins.hostctl, "--control_socket=" + sock,
                       "health"], timeout=30)
        assert ctl.returncode == 0 and ctl.stdout.strip() == "SERVING", ctl
        res = run_cmd([user_bins.hostctl, "--control_socket=" + sock, "list"],
                      user=users.a, timeout=30)
        assert res.returncode == 0, res
        text = open(os.path.join(workdir, "daemon.log")).read()
        assert "(socket from systemd)" in text, text
    finally:
        fhlib.stop_process(proc, timeout=15)
    # The socket belongs to systemd: the daemon did not remove it.
    assert os.path.exists(sock)


def test_stale_mounts_of_a_crashed_daemon_are_detached(mounts, users,
                                                       user_bins):
    a = users.a
    d = start_daemon(mounts)
    root_mnt = mounts.mount("memory", daemon=d).path
    home = user_dir(mounts, a, "home_a")
    backend = user_backend(mounts, user_bins, a, home)
    user_mnt = user_dir(mounts, a, "home_a/mnt")
    Ctl(d, user_bins)(a, "mount", backend.addr, user_mnt, "-o",
                      "subtype=custom,fsname=mine").check()
    track_mount(mounts, d, user_mnt)
    # A mount the daemon did not make, of a look-alike type: left alone.
    other = mounts.mount("memory", daemon=mounts.new_daemon())
    d.stop(signal.SIGKILL)
    assert is_mounted(root_mnt) and is_mounted(user_mnt)
    assert fhlib.is_err(mounts.ops().one(("stat", root_mnt + "/x")),
                        "ENOTCONN")
    d.restart()
    assert wait_unmounted(root_mnt) and wait_unmounted(user_mnt)
    text = d.log_text()
    for m in (root_mnt, user_mnt):
        assert "detached stale mount %s" % m in text, text
    assert is_mounted(other.path)
    # The daemon works normally afterwards.
    r = mounts.mount("memory", daemon=d)
    assert is_mounted(r.path)


def test_sigterm_unmounts_cleanly(mounts):
    d = start_daemon(mounts)
    ms = [mounts.mount("memory", daemon=d).path for _ in range(2)]
    assert d.stop(signal.SIGTERM, timeout=15) == 0
    for m in ms:
        assert not is_mounted(m)
    assert not os.path.exists(d.sock)
    assert "stopped" in d.log_text()


# --- observability ------------------------------------------------------------------------

def test_stats_and_list(mounts, users, user_bins):
    d = start_daemon(mounts)
    m = mounts.mount("memory", daemon=d)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"hello"), ("read_file", "f"), ("stat", "f"),
            ("stat", "f"), ("listdir", ".")])
    assert fhlib.is_err(ops.one(("stat", "missing")), "ENOENT")
    res = Ctl(d, user_bins)(users.root, "stats", m.path).check()
    out = res.stdout
    assert out.startswith("%s  (mount " % m.path), out
    assert "backend %s, owner root" % m.backend.addr in out
    stats = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 6 and f[1].isdigit():
            stats[f[0]] = f
    for op in ("lookup", "write", "read", "create"):
        assert op in stats, out
    assert int(stats["lookup"][2]) >= 1, out  # the failed lookup
    assert re.search(r"^\s+attr\s+\d+\s+\d+$", out, re.M), out
    assert re.search(r"backend\s+(\d+) messages, (\d+) ops "
                     r"\(\d+\.\d per message\), 0 errors", out), out
    req = int(re.search(r"kernel requests\s+(\d+)", out).group(1))
    assert req >= 6, out
    # "/" and "/f" at least; the default limit.
    cached = re.search(r"cache entries\s+(\d+) \(limit (\d+)\)", out)
    assert cached and int(cached.group(1)) >= 2, out
    assert int(cached.group(2)) == 1000000, out
    # 384 bytes per entry of the limit (MetadataCache::MaxBytesFor).
    held = re.search(r"cache entries.*, (\d+) KiB \(limit (\d+) KiB\)", out)
    assert held and int(held.group(1)) < int(held.group(2)) == 375000, out
    # All mounts: the same block for each.
    m2 = mounts.mount("memory", daemon=d)
    out = Ctl(d, user_bins)(users.root, "stats").check().stdout
    assert m.path in out and m2.path in out
    # Not a mount.
    refused(Ctl(d, user_bins)(users.root, "stats", mounts.path("")),
            "not mounted by fuse-hostd")


def test_metrics_endpoint(mounts, users, user_bins):
    port = fhlib.free_port()
    d = start_daemon(mounts, args=["--metrics_address=127.0.0.1:%d" % port])
    m = mounts.mount("memory", daemon=d)
    mounts.ops(cwd=m.path).ok([("write_file", "f", b"x"), ("read_file", "f")])
    url = "http://127.0.0.1:%d" % port
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    labels = 'mountpoint="%s",owner="0"' % m.path
    assert "fusehostd_mounts 1\n" in text, text
    assert re.search(r'^fusehostd_op_requests_total\{%s,op="write"\} [1-9]'
                     % re.escape(labels), text, re.M), text
    assert re.search(r'^fusehostd_op_latency_seconds\{%s,op="read",'
                     r'quantile="0.99"\} [0-9.e-]+$' % re.escape(labels),
                     text, re.M), text
    assert re.search(r'^fusehostd_backend_messages_total\{%s\} [1-9]'
                     % re.escape(labels), text, re.M), text
    assert "# TYPE fusehostd_cache_hits_total counter" in text
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "/", timeout=10)
    assert e.value.code == 404
    # Off by default.
    assert "metrics on" not in start_daemon(mounts).log_text()


def test_health_checking(mounts, users, user_bins):
    d = start_daemon(mounts)
    ctl = Ctl(d, user_bins)
    for u in (users.root, users.a):
        res = ctl(u, "health").check()
        assert res.stdout.strip() == "SERVING", res
    assert ctl(users.a, "health", "fusehost.v1.Control").check()\
        .stdout.strip() == "SERVING"
    refused(ctl(users.a, "health", "no.such.Service"), "")


def test_control_socket_is_open_to_every_user(mounts, users, user_bins):
    d = start_daemon(mounts)
    assert os.stat(d.sock).st_mode & 0o777 == 0o666
    d2 = start_daemon(mounts, "control_socket_mode: 0600")
    assert os.stat(d2.sock).st_mode & 0o777 == 0o600
    refused(Ctl(d2, user_bins)(users.a, "list"), "cannot reach fuse-hostd")


# --- mount(8), fstab, install ------------------------------------------------------------

@pytest.fixture
def mount_helper(bins):
    """mount.fuse.hostd installed where mount(8) looks (/sbin), for this
    test only; an existing one is put back afterwards."""
    dst = "/sbin/mount.fuse.hostd"
    backup = None
    if os.path.lexists(dst):
        backup = dst + ".fuse-hostd-test-backup"
        os.rename(dst, backup)
    shutil.copyfile(bins.helper, dst)
    os.chmod(dst, 0o755)
    yield dst
    os.unlink(dst)
    if backup:
        os.rename(backup, dst)


def test_mount_t_fuse_hostd_and_fstab(mounts, users, user_bins, mount_helper):
    d = start_daemon(mounts)
    b = mounts.backend("memory")
    mp = mounts.mkdir("via_mount")
    env = dict(fhlib.TOOL_ENV, FUSE_HOSTD_CONTROL_SOCKET=d.sock)
    res = run_cmd(["mount", "-t", "fuse.hostd", b.addr, mp, "-o",
                   "ro,allow_other,noatime"], env=env)
    assert res.returncode == 0, res
    track_mount(mounts, d, mp)
    entry = fhlib.mount_entry(mp)
    assert entry[2] == "fuse.hostd" and entry[0] == b.addr, entry
    assert {"ro", "allow_other", "noatime"} <= set(entry[3].split(","))
    assert mp in d.list().stdout
    # umount(8) works on it; the daemon notices.
    run_cmd(["umount", mp]).check()
    assert fhlib.wait_until(lambda: mp not in d.list().stdout, 10)

    # An fstab line: mount(8)'s own options are stripped, the control
    # socket can be named in the options.
    fstab = write(mounts.path("fstab"), "# test fstab\n%s %s fuse.hostd "
                  "noauto,nofail,x-systemd.automount,allow_other,"
                  "control_socket=%s 0 0\n" % (b.addr, mp, d.sock))
    res = run_cmd(["mount", "--fstab", fstab, mp])
    assert res.returncode == 0, res
    opts = mount_options(mp)
    assert "allow_other" in opts
    listed = [l for l in d.list().stdout.splitlines() if mp in l][0]
    assert "noauto" not in listed and "x-systemd" not in listed, listed
    run_cmd(["umount", mp]).check()

    # Refusals come through as one line and mount(8)'s failure status.
    res = run_cmd(["mount", "-t", "fuse.hostd", b.addr,
                   mounts.path("missing"), "-o", "control_socket=" + d.sock])
    assert res.returncode == 32, res
    assert "mount.fuse.hostd: mountpoint" in res.stderr, res
    # The helper acts with the caller's credentials: a user gets a user's
    # checks (root's owner-only backend socket is out of reach).
    a_mp = user_dir(mounts, users.a, "a_mp")
    res = run_cmd([user_bins.helper, b.addr, a_mp, "-o",
                   "control_socket=" + d.sock], user=users.a)
    assert res.returncode == 32, res
    assert "Permission denied" in res.stderr, res
    # -f (fake) does nothing.
    res = run_cmd([user_bins.helper, b.addr, a_mp, "-f"], user=users.a)
    assert res.returncode == 0 and not is_mounted(a_mp)


def test_install_command(mounts, bins):
    dest = mounts.mkdir("dest")
    res = run_cmd([os.path.join(REPO, "packaging", "install.sh"),
                   "--destdir=" + dest, "--prefix=/opt/fh", "--no-build"],
                  timeout=60)
    assert res.returncode == 0, res
    for f, mode in (("opt/fh/sbin/fuse-hostd", 0o755),
                    ("opt/fh/bin/fuse-hostctl", 0o755),
                    ("sbin/mount.fuse.hostd", 0o755),
                    ("etc/systemd/system/fuse-hostd.service", 0o644),
                    ("etc/systemd/system/fuse-hostd.socket", 0o644),
                    ("etc/fuse-hostd/fuse-hostd.conf", 0o644),
                    ("etc/fuse-hostd/config.proto", 0o644)):
        p = os.path.join(dest, f)
        assert os.path.isfile(p), f
        assert os.stat(p).st_mode & 0o777 == mode, f
    unit = open(os.path.join(dest, "etc/systemd/system/fuse-hostd.service"))\
        .read()
    assert "ExecStart=/opt/fh/sbin/fuse-hostd --config=" in unit
    assert "@SBINDIR@" not in unit
    # The installed configuration is valid; a second install keeps an
    # edited one.
    conf = os.path.join(dest, "etc/fuse-hostd/fuse-hostd.conf")
    run_cmd([bins.daemon, "--config=" + conf, "--check_config"]).check()
    write(conf, "# mine\n")
    run_cmd([os.path.join(REPO, "packaging", "install.sh"),
             "--destdir=" + dest, "--prefix=/opt/fh", "--no-build"]).check()
    assert open(conf).read() == "# mine\n"


def test_systemd_units_verify(mounts, bins):
    """systemd-analyze accepts the units (run against the built daemon)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = mounts.mkdir("units")
    with open(os.path.join(REPO, "packaging", "fuse-hostd.service.in")) as f:
        text = f.read()
    sbin = mounts.mkdir("sbin")
    shutil.copyfile(bins.daemon, os.path.join(sbin, "fuse-hostd"))
    os.chmod(os.path.join(sbin, "fuse-hostd"), 0o755)
    write(os.path.join(units, "fuse-hostd.service"),
          text.replace("@SBINDIR@", sbin))
    shutil.copyfile(os.path.join(REPO, "packaging", "fuse-hostd.socket"),
                    os.path.join(units, "fuse-hostd.socket"))
    # --man=no: whether the system has the manual page Documentation= names
    # (fusermount3(1); a minimal system has no man at all) says nothing
    # about the units.
    res = run_cmd(["systemd-analyze", "verify", "--man=no",
                   os.path.join(units, "fuse-hostd.socket"),
                   os.path.join(units, "fuse-hostd.service")], timeout=60)
    problems = [l for l in (res.stdout + res.stderr).splitlines()
                if "fuse-hostd" in l]
    assert res.returncode == 0 and not problems, res
    # The namespace-creating directives that would hide mounts stay off.
    for directive in ("PrivateMounts", "PrivateTmp", "ProtectSystem",
                      "ProtectHome", "PrivateDevices", "MountFlags",
                      "ProtectKernelTunables"):
        assert not re.search(r"^%s=" % directive, text, re.M), directive
    assert re.search(r"^Type=notify$", text, re.M)
    assert re.search(r"^WatchdogSec=", text, re.M)
