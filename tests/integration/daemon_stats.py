"""What a mount's daemon counted (`fuse-hostctl stats`): the ops sent to
the backend and the requests from the kernel, for the checks of round
trips, caching and passthrough (test_daemon_caching.py,
test_python_loopback.py, test_two_mounts.py, test_passthrough.py,
test_backend_restart.py, test_prefetch.py, test_uring.py)."""

import re


def backend_ops(m):
    """How many ops the daemon has sent to the backend of mount `m`."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    for line in out.splitlines():
        f = line.split()
        if f[:1] == ["backend"]:
            return int(f[3])
    raise AssertionError("no backend line in stats:\n" + out)


def counted(m, pattern):
    """The number the first group of `pattern` (a regular expression)
    finds in the stats of mount `m`."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    found = re.search(pattern, out)
    assert found, "no match for %r in stats:\n%s" % (pattern, out)
    return int(found.group(1))


def kernel_nodes(m):
    """How many files and directories the kernel holds an inode for."""
    return counted(m, r"inodes held by the kernel (\d+)")


def kernel_requests(m, op):
    """How many `op` requests the kernel has sent for mount `m`."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    for line in out.splitlines():
        f = line.split()
        if f[:1] == [op] and len(f) >= 2 and f[1].isdigit():
            return int(f[1])
    return 0


def passthrough_stats(m):
    """(opens passed through, descriptors refused, backing files now)."""
    pt = _passthrough_line(m)
    return pt["opens"], pt["refused"], pt["backing"]


def daemon_opens(m):
    """Of the opens passed through, how many the daemon answered itself."""
    return _passthrough_line(m)["daemon"]


def _passthrough_line(m):
    out = m.daemon.ctl("stats", m.path).check().stdout
    for line in out.splitlines():
        found = re.match(
            r"\s*passthrough\s+(?P<opens>\d+) opens \((?P<daemon>\d+) by the "
            r"daemon\), (?P<refused>\d+) refused, (?P<backing>\d+) backing",
            line)
        if found:
            return {k: int(v) for k, v in found.groupdict().items()}
    raise AssertionError("no passthrough line in stats:\n" + out)


def backend_ops_making_files(mounts, kind, count):
    """Backend ops it takes to make `count` files of 100 bytes in a new,
    listed directory of a fresh `kind` mount (and stat them). Writes are
    forwarded (passthrough=off): their replies carrying the file's
    attributes is what is counted; with passthrough the daemon sees no
    writes and asks for the attributes instead (test_passthrough.py)."""
    m = mounts.mount(kind, options="allow_other,passthrough=off")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("listdir", "d")])
    before = backend_ops(m)
    ops.ok([("write_files", "d/f", count, 100)])
    got = ops.run([("stat", "d"), ("stat", "d/f%d" % (count - 1))])
    assert got[0]["nlink"] == 2 and got[1]["size"] == 100, got
    return backend_ops(m) - before
