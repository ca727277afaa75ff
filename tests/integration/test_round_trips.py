"""Round trips to the backend: ops that belong together travel together.

A filesystem whose readdir returns names only (the bench's fusepy loopback,
run through fusehost after changing its import) would cost one backend round
trip per name when the kernel looks each one up. Once callers of a mount
are seen to look up what they list, the daemon fetches the attributes of a
listing's names in one go before answering READDIRPLUS, in messages of
many ops."""

import errno
import os
import re
import stat
import time

import pytest

from daemon_stats import counted
from fhlib import port_fusepy_loopback, run_cmd
from pyfhlib import py_mounts  # noqa: F401


def ported_fusepy_loopback(py_mounts):
    """bench/fusepy_loopback.py with its fusepy import replaced."""
    return port_fusepy_loopback(py_mounts.path("fusepy_loopback_fusehost.py"))


def stats(py_mounts, mp):
    """(backend messages, backend ops, {kernel op: count}) of mount `mp`."""
    out = py_mounts.daemon.ctl("stats", mp).check().stdout
    messages = ops = None
    kernel = {}
    for line in out.splitlines():
        f = line.replace(",", "").split()
        if f[:1] == ["backend"]:
            messages, ops = int(f[1]), int(f[3])
        elif len(f) >= 2 and f[1].isdigit():
            kernel[f[0]] = int(f[1])
    assert messages is not None, out
    return messages, ops, kernel


def make_many(root, files):
    """root/many/f000 .. with f<i> of i bytes."""
    os.mkdir(os.path.join(root, "many"))
    for i in range(files):
        with open(os.path.join(root, "many", "f%03d" % i), "w") as f:
            f.write("x" * i)


@pytest.mark.parametrize("files", [300])
def test_names_only_listing_fetches_attributes_in_few_messages(py_mounts,
                                                                files):
    script = ported_fusepy_loopback(py_mounts)
    root = py_mounts.mkdir("names-only-root")
    make_many(root, files)
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepyhost")
    messages0, ops0, kernel0 = stats(py_mounts, mp)
    # find lists "/" first and looks "many" up: that teaches the daemon.
    res = run_cmd(["find", mp, "-printf", "%s %f\n"]).check()
    lines = res.stdout.splitlines()
    assert len(lines) == files + 2
    # The sizes are the backend's: attributes were really fetched.
    sizes = dict(reversed(l.split(" ", 1)) for l in lines[2:])
    assert all(int(sizes["f%03d" % i]) == i for i in range(files)), sizes
    messages, ops, kernel = stats(py_mounts, mp)
    sent_ops, sent_messages = ops - ops0, messages - messages0
    # Nearly every getattr went in a group: far fewer messages than ops.
    assert sent_ops >= files, (sent_ops, sent_messages)
    assert sent_ops / sent_messages >= 20, (sent_ops, sent_messages)
    # In groups of the size the Python SDK asks for (InitReply.ops_together:
    # 256), not the daemon's 64: the names' attributes took two messages,
    # the other ops at most one each.
    assert sent_messages <= (sent_ops - files) + 2, (sent_ops, sent_messages)
    # And the kernel had no name to look up itself.
    assert kernel.get("lookup", 0) - kernel0.get("lookup", 0) <= 2, kernel


# The ported loopback with lifetimes of a few seconds: long enough for a
# loaded machine to list and stat 300 names well within one.
_FEW_SECONDS_PORT = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusehost import FUSE
import fusepy_loopback_fusehost as port


class FewSeconds(port.Loopback):
    default_ttl = %d


