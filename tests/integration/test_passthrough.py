"""Kernel passthrough (daemon/passthrough): a local backend hands the daemon
the descriptor of each file it opens, and the kernel then reads, writes and
maps that file itself. Checked through real mounts: the data and attributes
after reads, writes, mmap writes and truncation; that reads and writes no
longer reach the daemon; descriptors the daemon must refuse (a directory, a
pipe, the wrong access mode, a descriptor tagged for another open, one sent
by another process); the fallback to forwarding where passthrough is off or
the kernel refuses the file; and that backing files do not leak."""

import glob
import os
import socket
import struct

import pytest

from conftest import Mount
from daemon_stats import kernel_requests, passthrough_stats
from fhlib import wait_until
from pyfhlib import py_mounts  # noqa: F401  (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))


def write_backing(m, name, data):
    path = os.path.join(m.backing, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def passthrough_fs_mount(py_mounts, give):  # noqa: F811
    """passthrough_fs.py giving `give` (see there) over a new root holding
    f = b"0123456789"; the mount."""
    mp = py_mounts.mountpoint()
    root = py_mounts.mkdir("backing-" + give)
    with open(os.path.join(root, "f"), "wb") as f:
        f.write(b"0123456789")
    proc = py_mounts.python([os.path.join(HERE, "passthrough_fs.py"), root,
                             mp, "--give", give, "-o", "allow_other"],
                            mountpoint=mp)
    return Mount(py_mounts.daemon, proc, mp, "allow_other")


def test_reads_go_straight_to_the_backing_file(mounts):
    m = mounts.mount("loopback")
    data = os.urandom(3 << 20)
    write_backing(m, "big", data)
    ops = mounts.ops(cwd=m.path)
    for _ in range(3):
        got = ops.ok([("open", "big", ["O_RDONLY"]),
                      ("pread", "big", len(data) + 10, 0),
                      ("pread", "big", 100, 1 << 20),
                      ("close", "big")])
        assert got[1] == data
        assert got[2] == data[1 << 20:(1 << 20) + 100]
    opens, refused, _ = passthrough_stats(m)
    assert opens == 3 and refused == 0
    # Not one READ reached the daemon.
    assert kernel_requests(m, "read") == 0


def test_writes_truncation_and_attributes(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    first = b"x" * 5000
    got = ops.ok([
        ("open", "f", ["O_RDWR", "O_CREAT"], 0o644),
        ("pwrite", "f", first, 0),
        ("stat", "f"),                    # by name, while open
        ("fstat", "f"),
        ("pwrite", "f", b"tail", 10000),  # grows the file past a hole
        ("stat", "f"),
        ("ftruncate", "f", 7000),
        ("stat", "f"),
        ("fsync", "f"),
        ("close", "f"),
        ("stat", "f"),
    ])
    assert got[2]["size"] == 5000 and got[3]["size"] == 5000
    assert got[5]["size"] == 10004
    assert got[7]["size"] == 7000
    assert got[10]["size"] == 7000
    with open(os.path.join(m.backing, "f"), "rb") as f:
        on_host = f.read()
    assert on_host == first + b"\0" * 2000
    # Truncation by name after the writes, and the data read back.
    got = ops.ok([("truncate", "f", 3), ("stat", "f"), ("read_file", "f")])
    assert got[1]["size"] == 3 and got[2] == b"xxx"
    assert kernel_requests(m, "write") == 0
    assert passthrough_stats(m)[0] >= 2


def test_times_follow_writes_the_daemon_never_saw(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "t", b"a")])
    ops.ok([("utimensat", "t", [1000, 0], [1000, 0])])
    before = ops.ok([("stat", "t")])[0]
    assert before["mtime_ns"] == 1000 * 10**9
    got = ops.ok([("open", "t", ["O_WRONLY"]), ("pwrite", "t", b"bb", 0),
                  ("stat", "t"), ("close", "t"), ("stat", "t")])
    assert got[2]["mtime_ns"] > 1000 * 10**9
    assert got[4]["size"] == 2
    st = os.stat(os.path.join(m.backing, "t"))
    assert got[4]["mtime_ns"] == st.st_mtime_ns


