"""Filesystems written for mfusepy the ways its current examples are
(mfusepy_style/, see the README there) run through fuse-hostd with only
`import mfusepy as fuse` changed to `import fusehost as fuse`, and pass the
checks mfusepy's own tests make of its examples: files written, read,
truncated, chmod-ed, chown-ed, given xattrs and times, listed, removed;
directories, renames, absolute symlinks, statfs; 200 files listed as they
are made; an ioctl adding one to its argument; a filesystem's own inode
numbers; listings of 1000 names in pieces. Each filesystem runs as its own
process (FUSE(foreground=True)), as root, and must end when the mount goes
away."""

import ctypes
import errno
import fcntl
import os
import struct

import pytest

from fhlib import is_mounted, run_cmd, spawn_logged, wait_until
from pyfhlib import py_mounts  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
STYLE = os.path.join(HERE, "mfusepy_style")


def iowr(kind, number, size):
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


def ported(py_mounts):
    """A directory with every file of mfusepy_style/, each with only its
    import line changed (handles.py imports notes.py, ported too)."""
    directory = py_mounts.path("mfusepy_style_ported")
    if os.path.isdir(directory):
        return directory
    os.mkdir(directory)
    for name in os.listdir(STYLE):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(STYLE, name)) as f:
            original = f.read().splitlines(keepends=True)
        port = [("import fusehost as fuse\n"
                 if line == "import mfusepy as fuse\n" else line)
                for line in original]
        assert sum(a != b for a, b in zip(original, port)) == 1, name
        with open(os.path.join(directory, name), "w") as f:
            f.writelines(port)
    return directory


def start(py_mounts, name, *args):
    mp = py_mounts.mountpoint()
    script = os.path.join(ported(py_mounts), name + ".py")
    proc = py_mounts.python([script] + list(args) + [mp], mountpoint=mp,
                            name=name)
    return proc, mp


def stop(py_mounts, proc, mp):
    """Unmounting ends FUSE(): the process exits by itself, cleanly."""
    py_mounts.daemon.unmount(mp).check()
    assert proc.wait(20) == 0, proc.output()
    assert wait_until(lambda: not is_mounted(mp), 10)
    out = proc.output()
    assert "Traceback" not in out, out


def check_read_write(mp, memory, ioctl=False):
    """What mfusepy's test_read_write_file_system checks (the ioctl only of
    its memory example, the one with an ioctl)."""
    path = os.path.join(mp, "foo")
    assert os.path.isdir(mp)
    assert not os.path.isdir(path)
    with open(path, "wb") as f:
        assert f.write(b"bar") == 3
    assert os.path.isfile(path) and not os.path.isdir(path)
    with open(path, "rb") as f:
        assert f.read() == b"bar"

    if ioctl:
        with open(path, "rb") as f:
            out = fcntl.ioctl(f, iowr("M", 1, ctypes.sizeof(ctypes.c_uint32)),
                              struct.pack("I", 123))
        assert struct.unpack("I", out)[0] == 124

    os.truncate(path, 2)
    with open(path, "rb") as f:
        assert f.read() == b"ba"

    os.chmod(path, 0)
    assert os.stat(path).st_mode & 0o777 == 0
    os.chmod(path, 0o777)
    assert os.stat(path).st_mode & 0o777 == 0o777

    try:
        os.chown(path, 12345, 23456)
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (12345, 23456)
    except PermissionError:
        assert not memory
    os.chown(path, os.getuid(), os.getgid())
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == \
        (os.getuid(), os.getgid())

    try:
        assert not os.listxattr(path)
        os.setxattr(path, b"user.tag-test", b"FOO-RESULT")
        assert os.listxattr(path)
        assert os.getxattr(path, b"user.tag-test") == b"FOO-RESULT"
        os.removexattr(path, b"user.tag-test")
        assert not os.listxattr(path)
    except OSError as e:
        assert not memory
        assert e.errno == errno.ENOTSUP

    os.utime(path, (1.5, 12.5))
    assert (os.stat(path).st_atime, os.stat(path).st_mtime) == (1.5, 12.5)
    os.utime(path, ns=(int(1.5e9), int(12.5e9)))
    assert (os.stat(path).st_atime, os.stat(path).st_mtime) == (1.5, 12.5)

    assert os.listdir(mp) == ["foo"]
    os.unlink(path)
    assert not os.path.exists(path)

    os.mkdir(path)
    assert os.path.isdir(path) and not os.path.isfile(path)
    assert os.listdir(mp) == ["foo"]
    assert os.listdir(path) == []

    bar = os.path.join(mp, "bar")
    os.rename(path, bar)
    assert not os.path.exists(path) and os.path.exists(bar)

    os.symlink(bar, path)
    assert os.path.exists(path) and os.path.isdir(path)
    assert os.path.islink(path)
    assert os.readlink(path) == bar

    os.rmdir(bar)
    assert not os.path.exists(bar)

    if memory:
        assert os.statvfs(mp).f_bsize == 512
        assert os.statvfs(mp).f_bavail == 2048

    for i in range(200):
        name = os.path.join(mp, str(i))
        assert not os.path.exists(name)
        with open(name, "wb") as f:
            assert f.write(b"bar") == 3
        assert len(os.listdir(mp)) == i + 2
    for i in range(200):
        os.unlink(os.path.join(mp, str(i)))


