"""Listings fetched ahead (mount option prefetch_listings=, on by default
for backends reached over TCP and for backends that list by path): a walk
gets the same answers as the tree itself, the daemon counts the listings it
fetched ahead, a change made while they are cached is seen, and a local
backend that opens its directories fetches nothing ahead unless asked.

And listing by path (InitReply.lists_by_path, which the C++ loopback
declares): a directory the daemon has not cached costs one backend message,
and a directory the caller may not read still fails at opendir."""

import os

import pytest

import conftest
import daemon_stats
import fhlib
from pyfhlib import py_mounts  # noqa: F401

pytestmark = pytest.mark.usefixtures("needs_daemon")


def make_tree(root, dirs=8, subdirs=3, files=5):
    for d in range(dirs):
        for s in range(subdirs):
            path = os.path.join(root, "d%d" % d, "s%d" % s)
            os.makedirs(path)
            for f in range(files):
                with open(os.path.join(path, "f%d" % f), "w") as out:
                    out.write("x" * f)


def walk(top):
    """find's view of a tree, as relative paths and sizes."""
    out = fhlib.run_cmd(["find", top, "-mindepth", "1", "-printf",
                         "%P %s %y\n"])
    assert out.returncode == 0, out
    return sorted(out.stdout.splitlines())


def prefetched(m):
    return daemon_stats.counted(m, r"listings\s+(\d+) fetched ahead")


def test_a_local_backend_that_opens_directories_fetches_nothing_ahead(
        py_mounts):
    # The Python loopback opens its directories (opendir), so each listing
    # fetched ahead would cost three messages.
    m = py_mounts.mount("loopback")
    make_tree(m.backing)
    assert walk(m.path) == walk(m.backing)
    assert prefetched(m) == 0


def test_a_local_backend_that_lists_by_path_fetches_ahead_by_default(mounts):
    m = mounts.mount("loopback")
    make_tree(m.backing)
    assert walk(m.path) == walk(m.backing)
    assert prefetched(m) >= 8


def backend_messages(m):
    return daemon_stats.counted(m, r"backend\s+(\d+) messages")


def test_listing_a_directory_by_path_costs_one_message(mounts):
    # Made before the mount: the backend's notices of a tree made under it
    # would send the kernel back to the backend.
    root = mounts.mkdir("by_path")
    make_tree(root, dirs=1, subdirs=3, files=5)
    m = mounts.mount("loopback", options="allow_other,prefetch_listings=0",
                     root=root)
    top = os.path.join(m.path, "d0")
    assert sorted(os.listdir(top)) == ["s0", "s1", "s2"]
    for s in range(3):
        os.stat(os.path.join(top, "s%d" % s))  # looked up: no message later
    before = backend_messages(m)
    for s in range(3):
        listed = os.listdir(os.path.join(top, "s%d" % s))
        assert sorted(listed) == ["f%d" % f for f in range(5)]
    # One readdir each: no opendir, no releasedir.
    assert backend_messages(m) - before == 3, \
        m.daemon.ctl("stats", m.path).check().stdout


def test_a_directory_the_caller_may_not_read_fails_at_opendir(mounts):
    m = mounts.mount("loopback", options="allow_other,prefetch_listings=0")
    closed = os.path.join(m.backing, "closed")
    os.mkdir(closed)
    os.chmod(closed, 0o711)  # search, but no read, for others
    open(os.path.join(closed, "inside"), "w").close()
    path = os.path.join(m.path, "closed")
    ops = mounts.ops(mounts.users.a)
    opened, inside = ops.run([("open", path, os.O_RDONLY | os.O_DIRECTORY),
                              ("stat", os.path.join(path, "inside"))])
    # open(2) itself fails, not a later getdents.
    assert opened == "EACCES", opened
    assert not fhlib.is_err(inside), inside


def test_a_walk_fetches_the_next_level_ahead(mounts):
    m = mounts.mount("loopback", options="allow_other,prefetch_listings=64")
    make_tree(m.backing)
    assert walk(m.path) == walk(m.backing)
    # Every directory below the root was listed ahead of find, but for
    # those find reached first.
    assert prefetched(m) >= 8
    # A second walk is answered the same.
    assert walk(m.path) == walk(m.backing)


def test_the_window_moves_on_across_a_directory_wider_than_it(mounts):
    # 40 subdirectories, 8 fetched ahead at first: each one find opens lets
    # the next one go, so that all of them are fetched ahead, not only the
    # first 8 (find would wait for a round trip at each of the other 32).
    root = mounts.mkdir("wide")
    make_tree(root, dirs=1, subdirs=40, files=2)
    m = mounts.mount("loopback", options="allow_other,prefetch_listings=8",
                     root=root)
    assert walk(m.path) == walk(root)
    assert prefetched(m) >= 39, m.daemon.ctl("stats", m.path).check().stdout


def test_a_change_after_a_listing_was_fetched_ahead_is_seen(mounts):
    m = mounts.mount("loopback", options="allow_other,prefetch_listings=64")
    make_tree(m.backing, dirs=3, subdirs=1, files=1)
    # Listing the root fetches d0..d2 ahead.
    assert sorted(os.listdir(m.path)) == ["d0", "d1", "d2"]
    fhlib.wait_until(lambda: prefetched(m) >= 3, 10)
    with open(os.path.join(m.path, "d1", "new"), "w") as f:
        f.write("through the mount")
    assert sorted(os.listdir(os.path.join(m.path, "d1"))) == ["new", "s0"]
    os.mkdir(os.path.join(m.backing, "d0", "behind"))  # the backend's notice
    assert fhlib.wait_until(
        lambda: "behind" in os.listdir(os.path.join(m.path, "d0")), 10)


def test_a_tcp_backend_fetches_ahead_by_default(mounts):
    root = mounts.mkdir("tcp_backing")
    make_tree(root)
    backend = conftest.TcpLoopback(mounts, root)
    try:
        m = backend.mount(mounts, "allow_other,insecure")
        mp = m.path
        assert walk(mp) == walk(root)
        assert prefetched(m) >= 8
    finally:
        if fhlib.is_mounted(mp):
            mounts.daemon.unmount(mp)
        backend.stop()
