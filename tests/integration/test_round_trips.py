"""Round trips to the backend: ops that belong together travel together.

A filesystem whose readdir returns names only (the bench's fusepy loopback,
run through fusehost after changing its import) would cost one backend round
trip per name when the kernel looks each one up. Once callers of a mount
are seen to look up what they list, the daemon fetches the attributes of a
listing's names in one go before answering READDIRPLUS, in messages of
many ops."""

import os
import stat

import pytest

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


@pytest.mark.parametrize("files", [300])
def test_names_only_listing_fetches_attributes_in_few_messages(py_mounts,
                                                                files):
    script = ported_fusepy_loopback(py_mounts)
    root = py_mounts.mkdir("names-only-root")
    os.mkdir(os.path.join(root, "many"))
    for i in range(files):
        with open(os.path.join(root, "many", "f%03d" % i), "w") as f:
            f.write("x" * i)
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
    # And the kernel had no name to look up itself.
    assert kernel.get("lookup", 0) - kernel0.get("lookup", 0) <= 2, kernel


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