def test_loopback_style_with_decorated_methods(py_mounts):
    root = py_mounts.mkdir("mirrored")
    proc, mp = start(py_mounts, "mirror", root)
    check_read_write(mp, memory=False)
    # The decorators' *args did not make rename take renameat2's flags
    # (mfusepy never passes them): the rename above reached os.rename.
    assert sorted(os.listdir(root)) == ["foo"]
    assert os.path.islink(os.path.join(root, "foo"))
    assert "fuse.log-mixin:-> " in proc.output()  # fuse.log_callback
    stop(py_mounts, proc, mp)


def test_memory_style_with_ioctl(py_mounts):
    proc, mp = start(py_mounts, "notes")
    check_read_write(mp, memory=True, ioctl=True)
    path = os.path.join(mp, "f")
    with open(path, "wb") as f:
        f.write(b"x")
    # The largest command a number can describe: 16383 bytes each way.
    given = bytes(range(256)) * 63 + bytes(255)
    buf = bytearray(given)
    with open(path, "rb") as f:
        assert fcntl.ioctl(f, iowr("M", 2, 16383), buf, True) == 0
    assert bytes(buf) == given[::-1]
    # A directory's ioctl reaches the filesystem too.
    fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = fcntl.ioctl(fd, iowr("M", 1, 4), struct.pack("I", 41))
        assert struct.unpack("I", out)[0] == 42
    finally:
        os.close(fd)
    # A command the filesystem does not know: ENOTTY, as ioctl(2) says.
    with open(path, "rb") as f:
        with pytest.raises(OSError) as caught:
            fcntl.ioctl(f, iowr("M", 9, 4), struct.pack("I", 1))
    assert caught.value.errno == errno.ENOTTY
    os.unlink(path)
    stop(py_mounts, proc, mp)


def test_nullpath_style_with_its_own_inode_numbers(py_mounts):
    proc, mp = start(py_mounts, "handles")
    check_read_write(mp, memory=True)
    stop(py_mounts, proc, mp)

    # mfusepy's test_use_inode.
    proc, mp = start(py_mounts, "handles")
    assert os.stat(mp).st_ino == 31
    path = os.path.join(mp, "foo")
    with open(path, "wb") as f:
        assert f.write(b"bar") == 3
    assert os.path.isfile(path)
    assert os.stat(path).st_ino == 100
    stop(py_mounts, proc, mp)


@pytest.mark.parametrize("how", [[], ["--numbered"]],
                         ids=["readdir_with_offset", "readdir_with_offsets"])
def test_listings_of_1000_names_in_pieces(py_mounts, how):
    proc, mp = start(py_mounts, "offsets", *how)
    assert os.path.isdir(mp)
    assert not os.path.isdir(os.path.join(mp, "foo"))
    names = os.listdir(mp)
    assert len(set(names)) == len(names) == 1000
    assert names[0] == "0000" and names[-1] == "0999"
    stop(py_mounts, proc, mp)


def read_as(user, path):
    """What `cat path` run by `user` prints, or its error."""
    r = run_cmd(["cat", path], user=user)
    return r.stdout if r.returncode == 0 else r.stderr


