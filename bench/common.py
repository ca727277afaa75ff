"""What every part of the benchmark uses: paths, logging, running commands,
waiting, /proc, and the record of everything started or mounted (RES), which
tears it all down exactly once, whatever happens.

Starting and stopping processes, mount state, free ports and where the
binaries are come from tests/integration/fhlib.py, shared with the
integration tests.
"""

import os
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
PY = '/usr/bin/python3'  # Debian's modules (fusepy) import here
# The name the relay rows' TLS server certificate carries.
TLS_NAME = 'backend.bench'
MiB = 1 << 20

# The integration tests' helpers are not a package; they are imported by path.
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import fhlib  # noqa: E402
from fhlib import free_port, is_mounted  # noqa: E402,F401

T0 = time.monotonic()


def log(msg):
    print('[%7.1fs] %s' % (time.monotonic() - T0, msg), file=sys.stderr,
          flush=True)


def run(cmd, check=True, **kw):
    """Runs cmd to the end (stdout and stderr captured unless given);
    raises RuntimeError with the end of stderr if it fails and `check`."""
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (
            ' '.join(map(str, cmd)), r.returncode,
            (r.stderr or b'').decode(errors='replace').strip()[-600:]))
    return r


def wait_for(pred, timeout, what, proc=None):
    """Returns once pred() holds; raises RuntimeError naming `what` if proc
    exits first or `timeout` seconds pass."""
    if fhlib.wait_ready(proc, pred, timeout, interval=0.02):
        return
    if proc is not None and proc.poll() is not None:
        raise RuntimeError('%s: process exited (%s) before %s' % (
            proc.args[0], proc.returncode, what))
    raise RuntimeError('timed out waiting for ' + what)


def tcp_open(port):
    return fhlib.tcp_connectable(port, timeout=0.5)


def proc_status(pid, field):
    """A /proc/PID/status field in bytes (VmHWM, VmRSS), or None."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def drop_caches():
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def umount(path):
    """umount, then a lazy umount if that failed and it is still mounted
    (busy)."""
    r = run(['umount', path], check=False)
    if r.returncode != 0 and is_mounted(path):
        run(['umount', '-l', path], check=False)


class Resources:
    """Everything started or mounted, torn down in reverse, exactly once."""

    def __init__(self):
        self.procs = []     # Popen, started in sessions of their own
        self.mounts = []    # FUSE mount points
        self.late_mounts = []  # the tmpfs: after the processes using it stop
        self.params = {}    # kernel parameter file -> value before the bench
        self.closed = False

    def set_param(self, path, value):
        """Writes a kernel parameter (a /sys file); put back at close()."""
        with open(path) as f:
            self.params.setdefault(path, f.read().strip())
        with open(path, 'w') as f:
            f.write(value)

    def spawn(self, cmd, log_path, **kw):
        p = fhlib.spawn_logged(cmd, log_path, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, grace=5.0):
        fhlib.stop_process(p, timeout=grace)
        if p in self.procs:
            self.procs.remove(p)

    def unmount(self, path):
        """umount, then lazy umount if busy; forgets the mount either way."""
        if is_mounted(path):
            umount(path)
        if path in self.mounts:
            self.mounts.remove(path)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for m in reversed(list(self.mounts)):
            try:
                self.unmount(m)
            except Exception as e:  # keep going: tear down the rest
                print('cleanup: unmount %s: %s' % (m, e), file=sys.stderr)
        for p in reversed(list(self.procs)):
            try:
                self.stop(p, grace=3.0)
            except Exception as e:
                print('cleanup: stop %s: %s' % (p.args[0], e), file=sys.stderr)
        for m in self.late_mounts:
            umount(m)
        for path, value in self.params.items():
            try:
                with open(path, 'w') as f:
                    f.write(value)
            except OSError as e:
                print('cleanup: %s: %s' % (path, e), file=sys.stderr)


RES = Resources()
