"""Loopback mounts whose backend the tests kill and restart on the same
socket: the C++ loopback_fs ("cpp") or examples/python/loopback.py serving
a socket ("python"). Used by test_backend_restart.py and
bench/faults.py.

Restarts go through a spawner process (spawner.py): a process that holds
files open on the mount must not fork and exec while the backend is down
(see there)."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import fhlib
from conftest import MountFactory

SDKS = ("cpp", "python")
HERE = os.path.dirname(os.path.abspath(__file__))


class RemoteProc:
    """A process started by the spawner, with the parts of Popen the
    fixtures use; watched through a pidfd (its exit status is not known).
    A pidfd turns readable once every thread of the process has exited, and
    so has closed its descriptors: a killed backend's connections are gone
    by then (its main thread may be a zombie well before)."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None
            self.returncode = -1

    def poll(self):
        return self.wait(0) if self.returncode is None else self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            p = select.poll()
            p.register(self._pidfd, select.POLLIN)
            if not p.poll(None if timeout is None else int(timeout * 1000)):
                if timeout == 0:
                    return None
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            os.close(self._pidfd)
            self.returncode = -1
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class Spawner:
    """Client of spawner.py. Start it before opening files on a mount."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "spawner.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def spawn(self, args, log, env=None):
        return RemoteProc(self._ask({"spawn": args, "log": log, "cwd": "/",
                                     "env": env or dict(os.environ)})["pid"])

    def run(self, args):
        return self._ask({"run": args})["stdout"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def loopback_mount(factory, sdk, options="allow_other,passthrough=off"):
    """A loopback mount made with fuse-hostctl, whose backend serves a Unix
    socket. Its data is forwarded (passthrough=off): with passthrough the
    kernel reads and writes the very file an open got, whatever happens to
    the backend, and these tests are about what the daemon does for
    forwarded operations (test_trust_boundaries.py covers passthrough
    across a restart)."""
    if sdk == "cpp":
        return MountFactory.mount(factory, "loopback", options=options)
    root = factory.mkdir("backing_py")
    sock = factory.path("pyloop.sock")
    p = factory.python(factory.example("loopback.py", root, "--listen",
                                       "unix:" + sock),
                       listen=sock, name="pyloop")
    p.root = root
    return factory.mount_backend(p, options)


def stop_backend(m):
    """SIGSTOP, and waits until every thread of the backend has stopped (a
    thread busy when the signal comes may first finish what it does)."""
    m.backend.signal(signal.SIGSTOP)
    task = "/proc/%d/task" % m.backend.proc.pid

    def stopped():
        for t in os.listdir(task):
            try:
                with open("%s/%s/stat" % (task, t)) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] not in "tT":
                        return False
            except OSError:
                pass  # a thread that ended meanwhile
        return True
    wait_for(stopped, 10, "the backend to stop")


def kill_backend(m):
    """SIGKILL, and waits until the process is gone (a stopped one too)."""
    m.backend.proc.send_signal(signal.SIGKILL)
    m.backend.proc.wait(timeout=10)


def start_backend(m, spawner, timeout=30):
    """Starts the mount's backend again, on the same socket."""
    b = m.backend
    b.proc = spawner.spawn(b.command(), b.log, getattr(b, "env", None))
    if not fhlib.wait_ready(b.proc, lambda: fhlib.socket_connectable(b.sock),
                            timeout):
        raise AssertionError("backend did not come back:\n" +
                             fhlib.tail(b.log))


def restart_backend(m, spawner):
    """Kills the backend and starts it again; returns how long it was away."""
    t0 = time.monotonic()
    kill_backend(m)
    start_backend(m, spawner)
    return time.monotonic() - t0


def backend_receive_queue(spawner, sock):
    """Bytes waiting unread at the backend's ends of its connections on
    Unix socket `sock` (ss -x: the accepted side carries the socket's
    path): what was sent to a stopped backend."""
    total = 0
    out = spawner.run(["ss", "-xH", "state", "established"])
    for line in out.splitlines():
        fields = line.split()
        # Netid Recv-Q Send-Q Local-Address Port Peer-Address Port
        if len(fields) >= 4 and fields[3] == sock:
            total += int(fields[1])
    return total


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)