FUSE(FewSeconds(sys.argv[1]), sys.argv[2], foreground=True)
"""


def mount_few_seconds_port(py_mounts, ttl, name, files):
    """That port over a new directory `name` with make_many(files) in it:
    (the directory, the mountpoint)."""
    ported_fusepy_loopback(py_mounts)
    script = py_mounts.path("few_seconds_port_%d.py" % ttl)
    with open(script, "w") as f:
        f.write(_FEW_SECONDS_PORT % ttl)
    root = py_mounts.mkdir(name)
    make_many(root, files)
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name=name)
    return root, mp


def test_names_listed_again_past_their_lifetime_are_not_looked_up_one_by_one(
        py_mounts):
    """Once the entries a listing handed the kernel lapse, the kernel must
    list again (a readdirplus, attributes fetched many to a message) rather
    than list its own copy and look every name up."""
    ttl = 3
    files = 300
    root, mp = mount_few_seconds_port(py_mounts, ttl, "names-only-again",
                                      files)
    find = ["find", os.path.join(mp, "many"), "-printf", "%s %f\n"]
    assert len(run_cmd(find).check().stdout.splitlines()) == files + 1
    # Changed behind the daemon's back while its answers are alive.
    with open(os.path.join(root, "many", "f007"), "w") as f:
        f.write("y" * 1000)
    time.sleep(ttl + 0.5)
    messages0, ops0, kernel0 = stats(py_mounts, mp)
    lines = run_cmd(find).check().stdout.splitlines()
    sizes = dict(reversed(l.split(" ", 1)) for l in lines[1:])
    assert len(sizes) == files, lines
    assert int(sizes["f007"]) == 1000, sizes["f007"]
    assert all(int(sizes["f%03d" % i]) == i for i in range(files) if i != 7)
    messages, ops, kernel = stats(py_mounts, mp)
    lookups = kernel.get("lookup", 0) - kernel0.get("lookup", 0)
    # "many" itself, not its names.
    assert lookups <= 2, (lookups, kernel)
    # The attributes came again from the backend, many to a message.
    sent_ops, sent_messages = ops - ops0, messages - messages0
    assert sent_ops >= files, (sent_ops, sent_messages)
    assert sent_ops / sent_messages >= 20, (sent_ops, sent_messages)


def test_a_caller_that_skips_names_has_only_its_stride_fetched_ahead(
        py_mounts):
    """stat of every 10th file once the names' lifetimes are over: each
    name looked up again, and the daemon fetches ahead the names at the
    caller's stride, not every name of the directory."""
    ttl = 2
    files = 300
    _, mp = mount_few_seconds_port(py_mounts, ttl, "names-only-stride", files)
    many = os.path.join(mp, "many")
    assert len(run_cmd(["ls", "-l", many]).check().stdout.splitlines()) == \
        files + 1
    time.sleep(ttl + 0.5)
    messages0, ops0, kernel0 = stats(py_mounts, mp)
    asked = range(0, files, 10)
    sizes = [os.stat(os.path.join(many, "f%03d" % i)).st_size for i in asked]
    assert sizes == list(asked)
    messages, ops, kernel = stats(py_mounts, mp)
    assert kernel.get("lookup", 0) - kernel0.get("lookup", 0) >= len(asked)
    # "many", f000 alone, then f010 with every 10th name after it: about
    # 30 ops, where every name after f010 would be 63 at a time (300).
    sent_ops, sent_messages = ops - ops0, messages - messages0
    assert sent_ops <= len(asked) + 10, (sent_ops, sent_messages)
    assert sent_messages <= 6, (sent_ops, sent_messages)


def test_listing_names_only_costs_no_getattr_per_name(py_mounts):
    """`ls -f` looks nothing up: its listing must not fetch attributes."""
    script = ported_fusepy_loopback(py_mounts)
    root = py_mounts.mkdir("names-only-plain")
    os.mkdir(os.path.join(root, "many"))
    for i in range(300):
        open(os.path.join(root, "many", "f%03d" % i), "w").close()
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepyplain")
    _, ops0, _ = stats(py_mounts, mp)
    res = run_cmd(["ls", "-f", os.path.join(mp, "many")]).check()
    assert len(res.stdout.split()) == 302  # with . and ..
    _, ops, _ = stats(py_mounts, mp)
    # getattr of "many", opendir, the listing, releasedir: no op per name.
    assert ops - ops0 < 20, ops - ops0


def test_untarred_files_keep_their_own_attributes(py_mounts):
    """tar sets a directory's mode last. The daemon updates every other name
    of a changed file (hard links), matched by inode number: directories
    (whose link count counts subdirectories) and files of a backend that
    reports no inode numbers must never match, or the files below take the
    directory's attributes and `rm -rf` fails."""
    script = ported_fusepy_loopback(py_mounts)
    src = py_mounts.mkdir("tar-src")
    os.makedirs(os.path.join(src, "p", "s"))
    for i in range(5):
        with open(os.path.join(src, "p", "s", "f%d" % i), "w") as f:
            f.write("x" * (i + 1))
    tarball = py_mounts.path("p.tar")
    run_cmd(["tar", "-C", src, "-cf", tarball, "p"]).check()
    root = py_mounts.mkdir("tar-root")
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepytar")
    run_cmd(["tar", "-C", mp, "-xf", tarball]).check()
    for i in range(5):
        st = os.lstat(os.path.join(mp, "p", "s", "f%d" % i))
        assert stat.S_ISREG(st.st_mode) and st.st_size == i + 1, st
    run_cmd(["rm", "-rf", os.path.join(mp, "p")]).check()
    assert os.listdir(root) == []


