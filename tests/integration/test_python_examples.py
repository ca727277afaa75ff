"""The Python examples and fusehost.FUSE() through the real daemon:
the context example read by two users, the sftp example against an sshd on
127.0.0.1, a mfusepy filesystem run after changing only its import line
(with its errors and exceptions), FUSE()'s life cycle (unmount by the
daemon, SIGTERM, foreground=False, a dead daemon), and serve() mounted with
fuse-hostctl."""

import errno
import importlib
import os
import shutil
import signal
import stat
import sys

import pytest

import fhlib
from fhlib import SYS_PYTHON, is_mounted, run_cmd, wait_until
from conftest import TEST_GROUP, Mount
from pyfhlib import (EXAMPLES, import_fusehost, py_mounts,  # noqa: F401
                     python_env, stop_gently)

HERE = os.path.dirname(os.path.abspath(__file__))


# --- context: the caller, per request ------------------------------------------

def test_context_example_shows_each_caller(py_mounts, users):
    mp = py_mounts.mountpoint()
    py_mounts.python(py_mounts.example("context.py", mp, "-o", "allow_other"),
                     mountpoint=mp, name="context")
    assert sorted(os.listdir(mp)) == ["gid", "pid", "uid"]
    for user in (users.root, users.a, users.b, users.a):
        res = run_cmd(["sh", "-c", 'echo $$; exec cat "$0/uid" "$0/gid" '
                       '"$0/pid"', mp], user=user).check()
        pid, uid, gid, read_pid = res.stdout.split()
        assert (int(uid), int(gid)) == (user.uid, user.gid), res
        assert read_pid == pid, "pid is the reading process's"
    # The two users at the same time, in one directory listing each.
    res = run_cmd(["sh", "-c", 'cat "$0/uid" & cat "$0/uid" & wait', mp],
                  user=users.b).check()
    assert res.stdout.split() == [str(users.b.uid)] * 2


# --- a mfusepy filesystem, import line changed ----------------------------------

def ported_flat(py_mounts):
    """mfusepy_style_fs.py with only `import mfusepy as fuse` replaced."""
    with open(os.path.join(HERE, "mfusepy_style_fs.py")) as f:
        original = f.read().splitlines(keepends=True)
    ported = [("import fusehost as fuse\n" if l == "import mfusepy as fuse\n"
               else l) for l in original]
    assert sum(a != b for a, b in zip(original, ported)) == 1
    path = py_mounts.path("flat_fusehost.py")
    with open(path, "w") as f:
        f.writelines(ported)
    return path


def test_mfusepy_filesystem_runs_after_changing_the_import(py_mounts, users):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    marker = py_mounts.path("destroyed")
    p = py_mounts.python([script, mp], mountpoint=mp, name="flat",
                         env={"FLAT_DESTROY_MARKER": marker})
    ops = py_mounts.ops(users.a, mp)
    r = ops.run([
        ("write_file", "hello", b"hello world"),
        ("read_file", "hello"),
        ("stat", "hello"),
        ("mkdir", "dir", 0o755),
        ("symlink", "hello", "link"),
        ("readlink", "link"),
        ("setxattr", "hello", "user.k", b"v"),
        ("getxattr", "hello", "user.k"),
        ("getxattr", "hello", "user.missing"),
        ("rename", "hello", "renamed"),
        ("truncate", "renamed", 5),
        ("read_file", "renamed"),
        ("utimensat", "renamed", (5, 0), (6, 0)),
        ("stat", "renamed"),
        ("listdir", "."),
        ("unlink", "link"),
        ("statvfs", "."),
    ])
    assert r[0] is True and r[1] == b"hello world"
    assert r[2]["uid"] == users.a.uid and r[2]["size"] == 11  # context
    assert r[5] == "hello" and r[7] == b"v" and r[8] == "ENODATA"
    assert r[11] == b"hello"
    assert r[13]["mtime_ns"] == 6 * 10**9
    assert r[14] == ["dir", "link", "renamed"]
    assert r[16]["bsize"] == 512
    log = p.output()
    assert "-> getattr /renamed" in log  # LoggingMixIn
    assert "big_writes" in log  # a libfuse option ignored, with a warning
    # Unmounting (here: by the daemon) ends FUSE(); destroy runs.
    py_mounts.daemon.unmount(mp).check()
    assert p.wait(20) == 0, p.output()
    with open(marker) as f:
        assert f.read() == "destroyed /\n"