def test_mmap_writes_reach_the_backing_file(mounts):
    m = mounts.mount("loopback")
    write_backing(m, "mm", b"\0" * 8192)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("open", "mm", ["O_RDWR"]),
            ("mmap_write", "mm", 4096, b"mapped"),
            ("close", "mm")])
    with open(os.path.join(m.backing, "mm"), "rb") as f:
        assert f.read()[4096:4102] == b"mapped"
    got = ops.ok([("open", "mm", ["O_RDONLY"]),
                  ("pread", "mm", 6, 4096),
                  ("close", "mm"), ("stat", "mm")])
    assert got[1] == b"mapped" and got[3]["size"] == 8192
    assert kernel_requests(m, "write") == 0 and kernel_requests(m, "read") == 0


def test_backing_files_are_released(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_files", "f", 50, 100)])
    before = passthrough_stats(m)[0]
    batch = []
    for i in range(50):
        name = "f%d" % i
        batch += [("open", name, ["O_RDONLY"]), ("read", name, 200),
                  ("open", name, ["O_RDWR"], 0o644, name + "w"),
                  ("close", name + "w"), ("close", name)]
    for _ in range(4):
        ops.ok(batch)
    # Releases are answered at once and processed in order: wait for them.
    assert wait_until(lambda: passthrough_stats(m)[2] == 0, 10), \
        passthrough_stats(m)
    assert passthrough_stats(m)[0] - before == 400


@pytest.mark.parametrize("held_mode", ["r", "r+"])
def test_a_file_replaced_behind_an_open_one_opens_as_the_new_one(mounts,
                                                                held_mode):
    # An editor's save: a new file renamed over the name, on the backend,
    # while a reader holds the old one open through the mount. The kernel
    # binds every open of an inode to one backing file (fs/fuse/iomode.c),
    # so the new file cannot be opened on the old node: the name gets a new
    # one, and the old file lives on for its holder.
    m = mounts.mount("loopback")
    path = os.path.join(m.path, "f")
    with open(path, "w") as f:
        f.write("old\n")
    held = open(path, held_mode)
    try:
        write_backing(m, "f.new", b"new file\n")
        os.rename(os.path.join(m.backing, "f.new"),
                  os.path.join(m.backing, "f"))
        for mode in ("r", "r+"):
            with open(path, mode) as f:
                assert f.read() == "new file\n"
        assert held.read() == "old\n"
        # fstat shows the old file: through the backend's handle, or, for
        # a read-only open the daemon answered itself (no handle at the
        # backend, and the name leads to the new file), from the file the
        # daemon holds for it.
        held_st = os.fstat(held.fileno())
        assert (held_st.st_size, held_st.st_nlink) == (4, 0)
        assert wait_until(lambda: os.stat(path).st_size == 9, 10)
    finally:
        held.close()
    assert wait_until(lambda: passthrough_stats(m)[2] == 0, 10), \
        passthrough_stats(m)


def test_passthrough_off_forwards_everything(mounts):
    m = mounts.mount("loopback", options="allow_other,passthrough=off")
    data = os.urandom(1 << 20)
    write_backing(m, "f", data)
    ops = mounts.ops(cwd=m.path)
    got = ops.ok([("read_file", "f"), ("write_file", "g", b"hello"),
                  ("stat", "g")])
    assert got[0] == data and got[2]["size"] == 5
    assert passthrough_stats(m) == (0, 0, 0)
    assert kernel_requests(m, "read") > 0 and kernel_requests(m, "write") > 0


def test_a_file_on_a_fuse_mount_is_forwarded(mounts):
    """A backing file on a FUSE mount is refused by the daemon (not a
    storage filesystem of this machine, daemon/passthrough/local_filesystem.h;
    the kernel would refuse it too, stacking beyond max_stack_depth 1): a
    loopback of a loopback mount gets no passthrough and forwards, with the
    same data."""
    lower = mounts.mount("loopback")
    data = os.urandom(1 << 20)
    write_backing(lower, "f", data)
    upper = mounts.mount("loopback", root=lower.path)
    ops = mounts.ops(cwd=upper.path)
    got = ops.ok([("read_file", "f"), ("write_file", "g", b"abc"),
                  ("stat", "g"), ("read_file", "g")])
    assert got[0] == data and got[2]["size"] == 3 and got[3] == b"abc"
    # Three descriptors offered (two opens and a create), none used.
    assert passthrough_stats(upper) == (0, 3, 0)
    assert kernel_requests(upper, "read") > 0
    # The lower mount itself still passes its files through.
    assert passthrough_stats(lower)[0] > 0


@pytest.mark.parametrize("give", ["dir", "pipe", "readonly", "wrong-tag"])
def test_refused_descriptors_fall_back_to_forwarding(py_mounts, give):  # noqa: F811
    m = passthrough_fs_mount(py_mounts, give)
    mp = m.path
    ops = py_mounts.ops(cwd=mp)
    got = ops.ok([("open", "f", ["O_RDWR"]), ("pread", "f", 100, 0),
                  ("pwrite", "f", b"AB", 2), ("fsync", "f"),
                  ("close", "f"), ("read_file", "f"), ("stat", "f")])
    assert got[1] == b"0123456789"
    assert got[5] == b"01AB456789" and got[6]["size"] == 10
    opens, refused, _ = passthrough_stats(m)
    if give == "readonly":
        # Refused for the read-write open; right for read_file's read-only
        # one, which is passed through.
        assert (opens, refused) == (1, 1)
    else:
        assert opens == 0 and refused == 2
    # The kernel sends RELEASE after close(2) has returned.
    assert wait_until(lambda: passthrough_stats(m)[2] == 0, 10)
    assert kernel_requests(m, "read") > 0 and kernel_requests(m, "write") > 0


def test_an_open_not_passed_through_beside_one_that_is(py_mounts):  # noqa: F811
    # The backend gives a read-only descriptor whatever the open asked: a
    # read-only open is passed through, a read-write one cannot be. While
    # the first is open the kernel refuses any other answer on its inode
    # (even direct I/O): the read-write open goes to a new node, and the
    # holder of the first sees its writes.
    m = passthrough_fs_mount(py_mounts, "readonly")
    mp = m.path
    path = os.path.join(mp, "f")
    held = open(path, "rb")
    try:
        with open(path, "r+b") as g:
            g.write(b"AB")
        assert held.read() == b"AB23456789"
        with open(path, "rb") as f:
            assert f.read() == b"AB23456789"
    finally:
        held.close()
    # Two read-only opens passed through; the read-write one's descriptor
    # refused on the first node and again on the new one.
    assert passthrough_stats(m)[:2] == (2, 2)
    assert wait_until(lambda: passthrough_stats(m)[2] == 0, 10)


def test_the_right_descriptor_is_passed_through(py_mounts):  # noqa: F811
    m = passthrough_fs_mount(py_mounts, "right")
    mp = m.path
    got = py_mounts.ops(cwd=mp).ok([("open", "f", ["O_RDWR"]),
                                    ("pwrite", "f", b"AB", 2),
                                    ("close", "f"), ("read_file", "f")])
    assert got[3] == b"01AB456789"
    assert passthrough_stats(m)[0] == 2 and passthrough_stats(m)[1] == 0
    assert kernel_requests(m, "read") == 0 and kernel_requests(m, "write") == 0


def test_another_process_cannot_hand_over_descriptors(mounts):
    """The daemon's descriptor sockets are reachable by anyone; a process
    that is not the mount's backend sends a decoy for every tag it could
    guess, and the mount still shows its own file. (Opens of the backend:
    the daemon's own opens, test_daemon_opens.py, take no descriptor.)"""
    m = mounts.mount("loopback", options="allow_other,daemon_opens=off")
    write_backing(m, "f", b"the real file")
    decoy_path = mounts.path("decoy")
    with open(decoy_path, "wb") as f:
        f.write(b"a decoy file!")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("read_file", "f")])  # the backend's socket is accepted first
    sockets = glob.glob(os.path.join(os.path.dirname(m.daemon.sock),
                                     "passthrough", "*.sock"))
    assert sockets
    decoy = os.open(decoy_path, os.O_RDONLY)
    conns = []
    try:
        for path in sockets:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            conns.append(s)
            for tag in range(1, 60):
                socket.send_fds(s, [struct.pack("<Q", tag)], [decoy])
        for _ in range(5):
            assert ops.ok([("read_file", "f")])[0] == b"the real file"
    finally:
        os.close(decoy)
        for s in conns:
            s.close()
    log = open(m.daemon.log).read()
    assert "refusing a descriptor connection" in log


def test_python_loopback_reads_bypass_the_daemon(py_mounts):  # noqa: F811
    m = py_mounts.mount("loopback")
    data = os.urandom(2 << 20)
    with open(os.path.join(m.backend.root, "f"), "wb") as f:
        f.write(data)
    ops = py_mounts.ops(cwd=m.path)
    got = ops.ok([("read_file", "f"), ("write_file", "g", b"x" * 100000),
                  ("stat", "g")])
    assert got[0] == data and got[2]["size"] == 100000
    assert passthrough_stats(m)[0] >= 2
    assert kernel_requests(m, "read") == 0 and kernel_requests(m, "write") == 0
