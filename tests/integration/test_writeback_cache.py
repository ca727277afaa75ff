"""The mount option writeback_cache: the kernel gathers writes in its page
cache and sends them in large writes, keeping files' sizes and times itself.
Checked through real mounts of the C++ loopback: small appends reach the
backend in a few writes and land intact; a write-only open that writes part
of a page (the kernel reads the rest first), appends through O_APPEND (placed
by the kernel, not the backend), a file the caller may write but not read,
fsync before close and mmap all leave the backing file as on a local file
system; the mount has no passthrough (the kernel does not offer both); and a
close costs no flush at a backend whose flush does nothing."""

import os

from daemon_stats import backend_ops, kernel_requests, passthrough_stats
from fhlib import run_cmd

OPTIONS = "allow_other,writeback_cache"


def backing_bytes(m, name):
    with open(os.path.join(m.backing, name), "rb") as f:
        return f.read()


def append_records(path, count):
    """`count` appends of 100 bytes, each its own write(2); what was
    written."""
    expected = bytearray()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for i in range(count):
            record = b"%-99d\n" % i
            assert os.write(fd, record) == len(record)
            expected += record
    finally:
        os.close(fd)
    return bytes(expected)


def test_small_appends_reach_the_backend_in_a_few_writes(mounts):
    count = 500
    plain = mounts.mount("loopback", options="allow_other,passthrough=off")
    cached = mounts.mount("loopback", options=OPTIONS)
    for m in (plain, cached):
        expected = append_records(os.path.join(m.path, "log"), count)
        assert backing_bytes(m, "log") == expected
        assert os.stat(os.path.join(m.path, "log")).st_size == len(expected)
    # One write request per write(2) without the cache; with it the kernel
    # sends the pages it gathered, at close.
    assert kernel_requests(plain, "write") >= count
    assert kernel_requests(cached, "write") <= 5
    # No passthrough on such a mount, even from a backend that offers it.
    assert passthrough_stats(cached)[0] == 0