# The ported loopback with its reads written to a log, one line each
# ("read SIZE OFFSET PATH", the path beneath its root), and its cache
# lifetimes longer; otherwise unchanged (its flush only returns 0).
_RECORDING_PORT = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusehost import FUSE
import fusepy_loopback_fusehost as port

LOG = open(sys.argv[3], "a", buffering=1)


class Recording(port.Loopback):
    # The daemon asks for contents only while it holds the file's size:
    # long enough for a slow machine between the test's stat and open.
    default_ttl = 600

    def read(self, path, size, offset, fh):
        LOG.write("read %d %d %s\\n" % (size, offset, path))
        return super().read(path, size, offset, fh)


FUSE(Recording(sys.argv[1]), sys.argv[2], foreground=True)
"""


def test_cat_of_small_files_costs_no_read_or_flush_round_trip(py_mounts):
    """The fusepy loopback's flush only returns 0, and the daemon asks for
    a small file whole with its read-only open: `cat` of a small file then
    calls the filesystem's open, one read at the open (for the size the
    daemon asked for, plus one byte), and release, and the kernel sends no
    FLUSH. A file larger than the daemon takes whole is read as usual."""
    ported_fusepy_loopback(py_mounts)
    script = py_mounts.path("recording_port.py")
    with open(script, "w") as f:
        f.write(_RECORDING_PORT)
    log = py_mounts.path("cat-calls.log")
    root = py_mounts.mkdir("cat-root")
    os.mkdir(os.path.join(root, "d"))
    files = 20
    for i in range(files):
        with open(os.path.join(root, "d", "f%02d" % i), "wb") as f:
            f.write(b"%02d" % i * (i + 1))
    with open(os.path.join(root, "d", "big"), "wb") as f:
        f.write(b"b" * (200 << 10))
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp, log], mountpoint=mp, name="fusepycat")
    d = os.path.join(mp, "d")
    for i in range(files):
        name = "f%02d" % i
        os.stat(os.path.join(d, name))  # the daemon caches its size
        with open(os.path.join(d, name), "rb") as f:
            assert f.read() == b"%02d" % i * (i + 1)
    with open(os.path.join(d, "big"), "rb") as f:
        assert f.read() == b"b" * (200 << 10)
    _, _, kernel = stats(py_mounts, mp)
    assert kernel.get("flush", 0) == 0, kernel
    with open(log) as f:
        calls = [line.split() for line in f]
    reads = [(c[1], c[2], os.path.basename(c[3])) for c in calls]
    small = [r for r in reads if r[2] != "big"]
    # One read each, at the open: 64 KiB and one byte at offset 0.
    assert sorted(r[2] for r in small) == \
        ["f%02d" % i for i in range(files)], calls
    assert all(r[:2] == (str((64 << 10) + 1), "0") for r in small), calls
    # The large one was read by the kernel's requests.
    assert any(r[2] == "big" for r in reads), calls


# --- the Session stream ------------------------------------------------------

SESSION = r"session stream\s+(\d+) of the messages"
MESSAGES = r"backend\s+(\d+) messages"


@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_cpp_backends_take_every_message_on_their_session_stream(mounts,
                                                                 kind):
    """The C++ SDK serves Session: on a mount with the option session,
    files made, written, renamed, listed and removed through it cost no
    Execute call. Without the option, every message is an Execute call.
    (daemon_changes=off: the loopback's creates, renames and removals would
    otherwise be made by the daemon, without a message.)"""
    for options, on_stream in (("allow_other,session,daemon_changes=off",
                                True),
                               ("allow_other,daemon_changes=off", False)):
        m = mounts.mount(kind, options=options)
        ops = mounts.ops(cwd=m.path)
        ops.ok([("mkdir", "d", 0o755), ("write_files", "d/f", 30, 100),
                ("rename", "d/f0", "d/g"), ("listdir", "d")])
        got = ops.run([("stat", "d/g"), ("stat", "d/f29")])
        assert got[0]["size"] == 100 and got[1]["size"] == 100, got
        ops.ok([("unlink", "d/g")])
        messages = counted(m, MESSAGES)
        assert messages >= 30
        assert counted(m, SESSION) == (messages if on_stream else 0)


# The ported loopback mounted with the option session; otherwise unchanged.
_SESSION_PORT = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusehost import FUSE
import fusepy_loopback_fusehost as port

FUSE(port.Loopback(sys.argv[1]), sys.argv[2], foreground=True, session=True)
"""