def test_errors_and_exceptions_reach_applications_as_errnos(py_mounts,
                                                            users):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    p = py_mounts.python([script, mp], mountpoint=mp, name="flat")
    ops = py_mounts.ops(users.root, mp)
    r = ops.run([
        ("stat", "boom"),                          # RuntimeError
        ("write_file", "nospace", b"x"),           # OSError(ENOSPC)
        ("write_file", "quota", b""),
        ("truncate", "quota", 0),                  # returns -EDQUOT
        ("write_file", "fine", b"still works"),
        ("read_file", "fine"),
    ])
    assert r[0] == "EINVAL"
    assert r[1] == "ENOSPC"
    assert r[2] is True and r[3] == "EDQUOT"
    assert r[4] is True and r[5] == b"still works"
    log = p.output()
    assert "Uncaught exception from FUSE operation getattr, returning " \
        "errno.EINVAL" in log
    assert "RuntimeError: a bug in getattr" in log  # the traceback
    # A SystemExit inside an operation ends the mount cleanly (as mfusepy
    # ends its loop): the caller gets an error, nothing hangs, the mount
    # goes away and FUSE() re-raises.
    r = ops.run([("write_file", "exit", b""), ("unlink", "exit")])
    assert r[0] is True and r[1] == "EFAULT"
    assert p.wait(20) == 3, p.output()
    assert wait_until(lambda: not is_mounted(mp), 10)


# --- FUSE() life cycle ------------------------------------------------------------

def test_fuse_unmounts_on_sigterm_and_calls_destroy(py_mounts):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    marker = py_mounts.path("destroyed")
    runtime = py_mounts.mkdir("runtime")
    p = py_mounts.python([script, mp], mountpoint=mp, name="flat",
                         env={"FLAT_DESTROY_MARKER": marker,
                              "XDG_RUNTIME_DIR": runtime})
    # The socket the daemon reaches the filesystem on, in a directory of
    # its own that only its user may enter.
    made = os.listdir(runtime)
    assert len(made) == 1 and made[0].startswith("fusehost-"), made
    private = os.path.join(runtime, made[0])
    assert os.stat(private).st_mode & 0o777 == 0o700
    assert os.listdir(private) == ["backend.sock"]
    assert stop_gently(p, signal.SIGTERM) == 0, p.output()
    assert not is_mounted(mp)
    assert os.path.exists(marker)
    assert mp not in py_mounts.daemon.list().stdout
    assert os.listdir(runtime) == [], "the socket's directory was left"


def test_fuse_unmounts_busy_mount_lazily_on_sigint(py_mounts, users):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    p = py_mounts.python([script, mp], mountpoint=mp, name="flat")
    held = py_mounts.hold(py_mounts.ops(users.root, mp),
                          [("write_file", "f", b"x"),
                           ("open", "f", ["O_RDONLY"]), ("sync", "open")])
    held.wait_sync("open")
    assert stop_gently(p, signal.SIGINT) == 0, p.output()
    assert wait_until(lambda: not is_mounted(mp), 10)
    held.kill()


def test_fuse_background_detaches_once_mounted(py_mounts):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    marker = py_mounts.path("destroyed")
    env = python_env(py_mounts.daemon, {"FLAT_DESTROY_MARKER": marker})
    # Unmounted at teardown if the test fails (the background process then
    # sees its mount go away and exits).
    py_mounts.mounts.append(Mount(py_mounts.daemon, None, mp, ""))
    res = run_cmd([SYS_PYTHON, script, mp, "--background"], timeout=60,
                  env=env)
    assert res.returncode == 0, res
    assert is_mounted(mp), "FUSE(foreground=False) returned before mounting"
    ops = py_mounts.ops(None, mp)
    assert ops.run([("write_file", "f", b"bg"), ("read_file", "f")])[1] == \
        b"bg"
    py_mounts.daemon.unmount(mp).check()
    assert wait_until(lambda: os.path.exists(marker), 20), \
        "the background process did not see the unmount"


def test_fuse_without_daemon_fails_clearly(py_mounts, tmp_path):
    script = ported_flat(py_mounts)
    mp = py_mounts.mountpoint()
    env = python_env(extra={
        "FUSE_HOSTD_CONTROL_SOCKET": str(tmp_path / "no-daemon.sock")})
    for extra in ([], ["--background"]):
        res = run_cmd([SYS_PYTHON, script, mp] + extra, timeout=30, env=env)
        assert res.returncode != 0
        assert "fuse-hostd is not reachable" in res.stderr, res
        assert "no-daemon.sock" in res.stderr
    assert not is_mounted(mp)


# --- handles: numbers the examples give out, not descriptors -------------------------

def _example_module(name):
    """examples/python/NAME.py imported into this process (no mount)."""
    import_fusehost()
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def _ebadf(call, *args):
    with pytest.raises(OSError) as caught:
        call(*args)
    return caught.value.errno == errno.EBADF