def test_a_write_only_open_may_write_part_of_a_page(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    data = bytearray(os.urandom(10000))
    with open(os.path.join(m.backing, "f"), "wb") as f:
        f.write(data)
    # The kernel must read the rest of the page it writes into, through
    # the handle of this write-only open.
    fd = os.open(os.path.join(m.path, "f"), os.O_WRONLY)
    try:
        assert os.pwrite(fd, b"XYZ", 5000) == 3
        assert os.pwrite(fd, b"end", 9998) == 3
    finally:
        os.close(fd)
    data[5000:5003] = b"XYZ"
    data[9998:10001] = b"end"
    assert backing_bytes(m, "f") == bytes(data)
    with open(os.path.join(m.path, "f"), "rb") as f:
        assert f.read() == bytes(data)


def test_appends_go_to_the_end_of_the_file_as_the_kernel_knows_it(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    with open(os.path.join(m.backing, "a"), "wb") as f:
        f.write(b"x" * 100)
    path = os.path.join(m.path, "a")
    one = os.open(path, os.O_WRONLY | os.O_APPEND)
    two = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(3):
            os.write(one, b"one%d" % i)
            os.write(two, b"two%d" % i)
        # An offset means nothing to an append.
        os.lseek(one, 0, os.SEEK_SET)
        os.write(one, b"last")
    finally:
        os.close(one)
        os.close(two)
    expected = b"x" * 100 + b"one0two0one1two1one2two2last"
    assert backing_bytes(m, "a") == expected
    assert os.stat(path).st_size == len(expected)


def test_a_file_its_caller_may_write_but_not_read_is_written(mounts, users):
    m = mounts.mount("loopback", options=OPTIONS)
    os.chmod(m.backing, 0o777)
    backing = os.path.join(m.backing, "wo")
    open(backing, "wb").close()
    os.chown(backing, users.a.uid, users.a.gid)
    os.chmod(backing, 0o200)
    ops = mounts.ops(users.a, cwd=m.path)
    got = ops.run([("open", "wo", ["O_WRONLY"]),
                   ("write", "wo", b"hello"),
                   ("close", "wo"),
                   ("open", "wo", ["O_RDONLY"])])
    assert got[0] is True and got[1] == 5, got
    assert got[3] == "EACCES", got
    assert backing_bytes(m, "wo") == b"hello"


def test_fsync_reaches_the_backing_file_before_close(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    data = os.urandom(200000)
    fd = os.open(os.path.join(m.path, "synced"),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        assert backing_bytes(m, "synced") == data
    finally:
        os.close(fd)
    assert kernel_requests(m, "fsync") >= 1


def test_shared_mmap_writes_reach_the_backing_file(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    with open(os.path.join(m.backing, "mapped"), "wb") as f:
        f.write(b"." * 8192)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("open", "mapped", ["O_RDWR"]),
            ("mmap_write", "mapped", 4090, b"across"),
            ("fsync", "mapped"),
            ("close", "mapped")])
    expected = bytearray(b"." * 8192)
    expected[4090:4096] = b"across"
    assert backing_bytes(m, "mapped") == bytes(expected)


def test_sizes_and_times_while_writes_are_gathered(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    path = os.path.join(m.path, "grow")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        before = os.stat(path)
        os.write(fd, b"y" * 5000)
        # The kernel's own size, before any write reached the backend.
        during = os.stat(path)
        assert during.st_size == 5000
        assert during.st_mtime_ns >= before.st_mtime_ns
        os.ftruncate(fd, 100)
        assert os.stat(path).st_size == 100
    finally:
        os.close(fd)
    assert backing_bytes(m, "grow") == b"y" * 100


def backing_on(mounts, fstype):
    """A new directory with a file system of `fstype` mounted on it; the
    caller unmounts it (lazily: the backend may still hold it)."""
    d = mounts.mkdir("backing-" + fstype)
    run_cmd(["mount", "-t", fstype, fstype, d], timeout=10).check()
    return d


def ops_for_rewrites(m, count):
    """Backend ops and kernel FLUSH requests for `count` rounds of open,
    write and close of one file of mount `m`. Not counted: the setattrs
    that carry the times the kernel kept to the backend, which it sends
    when they changed since the last (as the clock ticks)."""
    path = os.path.join(m.path, "rewritten")
    open(path, "wb").close()

    def ops_but_setattr():
        return backend_ops(m) - kernel_requests(m, "setattr")

    ops, flushes = ops_but_setattr(), kernel_requests(m, "flush")
    for i in range(count):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"%05d" % i)
        finally:
            os.close(fd)
    with open(os.path.join(m.backing, "rewritten"), "rb") as f:
        assert f.read() == b"%05d" % (count - 1)
    return ops_but_setattr() - ops, kernel_requests(m, "flush") - flushes


def test_a_close_costs_no_flush_where_the_backend_says_it_does_nothing(
        mounts):
    """The kernel sends FLUSH at every close of a writeback_cache mount,
    whatever the open said; loopback_fs says its flush does nothing on a
    tmpfs and not on a ramfs (not in its list). The tmpfs mount's flushes
    are answered by the daemon, the ramfs mount's reach the backend."""
    count = 40
    tmpfs, ramfs = backing_on(mounts, "tmpfs"), backing_on(mounts, "ramfs")
    try:
        quiet = mounts.mount("loopback", options=OPTIONS, root=tmpfs)
        heard = mounts.mount("loopback", options=OPTIONS, root=ramfs)
        quiet_ops, quiet_flushes = ops_for_rewrites(quiet, count)
        heard_ops, heard_flushes = ops_for_rewrites(heard, count)
    finally:
        for d in (tmpfs, ramfs):
            run_cmd(["umount", "-l", d], timeout=10)
    assert quiet_flushes >= count and heard_flushes >= count
    # Everything else the two mounts send is the same (a release, sent
    # after the close returned, may still be on its way).
    assert heard_ops - quiet_ops >= count - 2, (quiet_ops, heard_ops)
