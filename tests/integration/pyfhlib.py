"""Helpers and fixtures for the tests of the Python SDK (fusehost) and the
Python examples (examples/python/).

The package is the one `bazel build //...` assembles in
$FUSE_HOSTD_BIN_DIR/client/python (default <repo>/bazel-bin/client/python).
Python filesystems run as separate processes under Debian's Python, either
mounting themselves with fusehost.FUSE() against the session's daemon
(FUSE_HOSTD_CONTROL_SOCKET points them at it) or serving a socket for
`fuse-hostctl mount` (fusehost.serve()). Both kinds are Backend objects of
the MountFactory, so its teardown stops them and unmounts, also after a
failure.

Import the fixtures into a test module: `from pyfhlib import py_mounts`.
"""

import os
import signal
import subprocess
import sys

import pytest

import fhlib
from conftest import NATIVE, REPO, Backend, Mount, MountFactory
from fhlib import SYS_PYTHON, TOOL_ENV, is_mounted

EXAMPLES = os.path.join(REPO, "examples", "python")


def package_dir():
    return os.path.join(os.environ.get(
        "FUSE_HOSTD_BIN_DIR", os.path.join(REPO, "bazel-bin")),
        "client", "python")


def import_fusehost():
    """Imports the built package into this (pytest's) process."""
    d = package_dir()
    if not os.path.isfile(os.path.join(d, "fusehost", "filesystem_pb2.py")):
        pytest.fail("the fusehost package is not built (run `bazel build "
                    "//...`): %s" % d, pytrace=False)
    if d not in sys.path:
        sys.path.insert(0, d)
    import fusehost
    return fusehost


def python_env(daemon=None, extra=None):
    env = dict(TOOL_ENV)
    env["PYTHONPATH"] = package_dir()
    env["PYTHONUNBUFFERED"] = "1"
    if daemon is not None:
        env["FUSE_HOSTD_CONTROL_SOCKET"] = daemon.sock
    env.update(extra or {})
    return env


class PyProcess(Backend):
    """A Python filesystem process. With `mountpoint` it mounts itself
    (FUSE()) and is up once the mount is there; with `listen` it serves
    that socket (serve()) for the daemon to mount."""

    def __init__(self, bins, workdir, name, args, daemon=None,
                 mountpoint=None, listen=None, env=None, prefix=None):
        super().__init__(bins, "python", workdir, name)
        self.args = list(args)
        self.daemon = daemon
        self.mountpoint = mountpoint
        if listen:
            self.sock = listen
            self.addr = "unix:" + listen
        self.listen = listen
        self.env = python_env(daemon, env)
        self.prefix = prefix or []

    def command(self):
        return self.prefix + [SYS_PYTHON] + self.args

    def start(self, timeout=30):
        self.proc = fhlib.spawn_logged(self.command(), self.log, cwd="/",
                                       env=self.env)

        def up():
            if self.mountpoint is not None and is_mounted(self.mountpoint):
                return True
            return bool(self.listen) and fhlib.socket_connectable(self.listen)
        if fhlib.wait_ready(self.proc, up, timeout):
            return self
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (
                self.args, self.proc.returncode, fhlib.tail(self.log)))
        raise AssertionError("%s did not come up within %ss:\n%s" % (
            self.args, timeout, fhlib.tail(self.log)))

    def wait(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self):
        return fhlib.tail(self.log, max_bytes=20000)


class PyMountFactory(MountFactory):
    """MountFactory whose mount() runs a Python example that mounts itself
    with FUSE(); kind "memory" or "loopback" (the semantics the checks of
    test_ops_*.py expect), or any script in examples/python."""

    def python(self, args, mountpoint=None, listen=None, env=None,
               name="py", prefix=None, daemon=None, start=True):
        self._n += 1
        p = PyProcess(self.bins, self.dir, "%s%d" % (name, self._n), args,
                      daemon or self.daemon, mountpoint, listen, env, prefix)
        self.backends.append(p)
        return p.start() if start else p

    def example(self, script, *args, **kw):
        return [os.path.join(EXAMPLES, script)] + list(args)

    def mount_backend(self, backend, options="allow_other"):
        """Mounts a serve()-ing PyProcess with fuse-hostctl."""
        return MountFactory.mount(self, options=options, backend=backend)

    def mount(self, kind="memory", options="allow_other", backend=None,
              daemon=None, root=None):
        mp = self.mountpoint()
        if kind == "loopback":
            root = root or self.mkdir("backing%d" % self._n)
            args = self.example("loopback.py", root, mp)
        else:
            args = self.example(kind + ".py", mp)
        if options:
            args += ["-o", options]
        p = self.python(args, mountpoint=mp, name="py" + kind, daemon=daemon)
        p.root = root
        m = Mount(daemon or self.daemon, p, mp, options)
        self.mounts.append(m)
        return m


@pytest.fixture
def py_mounts(request, bins, daemon, session_tmp, runner_path, users):
    if NATIVE:
        pytest.skip("the Python examples need the daemon")
    import_fusehost()
    from conftest import _test_failed
    f = PyMountFactory(bins, daemon, session_tmp, runner_path, users)
    yield f
    f.cleanup(_test_failed(request))


def stop_gently(proc, sig=signal.SIGTERM, timeout=20):
    """Signals a PyProcess; returns its exit code (None: had to kill)."""
    proc.proc.send_signal(sig)
    code = proc.wait(timeout)
    if code is None:
        proc.stop()
    return code
