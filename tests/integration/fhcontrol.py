"""Helpers for the control-plane tests (test_control_*.py): daemons with a
configuration of their own, backends run as a test user, fuse-hostctl run as
a user, and the refusal contract (one line, non-zero exit, an audit line).

Builds on conftest.py's Daemon, Backend and MountFactory (`mounts`), so the
factory's teardown stops every daemon and backend and unmounts every mount
these helpers create, also when a test fails.
"""

import os
import shutil
import types

import pytest

import conftest
import fhlib
from fhlib import run_cmd


# --- binaries users can run -----------------------------------------------------

@pytest.fixture(scope="session")
def user_bins(bins, session_tmp):
    """fuse-hostctl, mount.fuse.hostd and memory_fs copied where the test
    users can execute them (bazel-bin lives under root's 0700 home)."""
    d = os.path.join(session_tmp, "ubin")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    out = {}
    for key, src in (("hostctl", bins.hostctl),
                     ("helper", bins.helper),
                     ("memory", bins.memory)):
        dst = os.path.join(d, os.path.basename(src))
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)
        out[key] = dst
    return types.SimpleNamespace(**out)


# --- daemons with a configuration ------------------------------------------------

class ConfiguredDaemon(conftest.Daemon):
    """A fuse-hostd started with --config (and extra flags/environment), by
    way of a small wrapper script that execs it (so the pid is the
    daemon's). Its fuse.conf is a file of its own, `fuse_conf`."""

    def __init__(self, bins, workdir, config="", args=(), env=None):
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.fuse_conf = os.path.join(workdir, "fuse.conf")
        self.set_fuse_conf("")
        self.config = os.path.join(workdir, "fuse-hostd.conf")
        with open(self.config, "w") as f:
            f.write('fuse_conf: "%s"\n%s\n' % (self.fuse_conf, config))
        wrapper = os.path.join(workdir, "run-daemon.sh")
        env_args = " ".join("%s='%s'" % kv for kv in (env or {}).items())
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec env %s '%s' --config='%s' %s \"$@\"\n" % (
                env_args, bins.daemon, self.config,
                " ".join("'%s'" % a for a in args)))
        os.chmod(wrapper, 0o755)
        proxy = types.SimpleNamespace(**vars(bins))
        proxy.daemon = wrapper
        super().__init__(proxy, workdir)

    def set_fuse_conf(self, text):
        with open(self.fuse_conf, "w") as f:
            f.write(text)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def start_daemon(mounts, config="", args=(), env=None):
    """A ConfiguredDaemon in the test's directory, stopped at teardown."""
    mounts._n += 1
    d = ConfiguredDaemon(mounts.bins, mounts.path("cdaemon%d" % mounts._n),
                         config, args, env)
    mounts.daemons.append(d)
    return d.start()


# --- users, their directories, backends and commands ------------------------------

def user_dir(mounts, user, name, mode=0o755):
    """A directory owned by `user` in the test's directory."""
    p = mounts.mkdir(name, mode)
    os.chown(p, user.uid, user.gid)
    return p


def user_backend(mounts, user_bins, user, home, name="fs", socket_mode=None):
    """memory_fs run as `user`, listening on HOME/NAME.sock (owner-only, as
    the SDK makes it, unless `socket_mode`)."""
    b = conftest.Backend(types.SimpleNamespace(memory=user_bins.memory),
                         "memory", home, name)
    plain = b.command
    b.command = lambda: user.prefix() + plain()
    mounts.backends.append(b)
    b.start()
    if socket_mode is not None:
        # The SDK sets the socket's mode itself once the server is up, which
        # may be after the socket accepts connections: wait for the line it
        # prints after that, or its chmod could undo this one.
        assert fhlib.wait_until(
            lambda: "serving on" in fhlib.tail(b.log), 20), fhlib.tail(b.log)
        os.chmod(b.sock, socket_mode)
    return b


class Ctl:
    """fuse-hostctl for one daemon, run as any user."""

    def __init__(self, daemon, user_bins):
        self.daemon = daemon
        self.bin = user_bins.hostctl

    def __call__(self, user, *args, timeout=30):
        return run_cmd([self.bin, "--control_socket=" + self.daemon.sock]
                       + list(args), timeout=timeout, user=user)


def track_mount(mounts, daemon, path):
    """Has the factory unmount `path` at teardown."""
    mounts.mounts.append(conftest.Mount(daemon, None, path, ""))


def mount_options(path):
    entry = fhlib.mount_entry(path)
    assert entry is not None, "%s is not mounted" % path
    return entry[3].split(",")


def refused(res, *words, daemon=None, user=None):
    """The refusal contract: non-zero exit, exactly one line on stderr that
    contains `words`; with `daemon`, an audit line naming the user (uid) and
    the same reason. Returns the line."""
    assert res.returncode != 0, "expected a refusal: %r" % (res,)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one error line: %r" % (res,)
    line = lines[0]
    for w in words:
        assert w in line, "%r not in %r" % (w, line)
    if daemon is not None:
        reason = line.split(": ", 1)[1]
        want = "uid=%d(" % user.uid if user is not None else "audit:"

        def audited():
            return any("audit:" in l and want in l and "refused: " + reason in l
                       for l in daemon.log_text().splitlines())
        assert fhlib.wait_until(audited, 5), \
            "no audit line for %r by %s in:\n%s" % (
                reason, want, fhlib.tail(daemon.log))
    return line


def wait_unmounted(path, timeout=5):
    return fhlib.wait_until(lambda: not fhlib.is_mounted(path), timeout)
