"""Helpers for the fuse-hostd integration tests, also used by bench/run.py.

Rules that keep the suite from hanging:
  * The pytest process never touches a FUSE mount itself. Every access goes
    through a child process (fsops_runner.py or a tool) with a timeout; a
    child that overruns is killed with its whole process group.
  * Mount state is read from /proc/self/mounts, which never blocks on FUSE.

The benchmark imports this module (by path: it is not a package) for where
the binaries are, starting and stopping processes, and mount state, so that
both follow the same layout and the same rules. It must not import pytest.
"""

import grp
import json
import os
import pwd
import signal
import socket
import subprocess
import time

SYS_PYTHON = "/usr/bin/python3"
TOOL_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "LANG": "C",
    "HOME": "/",
    "TZ": "UTC",
}
DEFAULT_TIMEOUT = 60


# --- the fusepy port -------------------------------------------------------------

_FUSEPY_LOOPBACK = os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "bench", "fusepy_loopback.py")
_FUSEPY_IMPORT = ("try:\n    from fusepy import FUSE, FuseOSError, Operations\n"
                  "except ImportError:  # fusepy from pip\n"
                  "    from fuse import FUSE, FuseOSError, Operations\n")


def port_fusepy_loopback(dest):
    """Writes to `dest` bench/fusepy_loopback.py with its fusepy import
    replaced by fusehost's, and nothing else changed: what a fusepy user
    does to port a filesystem. Shared by the tests and the benchmark."""
    with open(_FUSEPY_LOOPBACK) as f:
        source = f.read()
    if _FUSEPY_IMPORT not in source:
        raise RuntimeError("fusepy_loopback.py: its import block changed")
    with open(dest, "w") as f:
        f.write(source.replace(
            _FUSEPY_IMPORT, "from fusehost import FUSE, FuseOSError, Operations\n"))
    return dest


# --- binaries -------------------------------------------------------------------

# Each binary's Bazel package, which is also its folder under bazel-bin (or
# under a FUSE_HOSTD_BIN_DIR laid out the same way). The tests and the
# benchmark find binaries and name build targets only through this table.
BINARY_PACKAGES = {
    "fuse-hostd": "daemon",
    "fuse-hostctl": "cli",
    "mount.fuse.hostd": "cli",
    "memory_fs": "examples/memory",
    "loopback_fs": "examples/loopback",
    "roundtrip": "bench/roundtrip",
}


def binary_path(bin_dir, name):
    """Where `name` is in bin_dir, a bazel-bin tree."""
    return os.path.join(bin_dir, BINARY_PACKAGES[name], name)


def bazel_target(name):
    """The label that builds `name`, e.g. //daemon:fuse-hostd."""
    return "//%s:%s" % (BINARY_PACKAGES[name], name)


# --- processes -------------------------------------------------------------------

def spawn_logged(args, log_path, **kw):
    """Starts args with stdin from /dev/null and stdout and stderr appended
    to log_path, in a session of its own (a process group that can be
    killed whole, and that a ^C at the terminal does not reach)."""
    with open(log_path, "ab") as logf:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT,
                                start_new_session=True, **kw)


def wait_ready(proc, ready, timeout, interval=0.05):
    """Polls ready() until it is true (returns True), or until proc (a Popen,
    or None) exits or `timeout` seconds pass (returns False; proc.poll()
    tells which)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(interval)
    return False


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Sends `sig`, then SIGKILL if the process is still there after
    `timeout` seconds. Returns its exit status; None if it had to be killed
    (it is not waited for forever: one stuck on a dead FUSE mount may never
    go)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tcp_connectable(port, timeout=1):
    """True if something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout).close()
        return True
    except OSError:
        return False


class CommandTimeout(AssertionError):
    pass


class Result:
    """What run_cmd returns: like CompletedProcess, plus elapsed time."""

    def __init__(self, args, returncode, stdout, stderr, elapsed):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    def __repr__(self):
        return ("Result(args=%r, rc=%r, %.2fs,\n  stdout=%r,\n  stderr=%r)"
                % (self.args, self.returncode, self.elapsed,
                   self.stdout[-2000:], self.stderr[-2000:]))

    def check(self):
        assert self.returncode == 0, "command failed: %r" % (self,)
        return self


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_cmd(args, timeout=DEFAULT_TIMEOUT, user=None, input=None, text=True,
            env=None):
    """Runs args (as `user` if given) with a hard timeout; never raises on a
    non-zero exit. Never pass a cwd on a FUSE mount (Popen would chdir in the
    child before exec, and the parent would wait for it)."""
    full = (user.prefix() if user is not None else ["/usr/bin/env", "--"]) \
        + list(args)
    start = time.monotonic()
    proc = subprocess.Popen(
        full, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
        env=env or TOOL_ENV, cwd="/", start_new_session=True)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        raise CommandTimeout("timed out after %ss: %r\nstdout=%r\nstderr=%r"
                             % (timeout, full, out, err))
    finally:
        _kill_group(proc)
    return Result(full, proc.returncode, out, err, time.monotonic() - start)


