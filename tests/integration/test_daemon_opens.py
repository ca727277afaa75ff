"""Read-only opens the daemon answers itself (InitReply.root_directory): the
C++ and the Python loopback hand over their root directory, and the daemon
opens files beneath it, as the user the backend would have opened them as (the test
backends run as root and act as their callers), and passes them through,
without a message to the backend. Checked through real mounts: the data,
that nothing reaches the backend, the callers' permissions, an operation
that needs the backend's handle, a restarted backend, and the option that
turns it off."""

import os

import pytest

from daemon_stats import (backend_ops, daemon_opens, kernel_requests,
                          passthrough_stats)
from fhlib import wait_until
from pyfhlib import py_mounts  # noqa: F401  (fixture)


@pytest.fixture(params=["C++", "Python"])
def loopbacks(request, mounts, py_mounts):  # noqa: F811
    """Mounts of examples/loopback, or of examples/python/loopback.py."""
    return mounts if request.param == "C++" else py_mounts


def make_tree(mounts, name, files, mode=0o644, owner=None):
    """A backing directory holding `files` ({relative path: bytes}), made
    before the mount, so that no change notice from the backend's watcher
    can race with what a test counts."""
    src = mounts.mkdir(name)
    for rel, data in files.items():
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, *owner)
    return src


def test_reads_of_a_loopback_send_the_backend_nothing(loopbacks):
    files = {"d/f%02d" % i: os.urandom(100 + i) for i in range(20)}
    m = loopbacks.mount("loopback", root=make_tree(loopbacks, "plain", files))
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("listdir", "d")] + [("stat", n) for n in files])
    before = backend_ops(m)
    assert ops.ok([("read_file", n) for n in files]) == list(files.values())
    assert backend_ops(m) == before, "an open or a release reached the backend"
    assert daemon_opens(m) == 20
    assert passthrough_stats(m)[0] == 20
    assert kernel_requests(m, "open") == 20
    assert kernel_requests(m, "read") == 0
    # Nothing to write back, and POSIX locks are the kernel's: no FLUSH.
    assert kernel_requests(m, "flush") == 0
    # Writable opens are the backend's, and see the same file.
    got = ops.ok([("open", "d/f00", ["O_RDWR"], 0o644, "w"),
                  ("pwrite", "w", b"new", 0), ("close", "w"),
                  ("read_file", "d/f00")])
    assert got[3][:3] == b"new"
    assert daemon_opens(m) == 21
    assert passthrough_stats(m)[0] == 22


def test_the_daemon_opens_files_as_their_caller(loopbacks, users):
    src = make_tree(loopbacks, "perm", {"mine": b"only a", "group": b"shared",
                                     "public": b"anyone"})
    os.chown(os.path.join(src, "mine"), users.a.uid, users.a.gid)
    os.chmod(os.path.join(src, "mine"), 0o600)
    os.chown(os.path.join(src, "group"), 0, users.group_gid)
    os.chmod(os.path.join(src, "group"), 0o640)
    m = loopbacks.mount("loopback", root=src)
    a = loopbacks.ops(user=users.a, cwd=m.path)
    b = loopbacks.ops(user=users.b, cwd=m.path)
    assert a.ok([("read_file", "mine"), ("read_file", "group")]) == \
        [b"only a", b"shared"]
    # b is in the group, but not the owner of "mine": the daemon's open as b
    # fails, and so does the backend's, which answers for it.
    assert b.run([("read_file", "mine")])[0] == "EACCES"
    assert b.ok([("read_file", "group"), ("read_file", "public")]) == \
        [b"shared", b"anyone"]
    assert daemon_opens(m) == 4


def test_an_op_that_needs_the_backends_handle_opens_the_file_there(mounts):
    m = mounts.mount("loopback", root=make_tree(mounts, "lazy",
                                                {"f": b"0123456789"}))
    ops = mounts.ops(cwd=m.path)
    ops.ok([("stat", "f")])
    before = backend_ops(m)
    got = ops.ok([("open", "f", ["O_RDONLY"]), ("pread", "f", 4, 2),
                  ("fsync", "f"), ("pread", "f", 4, 6), ("close", "f")])
    assert got[1] == b"2345" and got[3] == b"6789"
    assert daemon_opens(m) == 1
    # The fsync opened the file at the backend (open, fsync); its close then
    # released it there (a read-only open asks for no flush: the kernel
    # keeps the loopback's POSIX locks).
    assert wait_until(lambda: backend_ops(m) - before == 3, 10), \
        backend_ops(m) - before
    assert kernel_requests(m, "fsync") == 1


def test_a_restarted_backend_hands_its_directory_over_again(mounts):
    m = mounts.mount("loopback", root=make_tree(mounts, "restart",
                                                {"f": b"first"}))
    ops = mounts.ops(cwd=m.path)
    assert ops.ok([("read_file", "f")]) == [b"first"]
    assert daemon_opens(m) == 1
    m.backend.stop()
    m.backend.start()
    # The daemon learns of the new run from its first reply, drops the old
    # run's directory and greets the new one, which sends its own.
    with open(os.path.join(m.backend.root, "g"), "wb") as f:
        f.write(b"second")

    def opened_by_daemon_again():
        before = daemon_opens(m)
        assert ops.ok([("read_file", "g")]) == [b"second"]
        return daemon_opens(m) > before

    assert wait_until(opened_by_daemon_again, 20)


def test_daemon_opens_off_leaves_every_open_to_the_backend(loopbacks):
    m = loopbacks.mount("loopback", options="allow_other,daemon_opens=off",
                        root=make_tree(loopbacks, "off", {"f": b"data"}))
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("stat", "f")])
    before = backend_ops(m)
    assert ops.ok([("read_file", "f")]) == [b"data"]
    assert daemon_opens(m) == 0
    assert passthrough_stats(m)[0] == 1
    assert backend_ops(m) > before