def test_posix_acls_are_enforced_by_the_kernel(py_mounts, users):
    """mfusepy's test_posix_acl.py: with FUSE_CAP_POSIX_ACL asked for, the
    ACLs the filesystem returns decide access, against the mode bits."""
    import fusehost
    proc, mp = start(py_mounts, "acl", str(users.a.uid))
    assert wait_until(lambda: "ACLs enforced:" in proc.output(), 10)
    assert "ACLs enforced: True" in proc.output()
    a = users.a.uid
    stored = {
        "allowed": [(fusehost.ACL_USER_OBJ, 6, fusehost.ACL_UNDEFINED_ID),
                    (fusehost.ACL_USER, fusehost.ACL_READ, a),
                    (fusehost.ACL_GROUP_OBJ, 0, fusehost.ACL_UNDEFINED_ID),
                    (fusehost.ACL_MASK, 4, fusehost.ACL_UNDEFINED_ID),
                    (fusehost.ACL_OTHER, 0, fusehost.ACL_UNDEFINED_ID)],
        "denied": [(fusehost.ACL_USER_OBJ, 6, fusehost.ACL_UNDEFINED_ID),
                   (fusehost.ACL_USER, 0, a),
                   (fusehost.ACL_GROUP_OBJ, 4, fusehost.ACL_UNDEFINED_ID),
                   (fusehost.ACL_MASK, 4, fusehost.ACL_UNDEFINED_ID),
                   (fusehost.ACL_OTHER, 4, fusehost.ACL_UNDEFINED_ID)],
    }
    for name, entries in stored.items():
        value = os.getxattr(os.path.join(mp, name),
                            fusehost.XATTR_NAME_POSIX_ACL_ACCESS)
        assert fusehost.unpack_posix_acl(value) == entries
    # Mode 0640 of root's keeps user a out; the ACL lets them read.
    assert read_as(users.a, os.path.join(mp, "allowed")) == "Hello ACL!\n"
    # Mode 0644 lets everyone read; the ACL names user a and denies them,
    # while user b (others in the ACL) still reads.
    assert "Permission denied" in read_as(users.a, os.path.join(mp, "denied"))
    assert read_as(users.b, os.path.join(mp, "denied")) == "Hello ACL!\n"
    assert "Permission denied" in read_as(users.b,
                                          os.path.join(mp, "allowed"))
    stop(py_mounts, proc, mp)


def test_without_asking_for_acls_the_mode_bits_decide(py_mounts, users):
    proc, mp = start(py_mounts, "acl", str(users.a.uid), "--mode-bits-only")
    assert wait_until(lambda: "ACLs enforced:" in proc.output(), 10)
    assert "ACLs enforced: False" in proc.output()
    assert "Permission denied" in read_as(users.a,
                                          os.path.join(mp, "allowed"))
    assert read_as(users.a, os.path.join(mp, "denied")) == "Hello ACL!\n"
    stop(py_mounts, proc, mp)


FAILING_INIT = """
import errno, sys
import fusehost as fuse

class Failing(fuse.Operations):
    def init_with_config(self, conn_info, config_3):
        raise RuntimeError("init failed")

class Refusing(fuse.Operations):
    def init(self, path):
        raise OSError(errno.EACCES, "init failed")

ops = {"failing": Failing, "refusing": Refusing}[sys.argv[1]]()
fuse.FUSE(ops, sys.argv[2], foreground=True)
"""


@pytest.mark.parametrize("kind,error", [("failing", "Input/output error"),
                                        ("refusing", "Permission denied")])
def test_an_exception_in_init_aborts_the_mount(py_mounts, kind, error):
    """mfusepy's test_init_exception.py: an exception raised by init ends
    FUSE() with an error and leaves nothing mounted."""
    script = os.path.join(py_mounts.mkdir("init_" + kind), "fs.py")
    with open(script, "w") as f:
        f.write(FAILING_INIT)
    mp = py_mounts.mountpoint()
    proc = py_mounts.python([script, kind, mp], name="init" + kind,
                            start=False)
    proc.proc = spawn_logged(proc.command(), proc.log, cwd="/", env=proc.env)
    code = proc.wait(30)
    out = proc.output()
    assert code not in (0, None), out
    assert "init failed" in out and error in out, out
    assert not is_mounted(mp)