@pytest.mark.parametrize("native", ["1", "0"])
def test_python_backend_takes_messages_on_its_session_stream(py_mounts,
                                                             native):
    """The Python SDK serves Session on its own server (gRPC's C++ one): on
    a mount with the option session, every message goes on the stream. On
    grpcio's server (FUSEHOST_NATIVE_SERVER=0), which does not serve it,
    Init says so and every message is an Execute call. The mount works
    either way."""
    ported_fusepy_loopback(py_mounts)
    script = py_mounts.path("session_port.py")
    with open(script, "w") as f:
        f.write(_SESSION_PORT)
    root = py_mounts.mkdir("session-root" + native)
    for i in range(5):
        with open(os.path.join(root, "f%d" % i), "w") as f:
            f.write("x" * i)
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepysession",
                     env={"FUSEHOST_NATIVE_SERVER": native})
    res = run_cmd(["find", mp, "-printf", "%s %f\n"]).check()
    assert "4 f4" in res.stdout.splitlines(), res.stdout
    with open(os.path.join(mp, "new"), "w") as f:
        f.write("written")
    with open(os.path.join(root, "new")) as f:
        assert f.read() == "written"
    out = py_mounts.daemon.ctl("stats", mp).check().stdout
    messages = int(re.search(MESSAGES, out).group(1))
    assert messages > 0, out
    on_stream = int(re.search(SESSION, out).group(1))
    assert on_stream == (messages if native == "1" else 0), out


def test_a_ported_filesystem_takes_write_behind_from_the_environment(
        py_mounts):
    """FUSE_HOSTD_MOUNT_OPTIONS gives the unchanged port the daemon's
    options: with write_behind its creates, writes and setattrs are
    answered early (no round trip each), and are in its root after
    syncfs, which waits for the backend."""
    script = ported_fusepy_loopback(py_mounts)
    root = py_mounts.mkdir("env-options-root")
    src = py_mounts.mkdir("env-options-src")
    for i in range(20):
        with open(os.path.join(src, "f%02d" % i), "wb") as f:
            f.write(b"%d" % i * 100)
        os.utime(os.path.join(src, "f%02d" % i), (1000000 + i, 2000000 + i))
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepyhost",
                     env={"FUSE_HOSTD_MOUNT_OPTIONS":
                          "write_behind,default_permissions"})
    early = r"write-behind\s+(\d+) answered early"
    before = int(re.search(early, py_mounts.daemon.ctl(
        "stats", mp).check().stdout).group(1))
    run_cmd(["cp", "-a", src, os.path.join(mp, "copy")]).check()
    run_cmd(["sync", os.path.join(mp, "copy")]).check()  # fsyncdir waits
    after = int(re.search(early, py_mounts.daemon.ctl(
        "stats", mp).check().stdout).group(1))
    # A create, a write and the times of each file at least.
    assert after - before >= 60, (before, after)
    for i in range(20):
        path = os.path.join(root, "copy", "f%02d" % i)
        with open(path, "rb") as f:
            assert f.read() == b"%d" % i * 100
        assert os.stat(path).st_mtime == 2000000 + i


_GATED_CHMOD_PORT = '''
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("port", %r)
port = importlib.util.module_from_spec(spec)
spec.loader.exec_module(port)

class GatedChmod(port.Loopback):
    # A chmod of a file named "slow" waits until the gate file exists (10 s
    # at most, should a change wait for this one after all): what
    # write-behind answers meanwhile queues behind it.
    def chmod(self, path, mode):
        if os.path.basename(path) == "slow":
            end = time.monotonic() + 10
            while not os.path.exists(%r) and time.monotonic() < end:
                time.sleep(0.01)
        return os.chmod(path, mode)

port.FUSE(GatedChmod(sys.argv[1]), sys.argv[2], foreground=True)
'''


