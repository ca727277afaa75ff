"""The C++ loopback's checks of caching and change notices
(test_daemon_caching.py), run against examples/python/loopback.py mounted
with fusehost.FUSE(): it watches its directory with inotify and caches for a
minute, recognises its own changes, and lists xattr names with each readdir
entry.

The test functions are imported from test_daemon_caching; the `mounts`
fixture below (which takes precedence over conftest's in this module) makes
their mounts.mount("loopback") a Python loopback."""

import os
import time

import pytest

from daemon_stats import backend_ops, backend_ops_making_files, kernel_requests
from fhlib import wait_until
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from test_daemon_caching import (  # noqa: F401  (the checks)
    test_an_open_file_gone_from_its_name_behind_the_mount_stats,
    test_default_timeouts_see_backing_changes_soon,
    test_listing_with_attributes_spares_lookups,
    test_own_changes_keep_the_cache,
    test_xattr_names_come_with_listings,
    test_zero_timeouts_see_backing_changes_at_once,
)


@pytest.fixture
def mounts(py_mounts):  # noqa: F811
    return py_mounts


def test_replies_carry_the_attributes_asked_next(mounts):
    """getattr_is_cheap: write and name-change replies carry the attributes
    the kernel asks for next, as with the C++ loopback, so making a file
    costs create, write, flush and release (the Python SDK has no noflush),
    and no GETATTR of the file or its directory reaches the backend."""
    sent = backend_ops_making_files(mounts, "loopback", 40)
    assert sent <= 4 * 40 + 2, sent


def test_host_changes_show_at_once_despite_a_long_ttl(mounts):
    """Cached for a minute, yet what changes in the directory shows through
    the mount within moments: files, directories made and renamed (with
    what is below them), removals."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    back = m.backing
    assert ops.one(("listdir", ".")) == []
    with open(os.path.join(back, "f"), "wb") as f:
        f.write(b"1")
    assert wait_until(lambda: ops.one(("listdir", ".")) == ["f"], 5, 0.02)
    assert ops.one(("stat", "f"))["size"] == 1

    # Past fuse-hostd's 1 s default nobody asks again: the lifetime is long,
    # so what follows shows because the loopback announced it.
    def asked():
        return (backend_ops(m), kernel_requests(m, "lookup"),
                kernel_requests(m, "getattr"))
    before = asked()
    time.sleep(1.5)
    assert ops.one(("stat", "f"))["size"] == 1
    assert asked() == before
    with open(os.path.join(back, "f"), "ab") as f:
        f.write(b"23")
    assert wait_until(lambda: ops.one(("stat", "f"))["size"] == 3, 5, 0.02)
    os.makedirs(os.path.join(back, "d", "sub"))
    with open(os.path.join(back, "d", "sub", "x"), "wb") as f:
        f.write(b"x")
    assert wait_until(
        lambda: ops.one(("read_file", "d/sub/x")) == b"x", 5, 0.02)
    os.rename(os.path.join(back, "d"), os.path.join(back, "e"))
    assert wait_until(lambda: ops.one(("stat", "d")) == "ENOENT", 5, 0.02)
    assert ops.one(("read_file", "e/sub/x")) == b"x"
    # The watch followed the rename.
    with open(os.path.join(back, "e", "sub", "y"), "wb") as f:
        f.write(b"yy")
    assert wait_until(
        lambda: ops.one(("listdir", "e/sub")) == ["x", "y"], 5, 0.02)
    os.unlink(os.path.join(back, "f"))
    assert wait_until(lambda: ops.one(("stat", "f")) == "ENOENT", 5, 0.02)
