"""One backend serving two mounts stays coherent: loopback_fs, and
examples/python/loopback.py served with --listen, each mounted twice through
the session's daemon. Both cache for a minute and announce what changes in
their directory (inotify), leaving out their own changes; a change made
through one mount is not one the other mount's daemon side knows of, so it
must still reach that mount, at once rather than after the minute."""

import time

import pytest

from daemon_stats import backend_ops, kernel_requests
from fhlib import is_err, wait_until
from pyfhlib import py_mounts  # noqa: F401  (fixture)

# How long a change through one mount may take to show through the other:
# far below the loopbacks' 60 s lifetime, far above an inotify round trip.
SEEN_WITHIN = 5


class TwoMounts:
    """Two mounts of one backend, and ops on each as root."""

    def __init__(self, mounts, backend, users):
        self.a = mounts.mount_backend(backend)
        self.b = mounts.mount_backend(backend)
        self.on_a = mounts.ops(users.root, self.a.path)
        self.on_b = mounts.ops(users.root, self.b.path)


@pytest.fixture(params=["loopback", "pyloopback"])
def two(request, py_mounts, users):  # noqa: F811
    if request.param == "loopback":
        backend = py_mounts.backend("loopback")
    else:
        root = py_mounts.mkdir("backing")
        sock = py_mounts.path("loopback.sock")
        backend = py_mounts.python(
            py_mounts.example("loopback.py", root, "--listen", "unix:" + sock),
            listen=sock, name="pyloopback")
    return TwoMounts(py_mounts, backend, users)


def _shows(ops, checks):
    """Whether every (op, predicate) of `checks` holds through `ops` within
    SEEN_WITHIN seconds; the last results, for the message, either way."""
    last = []

    def holds():
        last[:] = ops.run([op for op, _ in checks])
        return all(want(got) for (_, want), got in zip(checks, last))
    return wait_until(holds, SEEN_WITHIN, 0.05), last


def test_changes_through_one_mount_show_through_the_other(two):
    on_a, on_b = two.on_a, two.on_b
    # B caches the empty directory and the absent name first.
    r = on_b.run([("listdir", "."), ("stat", "f")])
    assert r[0] == [] and is_err(r[1], "ENOENT"), r

    on_a.ok([("write_file", "f", b"one")])
    ok, last = _shows(on_b, [(("listdir", "."), lambda v: v == ["f"]),
                             (("read_file", "f"), lambda v: v == b"one")])
    assert ok, "a file created through A, seen through B: %r" % last

    on_a.ok([("append_file", "f", b" two"), ("chmod", "f", 0o600)])
    ok, last = _shows(on_b, [
        (("stat", "f"), lambda v: not is_err(v) and v["size"] == 7 and
         v["perm"] == 0o600),
        (("read_file", "f"), lambda v: v == b"one two")])
    assert ok, "a file changed through A, seen through B: %r" % last

    on_a.ok([("unlink", "f")])
    ok, last = _shows(on_b, [(("listdir", "."), lambda v: v == []),
                             (("stat", "f"), lambda v: is_err(v, "ENOENT"))])
    assert ok, "a file removed through A, seen through B: %r" % last

    # And the other way round, with a directory.
    r = on_a.run([("listdir", "."), ("stat", "d")])
    assert r[0] == [] and is_err(r[1], "ENOENT"), r
    on_b.ok([("mkdir", "d", 0o755), ("write_file", "d/x", b"x")])
    ok, last = _shows(on_a, [(("listdir", "."), lambda v: v == ["d"]),
                             (("listdir", "d"), lambda v: v == ["x"])])
    assert ok, "a directory made through B, seen through A: %r" % last
    on_b.ok([("rename", "d", "e")])
    ok, last = _shows(on_a, [(("listdir", "."), lambda v: v == ["e"]),
                             (("read_file", "e/x"), lambda v: v == b"x")])
    assert ok, "a directory renamed through B, seen through A: %r" % last


def test_own_changes_keep_their_mounts_cache(two):
    """The notices of a change go to the other mount only: what mount A
    cached from its own changes stays cached (its stats cost A no request
    at all), while B learns of them."""
    on_a, on_b = two.on_a, two.on_b
    on_a.ok([("mkdir", "d", 0o755), ("listdir", "d")])
    on_b.ok([("listdir", "d")])
    script = []
    for i in range(10):
        script += [("write_file", "d/f%d" % i, b"x" * i),
                   ("chmod", "d/f%d" % i, 0o600)]
    on_a.ok(script)
    names = ["f%d" % i for i in range(10)]
    ok, last = _shows(on_b, [(("listdir", "d"), lambda v: sorted(v) == names)])
    assert ok, "files made through A, listed through B: %r" % last
    time.sleep(0.5)  # the watcher's events for all of it have been handled

    def asked():
        return (backend_ops(two.a), kernel_requests(two.a, "lookup"),
                kernel_requests(two.a, "getattr"))
    before = asked()
    r = on_a.run([("stat", "d/" + name) for name in names])
    assert [x["mode"] & 0o777 for x in r] == [0o600] * 10, r
    assert asked() == before