def test_files_created_early_reach_the_backend_many_to_a_message(py_mounts):
    """With write_behind, a file created early goes to the backend in the
    same message as its writes and release, and the next files' with it:
    the Python SDK runs the message in order and fills in the handle each
    create returned (Op.fh_from_op). Twenty files made while the backend is
    busy take a few messages, not one per file; the backend has them whole,
    with their times, and holds none of them open afterwards."""
    port = ported_fusepy_loopback(py_mounts)
    script = py_mounts.path("gated_chmod_port.py")
    gate = py_mounts.path("chmod-gate")
    with open(script, "w") as f:
        f.write(_GATED_CHMOD_PORT % (port, gate))
    root = py_mounts.mkdir("many-a-message-root")
    with open(os.path.join(root, "slow"), "w"):
        pass
    mp = py_mounts.mountpoint()
    backend = py_mounts.python(
        [script, root, mp], mountpoint=mp, name="gatedchmod",
        env={"FUSE_HOSTD_MOUNT_OPTIONS":
             "write_behind,default_permissions,attr_timeout=60"})
    # The root's listing and the file's attributes are cached: the chmod and
    # the creates are answered early.
    os.listdir(mp)
    os.stat(os.path.join(mp, "slow"))
    before, _, _ = stats(py_mounts, mp)
    os.chmod(os.path.join(mp, "slow"), 0o600)
    for i in range(20):
        path = os.path.join(mp, "f%02d" % i)
        with open(path, "wb") as f:
            f.write(b"%d" % i * 50)
        os.utime(path, (1000000 + i, 2000000 + i))
    with open(gate, "w"):
        pass  # the backend finishes the chmod; the queue goes on
    # fsync of the directory: fsyncdir waits for everything queued.
    run_cmd(["sync", mp]).check()
    after, _, _ = stats(py_mounts, mp)
    # The chmod's, then the twenty files' (about 100 ops, 64 a message),
    # and the sync's. One message per file before.
    assert after - before <= 6, (before, after)
    for i in range(20):
        path = os.path.join(root, "f%02d" % i)
        with open(path, "rb") as f:
            assert f.read() == b"%d" % i * 50
        assert os.stat(path).st_mtime == 2000000 + i
    assert stat.S_IMODE(os.stat(os.path.join(root, "slow")).st_mode) == 0o600
    fds = "/proc/%d/fd" % backend.proc.pid
    held = [os.readlink(os.path.join(fds, fd)) for fd in os.listdir(fds)]
    assert not [p for p in held if p.startswith(root)], held


def test_a_filesystem_without_xattr_methods_is_asked_for_none(py_mounts):
    """The port has no xattr methods. As libfuse without those callbacks,
    the daemon answers ENOSYS (InitReply.no_xattrs), so the kernel stops
    asking at the first: not before every write to a new file, nor for
    every file `ls -l` lists. Callers see EOPNOTSUPP, as under fusepy."""
    script = ported_fusepy_loopback(py_mounts)
    root = py_mounts.mkdir("no-xattrs-root")
    mp = py_mounts.mountpoint()
    py_mounts.python([script, root, mp], mountpoint=mp, name="fusepyhost")
    for i in range(20):
        with open(os.path.join(mp, "f%02d" % i), "wb") as f:
            f.write(b"a")
            f.flush()
            f.write(b"b")
    run_cmd(["ls", "-l", mp]).check()
    for name in ("user.x", "security.capability"):
        with pytest.raises(OSError) as e:
            os.getxattr(os.path.join(mp, "f00"), name)
        assert e.value.errno == errno.EOPNOTSUPP, name
    with pytest.raises(OSError) as e:
        os.setxattr(os.path.join(mp, "f00"), "user.x", b"1")
    assert e.value.errno == errno.EOPNOTSUPP
    _, _, kernel = stats(py_mounts, mp)
    assert kernel.get("getxattr", 0) <= 1, kernel
    assert kernel.get("setxattr", 0) <= 1, kernel
    with open(os.path.join(root, "f19"), "rb") as f:
        assert f.read() == b"ab"