class User:
    def __init__(self, name):
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.groups = sorted(os.getgrouplist(name, pw.pw_gid))

    @property
    def is_root(self):
        return self.uid == 0

    def prefix(self):
        if self.is_root:
            # env execs the command, so an exec that blocks on a FUSE mount
            # blocks env, not the Popen() call in the test process.
            return ["/usr/bin/env", "--"]
        return ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
                "--init-groups", "--"]

    def __repr__(self):
        return "User(%s, uid=%d)" % (self.name, self.uid)


ROOT_NAME = "root"


def ensure_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        run_cmd(["groupadd", name], timeout=30).check()
        return grp.getgrnam(name).gr_gid


def ensure_user(name, supplementary):
    """Creates `name` (no home, no login shell) in group `supplementary`, or
    keeps it if it exists; idempotent."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        r = run_cmd(["useradd", "--no-create-home", "--shell",
                     "/usr/sbin/nologin", "--groups", supplementary, name],
                    timeout=30)
        # Another concurrent run may have created it meanwhile.
        if r.returncode != 0:
            pwd.getpwnam(name)
    members = grp.getgrnam(supplementary).gr_mem
    if name not in members:
        run_cmd(["usermod", "-a", "-G", supplementary, name],
                timeout=30).check()
    return User(name)


# --- results of fsops_runner ------------------------------------------------

# Linux errno names with the same value; Python's errno.errorcode picks one.
_ERRNO_ALIASES = {"EOPNOTSUPP": "ENOTSUP", "EWOULDBLOCK": "EAGAIN",
                  "EDEADLOCK": "EDEADLK"}


def _canon(name):
    return _ERRNO_ALIASES.get(name, name)


class Err:
    """A failed op: compares equal to its errno name (aliases included, so
    Err("ENOTSUP") == "EOPNOTSUPP")."""

    def __init__(self, name, num):
        self.name = _canon(name)
        self.errno = num

    def __eq__(self, other):
        if isinstance(other, Err):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == _canon(other)
        return NotImplemented

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "Err(%s)" % self.name


def is_err(v, *names):
    if not isinstance(v, Err):
        return False
    return not names or v.name in names


def _decode(v):
    if isinstance(v, dict):
        if set(v) == {"hex"}:
            return bytes.fromhex(v["hex"])
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _encode(v):
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def fs_name(name):
    """bytes/str path -> str for the runner (non-UTF-8 as surrogates)."""
    return os.fsdecode(name)


class OpsFailed(AssertionError):
    pass


class Ops:
    """Runs fsops_runner.py as `user` with working directory `cwd`."""

    def __init__(self, runner_path, user, cwd=None, timeout=DEFAULT_TIMEOUT):
        self.runner_path = runner_path
        self.user = user
        self.cwd = cwd
        self.timeout = timeout

    def with_cwd(self, cwd):
        return Ops(self.runner_path, self.user, cwd, self.timeout)

    def as_user(self, user):
        return Ops(self.runner_path, user, self.cwd, self.timeout)

    def _request(self, ops, cwd, umask):
        return json.dumps({"cwd": cwd if cwd is not None else self.cwd,
                           "umask": umask,
                           "ops": [_encode(list(op)) for op in ops]}) + "\n"

    def run(self, ops, cwd=None, timeout=None, umask=0o022):
        """Runs ops; returns one result per op (value, or Err)."""
        r = run_cmd([SYS_PYTHON, self.runner_path],
                    timeout=timeout or self.timeout, user=self.user,
                    input=self._request(ops, cwd, umask))
        lines = [l for l in r.stdout.splitlines() if not l.startswith("SYNC ")]
        if r.returncode != 0 or not lines:
            raise OpsFailed("runner failed: %r" % (r,))
        raw = json.loads(lines[-1])
        out = []
        for item in raw:
            if "ok" in item:
                out.append(_decode(item["ok"]))
            else:
                if item["errno"] == -1 and item["err"].startswith("BAD"):
                    raise OpsFailed("bad op: %s" % item["err"])
                out.append(Err(item["err"], item["errno"]))
        return out

    def ok(self, ops, **kw):
        """Runs ops and requires every one to succeed; returns the values."""
        res = self.run(ops, **kw)
        bad = [(op, r) for op, r in zip(ops, res) if isinstance(r, Err)]
        assert not bad, "ops failed as %s: %r" % (self.user.name, bad)
        return res

    def one(self, op, **kw):
        return self.run([op], **kw)[0]

    def start(self, ops, cwd=None, umask=0o022):
        """Starts the runner in the background; see Held."""
        return Held(self, ops, cwd, umask)


class Held:
    """A runner in the background. Ops ("sync", tag) make it stop and wait:
    wait_sync() returns when it gets there, release() lets it go on,
    finish() collects the results. kill() is always safe."""

    def __init__(self, ops_obj, ops, cwd, umask):
        self.proc = subprocess.Popen(
            ops_obj.user.prefix() + [SYS_PYTHON, ops_obj.runner_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=TOOL_ENV, cwd="/",
            start_new_session=True, bufsize=1)
        self.proc.stdin.write(ops_obj._request(ops, cwd, umask))
        self.proc.stdin.flush()

    def wait_sync(self, tag, timeout=30):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandTimeout("runner did not reach sync %r" % tag)
                if not sel.select(left):
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                    raise OpsFailed("runner ended before sync %r: %s" %
                                    (tag, err))
                if line.strip() == "SYNC %s" % tag:
                    return
                # A final JSON line before the sync: the runner skipped it.
                raise OpsFailed("runner printed %r waiting for sync %r" %
                                (line, tag))
        finally:
            sel.close()

    def release(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=30):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandTimeout("held runner did not finish")
        lines = [l for l in out.splitlines() if not l.startswith("SYNC ")]
        if self.proc.returncode != 0 or not lines:
            raise OpsFailed("held runner failed rc=%s err=%s" %
                            (self.proc.returncode, err))
        return [_decode(i["ok"]) if "ok" in i else Err(i["err"], i["errno"])
                for i in json.loads(lines[-1])]

    def kill(self):
        if self.proc.poll() is None:
            _kill_group(self.proc)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass


# --- mounts -------------------------------------------------------------------

def _unescape_mount_field(s):
    out = bytearray()
    i = 0
    b = s.encode("utf-8", "surrogateescape")
    while i < len(b):
        if b[i:i + 1] == b"\\" and i + 3 < len(b) and b[i + 1:i + 4].isdigit():
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return bytes(out).decode("utf-8", "surrogateescape")


def proc_mounts():
    """[(source, mountpoint, fstype, options)] from /proc/self/mounts."""
    with open("/proc/self/mounts", "rb") as f:
        data = f.read().decode("utf-8", "surrogateescape")
    out = []
    for line in data.splitlines():
        parts = line.split(" ")
        if len(parts) >= 4:
            out.append((_unescape_mount_field(parts[0]),
                        _unescape_mount_field(parts[1]), parts[2], parts[3]))
    return out


def mount_entry(mountpoint):
    """The last /proc/self/mounts entry at mountpoint, or None."""
    found = None
    for m in proc_mounts():
        if m[1] == mountpoint:
            found = m
    return found


def is_mounted(mountpoint):
    return mount_entry(mountpoint) is not None


def child_pid(pid):
    """The first child of process `pid` (a keeper's daemon), or 0. Read from
    /proc: no fork, which a process holding files on a mount must not do
    while no daemon serves it."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            children = f.read().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def wait_until(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def force_unmount(mountpoint):
    """Last resort: abort the FUSE connection and detach the mount."""
    if not is_mounted(mountpoint):
        return
    try:
        dev = None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if _unescape_mount_field(parts[4]) == mountpoint:
                    dev = parts[2]
        if dev:
            major, minor = dev.split(":")
            if major == "0":
                abort = "/sys/fs/fuse/connections/%s/abort" % minor
                if os.path.exists(abort):
                    with open(abort, "w") as f:
                        f.write("1")
    except OSError:
        pass
    try:
        run_cmd(["umount", "-l", mountpoint], timeout=15)
    except CommandTimeout:
        pass


def socket_connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def tail(path, start=0, max_bytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            end = f.tell()
            f.seek(max(start, end - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<%s>" % e


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