def test_loopback_handles_are_no_descriptor_numbers(tmp_path):
    """A released handle never reaches a later open, even though the kernel
    gives that open the same descriptor number; nor does a descriptor
    number that no open got as its handle."""
    loopback = _example_module("loopback")
    fs = loopback.Loopback(str(tmp_path), act_as_caller=False, watch=False,
                           passthrough=False)
    first = fs.create("/first", 0o644, os.O_RDWR)
    fs.write("/first", b"first", 0, first)
    fs.release("/first", first)
    second = fs.create("/second", 0o600, os.O_RDWR)
    fs.write("/second", b"second secret", 0, second)
    assert first != second
    assert _ebadf(fs.read, "/first", 100, 0, first)
    assert _ebadf(fs.write, "/first", b"overwritten", 0, first)
    assert _ebadf(fs.release, "/first", first)
    fd = next(int(n) for n in os.listdir("/proc/self/fd")
              if os.readlink("/proc/self/fd/" + n) ==
              str(tmp_path / "second"))
    assert fd != second
    assert _ebadf(fs.read, "/second", 100, 0, fd)
    assert fs.read("/second", 100, 0, second) == b"second secret"
    fs.release("/second", second)
    assert (tmp_path / "second").read_bytes() == b"second secret"


def test_memory_refuses_released_handles():
    """A released handle is EBADF, not "use the path": the name may be
    another file's by now."""
    memory = _example_module("memory")
    fs = memory.Memory()
    fh = fs.create("/f", 0o644)
    fs.release("/f", fh)
    other = fs.create("/g", 0o600)
    fs.write("/g", b"secret", 0, other)
    fs.release("/g", other)
    fs.rename("/g", "/f")
    assert _ebadf(fs.read, "/f", 100, 0, fh)
    assert _ebadf(fs.write, "/f", b"x", 0, fh)
    assert _ebadf(fs.getattr, "/f", fh)
    assert _ebadf(fs.truncate, "/f", 0, 12345)
    again = fs.open("/f", os.O_RDONLY)
    assert fs.read("/f", 100, 0, again) == b"secret"


def test_loopback_acting_as_itself_still_clears_set_id_bits(tmp_path):
    """Not acting as the caller (act_as_caller=False), a root loopback
    writes with CAP_FSETID, which the host kernel lets keep the set-id bits:
    the loopback clears them itself for callers other than root. Ops go
    through the SDK's dispatch, as from the daemon, without a mount."""
    loopback = _example_module("loopback")
    from fusehost import _server
    from fusehost._proto import pb
    fs = loopback.Loopback(str(tmp_path), act_as_caller=False, watch=False)
    servicer = _server.make_backend(fs, options=_server.backend_options({}))

    def run(uid, kind, request):
        batch = pb.Batch(mount_id=1)
        op = batch.ops.add(id=1)
        op.caller.uid = op.caller.gid = uid
        getattr(op, kind).CopyFrom(request)
        result = servicer.Execute(batch, None).results[0]
        assert result.posix_errno == 0, (kind, result)
        return result

    try:
        for uid, want in ((1001, 0o777), (0, 0o6777)):
            name = "f%d" % uid
            path = os.fsencode("/" + name)
            fh = run(0, "create", pb.CreateRequest(
                path=path, mode=0o100777, flags=os.O_RDWR)).create.open.fh
            os.chmod(tmp_path / name, 0o6777)
            run(uid, "write", pb.WriteRequest(path=path, fh=fh, data=b"w"))
            run(0, "release", pb.ReleaseRequest(path=path, fh=fh))
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want
    finally:
        servicer.shutdown()


# --- serve(): a backend for fuse-hostctl --------------------------------------------

def test_serve_for_fuse_hostctl(py_mounts, users):
    sock = py_mounts.path("memory.sock")
    p = py_mounts.python(py_mounts.example("memory.py", "--listen",
                                           "unix:" + sock),
                         listen=sock, name="pymemserve")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    m = py_mounts.mount_backend(p, options="allow_other")
    r = py_mounts.ops(users.root, m.path).run([
        ("mkdir", "a", 0o755), ("chown", "a", users.a.uid, users.a.gid)])
    assert r == [True, True]
    r = py_mounts.ops(users.a, m.path).run([
        ("write_file", "a/x", b"1"), ("listdir", "a"), ("stat", "a/x"),
        ("write_file", "y", b"")])
    assert r[0] is True and r[1] == ["x"] and r[2]["uid"] == users.a.uid
    assert r[3] == "EACCES"  # the root is root's, 0755
    res = py_mounts.daemon.list().check()
    assert "fusehost-python:Memory" in res.stdout or m.path in res.stdout


# --- sftp: a remote directory over SSH ---------------------------------------------

SSHD = "/usr/sbin/sshd"


SFTP_USER = "fhtest_sftp"


def sftp_user():
    """A user sshd lets in: useradd locks new accounts ("!" as password),
    and sshd refuses locked accounts; "*" means no password, not locked."""
    user = fhlib.ensure_user(SFTP_USER, TEST_GROUP)
    run_cmd(["usermod", "-p", "*", SFTP_USER], timeout=30).check()
    return user


@pytest.fixture
def sshd(py_mounts):
    """An sshd on 127.0.0.1 (random port) with a throw-away host key, that
    lets fhtest_sftp in with a throw-away key, SFTP only."""
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
        pytest.fail("openssh-server is not installed (scripts/setup.sh)",
                    pytrace=False)
    user = sftp_user()
    d = py_mounts.mkdir("sshd", 0o755)
    for name, path in (("host", "host_key"), ("client", "client_key")):
        run_cmd(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                 "-f", os.path.join(d, path)]).check()
    keys = os.path.join(d, "authorized_keys")
    shutil.copyfile(os.path.join(d, "client_key.pub"), keys)
    os.chmod(keys, 0o644)
    remote = py_mounts.mkdir("remote", 0o755)
    os.chown(remote, user.uid, user.gid)
    port = fhlib.free_port()
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as f:
        f.write("\n".join([
            "ListenAddress 127.0.0.1", "Port %d" % port,
            "HostKey %s/host_key" % d, "PidFile %s/sshd.pid" % d,
            "AuthorizedKeysFile %s" % keys, "StrictModes no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "UsePAM no",
            "AllowUsers %s" % user.name, "PermitRootLogin no",
            "Subsystem sftp internal-sftp", "ForceCommand internal-sftp",
            "LogLevel VERBOSE", ""]))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = fhlib.spawn_logged([SSHD, "-D", "-e", "-f", config],
                              os.path.join(d, "sshd.log"))
    try:
        assert fhlib.wait_ready(proc, lambda: fhlib.tcp_connectable(port),
                                15), fhlib.tail(os.path.join(d, "sshd.log"))
        with open(os.path.join(d, "host_key.pub")) as f:
            kind, key = f.read().split()[:2]
        known = os.path.join(d, "known_hosts")
        with open(known, "w") as f:
            f.write("[127.0.0.1]:%d %s %s\n" % (port, kind, key))
        yield {"port": port, "key": os.path.join(d, "client_key"),
               "known_hosts": known, "remote": remote, "user": user,
               "log": os.path.join(d, "sshd.log")}
    finally:
        print("---- sshd log ----\n" + fhlib.tail(os.path.join(d, "sshd.log")))
        fhlib.stop_process(proc, timeout=10)


def test_sftp_example(py_mounts, sshd):
    mp = py_mounts.mountpoint()
    user = sshd["user"]
    p = py_mounts.python(py_mounts.example(
        "sftp.py", "%s@127.0.0.1:%s" % (user.name, sshd["remote"]), mp,
        "-p", str(sshd["port"]), "-i", sshd["key"], "--known-hosts",
        sshd["known_hosts"], "-o", "allow_other,default_permissions"),
        mountpoint=mp, name="sftp")
    with open(os.path.join(sshd["remote"], "existing"), "wb") as f:
        f.write(b"from the server")
    ops = py_mounts.ops(user, mp)
    big = bytes(range(256)) * 1000
    r = ops.run([
        ("read_file", "existing"),
        ("write_file", "new", b"through sftp"),
        ("mkdir", "dir", 0o750),
        ("write_file", "dir/big", big),
        ("read_file", "dir/big"),
        ("stat", "dir/big"),
        ("rename", "new", "dir/moved"),
        ("symlink", "dir/moved", "link"),
        ("readlink", "link"),
        ("read_file", "link"),
        ("chmod", "dir/moved", 0o600),
        ("stat", "dir/moved"),
        ("truncate", "dir/moved", 7),
        ("utimensat", "dir/moved", (1000, 0), (2000, 0)),
        ("stat", "dir/moved"),
        ("listdir", "."),
        ("listdir", "dir"),
        ("unlink", "link"),
        ("rmdir", "dir"),                 # not empty
        ("stat", "missing"),
    ])
    assert r[0] == b"from the server"
    assert r[1] is True and r[2] is True and r[3] is True
    assert r[4] == big and r[5]["size"] == len(big)
    assert r[5]["uid"] == user.uid  # the remote owner
    assert r[8] == "dir/moved" and r[9] == b"through sftp"
    assert r[11]["perm"] == 0o600
    assert r[14]["size"] == 7 and r[14]["mtime_ns"] == 2000 * 10**9
    assert r[15] == ["dir", "existing", "link"]
    assert r[16] == ["big", "moved"]
    assert r[17] is True
    assert r[18] in ("ENOTEMPTY", "EIO")
    assert r[19] == "ENOENT"
    # The server's side of it.
    with open(os.path.join(sshd["remote"], "dir", "moved"), "rb") as f:
        assert f.read() == b"through"
    st = os.stat(os.path.join(sshd["remote"], "dir", "big"))
    assert st.st_uid == user.uid and st.st_size == len(big)
    assert stop_gently(p) == 0, p.output()
