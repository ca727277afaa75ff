"""chmod, chown, utimens, unlink, rmdir and create the daemon makes itself
(InitReply.root_changes_attributes, root_removes_names, root_creates_files),
and the lookups it answers itself:
the C++ and the Python loopback say these are nothing but the system calls
on the file beneath the root directory they hand over, so the daemon makes
them there, as the user the backend would have made them as (the test
backends run as root and act as their callers), without a message. Checked
through real mounts: the files on the host, that nothing reaches the
backend, the callers' permissions, a file replaced on the host, tar, rm -rf,
write-behind, lookups on a cold cache, and the option that turns it off."""

import os
import signal
import subprocess
import tarfile

import pytest

from daemon_stats import backend_ops, counted, kernel_requests
from fhlib import wait_until
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from restart_lib import stop_backend
from test_daemon_opens import loopbacks, make_tree  # noqa: F401  (fixture)


def daemon_changes(m):
    return counted(m, r"daemon changes\s+(\d+)")


def daemon_lookups(m):
    return counted(m, r"daemon lookups\s+(\d+)")


def host_stat(src, rel):
    return os.lstat(os.path.join(src, rel))


def test_attribute_changes_of_a_loopback_send_the_backend_nothing(
        loopbacks):  # noqa: F811
    src = make_tree(loopbacks, "plain", {"f": b"data", "d/g": b"more"})
    m = loopbacks.mount("loopback", root=src)
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("stat", "f"), ("stat", "d"), ("stat", "d/g")])
    # The kernel asks for the access ACL of each file it chmods, and for
    # the capabilities of each it chowns: the daemon learns there are none
    # here, and keeps knowing it after the changes.
    names = ("system.posix_acl_access", "security.capability")
    assert ops.run([("getxattr", p, n) for p in ("f", "d", "d/g")
                    for n in names]) == ["ENODATA"] * 6
    before = backend_ops(m)
    got = ops.ok([
        ("chmod", "f", 0o600),
        ("chown", "f", 1234, 5678),
        ("utimensat", "f", (1000000000, 5), (1100000000, 7)),
        ("chmod", "d", 0o700),
        ("utimensat", "d", "OMIT", (1200000000, 0)),
        ("chown", "d/g", -1, 4321),
        ("stat", "f"), ("stat", "d"), ("stat", "d/g")])
    f, d, g = got[-3:]
    assert backend_ops(m) == before, "a change reached the backend"
    assert daemon_changes(m) == 6
    # What the mount shows is what the host has.
    hf, hd, hg = (host_stat(src, p) for p in ("f", "d", "d/g"))
    assert (f["perm"], f["uid"], f["gid"]) == (0o600, 1234, 5678)
    assert (hf.st_mode & 0o7777, hf.st_uid, hf.st_gid) == (0o600, 1234, 5678)
    assert (hf.st_atime_ns, hf.st_mtime_ns) == (1000000000 * 10**9 + 5,
                                                1100000000 * 10**9 + 7)
    assert f["mtime_ns"] == hf.st_mtime_ns and f["atime_ns"] == hf.st_atime_ns
    assert d["perm"] == hd.st_mode & 0o7777 == 0o700
    assert d["mtime_ns"] == hd.st_mtime_ns == 1200000000 * 10**9
    assert (g["uid"], g["gid"]) == (hg.st_uid, hg.st_gid) == (0, 4321)
    # Through an open file too (the writable open is the backend's).
    before = backend_ops(m)
    got = ops.ok([("open", "f", ["O_RDWR"], 0o644, "h"),
                  ("fchmod", "h", 0o640), ("fchown", "h", 0, 0),
                  ("fstat", "h"), ("close", "h")])
    assert got[3]["perm"] == 0o640 and got[3]["uid"] == 0
    assert host_stat(src, "f").st_mode & 0o7777 == 0o640
    assert daemon_changes(m) == 8
    # Only the open, its flush (the Python loopback has one) and its
    # release reached the backend.
    assert backend_ops(m) - before <= 3


def test_the_daemon_changes_attributes_as_the_caller(loopbacks,  # noqa: F811
                                                     users):
    src = make_tree(loopbacks, "perm", {"mine": b"a's", "shared": b"rw"})
    os.chown(os.path.join(src, "mine"), users.a.uid, users.a.gid)
    os.chown(os.path.join(src, "shared"), users.a.uid, users.group_gid)
    os.chmod(os.path.join(src, "shared"), 0o664)
    m = loopbacks.mount("loopback", root=src)
    a = loopbacks.ops(user=users.a, cwd=m.path)
    b = loopbacks.ops(user=users.b, cwd=m.path)
    a.ok([("stat", "mine"), ("stat", "shared")])
    # Not the owner: refused, by the kernel or by the host and then the
    # backend; nothing changed.
    assert b.run([("chmod", "mine", 0o666)])[0] == "EPERM"
    assert b.run([("chown", "mine", users.b.uid, users.b.gid)])[0] == "EPERM"
    assert b.run([("utimensat", "shared", (1, 0), (1, 0))])[0] == "EPERM"
    assert host_stat(src, "mine").st_mode & 0o7777 == 0o644
    assert host_stat(src, "mine").st_uid == users.a.uid
    assert daemon_changes(m) == 0
    # Write permission is enough to set both times to now.
    b.ok([("utimensat", "shared", "NOW", "NOW")])
    # The owner may change the mode and give the file to a group of hers,
    # not to another user.
    a.ok([("chmod", "mine", 0o600), ("chown", "mine", -1, users.group_gid)])
    assert a.run([("chown", "mine", users.b.uid, -1)])[0] == "EPERM"
    hm = host_stat(src, "mine")
    assert (hm.st_mode & 0o7777, hm.st_uid, hm.st_gid) == \
        (0o600, users.a.uid, users.group_gid)
    assert daemon_changes(m) == 3


def test_a_file_replaced_on_the_host_gets_the_change(loopbacks):  # noqa: F811
    """The daemon changes no file but the one it knows at the path (its
    unit test shows that); here, the kernel and the daemon learn of the new
    file first, and the change reaches it, as it would through the
    backend."""
    src = make_tree(loopbacks, "replaced", {"f": b"old"})
    m = loopbacks.mount("loopback", root=src)
    ops = loopbacks.ops(cwd=m.path)
    old = ops.ok([("stat", "f")])[0]
    # Another file at that path, behind the daemon's back (made before the
    # old one goes, so that its inode number differs).
    with open(os.path.join(src, "f.new"), "wb") as f:
        f.write(b"new")
    os.rename(os.path.join(src, "f.new"), os.path.join(src, "f"))
    assert host_stat(src, "f").st_ino != old["ino"]
    ops.ok([("chmod", "f", 0o600)])
    assert host_stat(src, "f").st_mode & 0o7777 == 0o600
    assert ops.ok([("read_file", "f")]) == [b"new"]


def test_a_change_on_the_host_right_after_the_daemons_is_seen(
        loopbacks):  # noqa: F811
    """The backend's notices of the daemon's own changes are dropped, but
    not those of a change made on the host just after, within the 2 s in
    which the daemon recognizes its own."""
    src = make_tree(loopbacks, "after", {"changed": b"x", "removed": b"y"})
    m = loopbacks.mount("loopback", root=src)
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("stat", "changed"), ("stat", "removed"),
            ("chmod", "changed", 0o600), ("chmod", "removed", 0o600)])
    assert daemon_changes(m) == 2
    os.chmod(os.path.join(src, "changed"), 0o604)
    os.unlink(os.path.join(src, "removed"))

    def seen():
        got = ops.ok([("stat", "changed"), ("exists", "removed")])
        return got[0]["perm"] == 0o604 and got[1] is False
    assert wait_until(seen, 10)


def test_tar_extracts_modes_owners_and_times_without_a_message_each(
        loopbacks, users, tmp_path):  # noqa: F811
    # A tarball of files of several owners, modes and times, made on the
    # host and extracted as root (who keeps owners) by the real tar.
    made = tmp_path / "made"
    made.mkdir()
    files = {}
    for i in range(30):
        p = made / ("f%02d" % i)
        p.write_bytes(os.urandom(100 + i))
        os.chmod(p, (0o600, 0o640, 0o755)[i % 3])
        owner = (users.a, users.b, users.root)[i % 3]
        os.chown(p, owner.uid, users.group_gid if i % 2 else owner.gid)
        os.utime(p, (1500000000 + i, 1600000000 + i))
        files[p.name] = os.lstat(p)
    ball = str(tmp_path / "t.tar")
    with tarfile.open(ball, "w", format=tarfile.PAX_FORMAT) as t:
        t.add(str(made), arcname="t")
    src = loopbacks.mkdir("tar")
    m = loopbacks.mount("loopback", root=src)
    before = backend_ops(m)
    subprocess.run(["tar", "xf", ball, "-C", m.path, "--same-owner",
                    "--same-permissions"], check=True)
    sent = backend_ops(m) - before
    # What may reach the backend: each file's create, flush (the Python
    # loopback asks for them) and release, the directory's mkdir, and what
    # the kernel asked for that the daemon had not cached.
    may_send = sum(kernel_requests(m, op) for op in
                   ("create", "flush", "release", "mkdir")) + \
        sum(counted(m, r"\n  %s +\d+ +(\d+)" % kind)
            for kind in ("attr", "dir", "symlink", "negative", "xattr"))
    for name, want in files.items():
        got = host_stat(src, "t/" + name)
        assert (got.st_mode, got.st_uid, got.st_gid, got.st_mtime_ns) == \
            (want.st_mode, want.st_uid, want.st_gid, want.st_mtime_ns), name
        assert open(os.path.join(m.path, "t", name), "rb").read() == \
            open(str(made / name), "rb").read()
    # tar changes each file's owner and times, and its mode where the
    # create left another: every one of them made by the daemon.
    assert daemon_changes(m) >= 2 * len(files)
    assert sent <= may_send + 2, (sent, may_send)


def test_rm_rf_removes_every_name_without_a_message_each(
        loopbacks):  # noqa: F811
    files = {"d/f%02d" % i: b"x" * i for i in range(20)}
    files["d/sub/g"] = b"deeper"
    src = make_tree(loopbacks, "rm", files)
    m = loopbacks.mount("loopback", root=src)
    ops = loopbacks.ops(cwd=m.path)
    # An open file keeps its data after its name goes.
    ops.ok([("listdir", "d"), ("listdir", "d/sub")] +
           [("stat", n) for n in files] + [("stat", "d/sub")])
    before = backend_ops(m)
    got = ops.ok([("open", "d/f05", ["O_RDONLY"], 0o644, "h"),
                  ("unlink", "d/f05"), ("exists", "d/f05"),
                  ("pread", "h", 5, 0), ("close", "h")])
    assert got[2] is False and got[3] == b"xxxxx"
    subprocess.run(["rm", "-rf", os.path.join(m.path, "d")], check=True)
    assert not os.path.exists(os.path.join(src, "d"))
    assert ops.ok([("exists", "d")]) == [False]
    # 20 files, the subdirectory's file, the subdirectory and d itself.
    assert daemon_changes(m) == 23
    # What may reach the backend: the listings the kernel asked for again,
    # and what the daemon had not cached.
    may_send = sum(kernel_requests(m, op) for op in
                   ("opendir", "readdir", "readdirplus", "releasedir")) + \
        sum(counted(m, r"\n  %s +\d+ +(\d+)" % kind)
            for kind in ("attr", "dir", "symlink", "negative", "xattr"))
    assert backend_ops(m) - before <= may_send, may_send


def test_a_name_is_removed_only_by_whom_may(loopbacks, users):  # noqa: F811
    src = make_tree(loopbacks, "rmperm", {"a/mine": b"a's", "open/any": b"x"})
    os.chown(os.path.join(src, "a"), users.a.uid, users.a.gid)
    os.chown(os.path.join(src, "a/mine"), users.a.uid, users.a.gid)
    os.chmod(os.path.join(src, "open"), 0o1777)
    os.chown(os.path.join(src, "open/any"), users.a.uid, users.a.gid)
    m = loopbacks.mount("loopback", root=src)
    a = loopbacks.ops(user=users.a, cwd=m.path)
    b = loopbacks.ops(user=users.b, cwd=m.path)
    a.ok([("stat", "a/mine"), ("stat", "open/any")])
    # Not b's directory; a sticky one, not b's file.
    assert b.run([("unlink", "a/mine")])[0] == "EACCES"
    assert b.run([("unlink", "open/any")])[0] == "EPERM"
    assert os.path.exists(os.path.join(src, "a/mine"))
    assert os.path.exists(os.path.join(src, "open/any"))
    a.ok([("unlink", "a/mine"), ("unlink", "open/any")])
    assert not os.path.exists(os.path.join(src, "a/mine"))
    assert not os.path.exists(os.path.join(src, "open/any"))
    assert daemon_changes(m) == 2


def test_a_new_file_is_created_by_the_daemon_as_the_caller(
        loopbacks, users):  # noqa: F811
    src = make_tree(loopbacks, "create", {"a/old": b"old"})
    os.chown(os.path.join(src, "a"), users.a.uid, users.a.gid)
    m = loopbacks.mount("loopback", root=src)
    a = loopbacks.ops(user=users.a, cwd=m.path)
    b = loopbacks.ops(user=users.b, cwd=m.path)
    a.ok([("listdir", "a"), ("stat", "a/old")])
    before = backend_ops(m)
    # Written through the descriptor the daemon made, fsynced (the backend
    # opens the file for that), read back through the mount.
    got = a.run([("open", "a/new", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o666,
                  "h"),
                 ("write", "h", b"made here"), ("fsync", "h"), ("close", "h"),
                 ("stat", "a/new"), ("read_file", "a/new")], umask=0o027)
    assert got[:4] == [True, 9, True, True], got
    assert got[5] == b"made here"
    host = host_stat(src, "a/new")
    assert (host.st_mode, host.st_uid, host.st_gid) == \
        (0o100640, users.a.uid, users.a.gid)
    assert got[4]["ino"] == host.st_ino and got[4]["size"] == 9
    with open(os.path.join(src, "a/new"), "rb") as f:
        assert f.read() == b"made here"
    assert daemon_changes(m) == 1
    # Only the fsync needed the backend: it opened the file to sync it.
    assert backend_ops(m) - before <= 3, backend_ops(m) - before
    # Refused by the kernel (not b's directory), and by the host (a name
    # made there behind the daemon's back: the backend answers, as open(2)
    # would).
    assert b.run([("open", "a/b", ["O_WRONLY", "O_CREAT"], 0o644,
                   "h")])[0] == "EACCES"
    with open(os.path.join(src, "a/late"), "wb") as f:
        f.write(b"host")
    assert a.run([("open", "a/late", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o644,
                   "h")])[0] == "EEXIST"
    assert daemon_changes(m) == 1


def test_a_file_created_and_written_at_once_keeps_its_caches(
        loopbacks, tmp_path):  # noqa: F811
    """untar into a new directory: every name made by the daemon, and the
    backend's watcher's notices of them (made faster than it adds its watch
    on the directory) recognized, so that the directory's listing stays
    whole and every lookup of a new name is answered without a message."""
    made = tmp_path / "made"
    for i in range(60):
        (made / ("d%d" % (i % 3))).mkdir(parents=True, exist_ok=True)
        (made / ("d%d" % (i % 3)) / ("f%02d" % i)).write_bytes(b"x" * i)
    ball = str(tmp_path / "t.tar")
    with tarfile.open(ball, "w") as t:
        t.add(str(made), arcname="t")
    src = loopbacks.mkdir("untar")
    m = loopbacks.mount("loopback", root=src)
    before = backend_ops(m)
    subprocess.run(["tar", "xf", ball, "-C", m.path], check=True)
    sent = backend_ops(m) - before
    for i in range(60):
        rel = "t/d%d/f%02d" % (i % 3, i)
        assert host_stat(src, rel).st_size == i, rel
    # The four mkdirs, and a few lookups and listings around them (6 to 13
    # seen); not a message per file, as when a notice is taken for news and
    # the directory's listing is dropped.
    assert sent <= 20, sent
    assert daemon_changes(m) >= 60


def test_with_write_behind_a_change_waits_behind_queued_ones(mounts):
    """A file made by write-behind (O_APPEND: not one the daemon creates
    itself) is not on the host yet: its chmod is queued behind its create.
    A file with nothing queued is changed by the daemon at once, and a
    plain new file created by it, even with the backend stopped."""
    src = make_tree(mounts, "wb", {"old": b"x"})
    m = mounts.mount("loopback", options="allow_other,write_behind",
                     root=src)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("listdir", "."), ("stat", "old")])
    # The kernel asks for the ACL of a file it chmods, and write-behind
    # answers a create early only in a directory without a default ACL:
    # both learnt now.
    assert ops.run([("getxattr", "old", "system.posix_acl_access"),
                    ("getxattr", ".", "system.posix_acl_default")]) == \
        ["ENODATA"] * 2
    stop_backend(m)
    try:
        got = ops.run([("open", "new", ["O_WRONLY", "O_CREAT", "O_APPEND"],
                        0o644, "h"), ("write", "h", b"data"), ("close", "h"),
                       ("chmod", "new", 0o600), ("chmod", "old", 0o640),
                       ("write_file", "plain", b"here", 0o644)], timeout=20)
        assert got == [True, 4, True, True, True, True], got
        assert daemon_changes(m) == 2
        assert host_stat(src, "old").st_mode & 0o7777 == 0o640
        assert not os.path.exists(os.path.join(src, "new"))
        with open(os.path.join(src, "plain"), "rb") as f:
            assert f.read() == b"here"
    finally:
        m.backend.signal(signal.SIGCONT)
    ops.ok([("open", "new", ["O_RDONLY"], 0o644, "h"), ("fsync", "h"),
            ("close", "h")])
    assert host_stat(src, "new").st_mode & 0o7777 == 0o600
    assert ops.ok([("stat", "new")])[0]["perm"] == 0o600


def test_daemon_changes_off_leaves_every_change_to_the_backend(
        loopbacks):  # noqa: F811
    m = loopbacks.mount("loopback", options="allow_other,daemon_changes=off",
                        root=make_tree(loopbacks, "off", {"f": b"data"}))
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("stat", "f")])
    before = backend_ops(m)
    ops.ok([("chmod", "f", 0o600), ("utimensat", "f", "NOW", "NOW"),
            ("unlink", "f")])
    assert backend_ops(m) - before == 3
    assert daemon_changes(m) == 0
    assert daemon_lookups(m) == 0


def test_lookups_on_a_cold_cache_send_the_backend_nothing(
        loopbacks):  # noqa: F811
    # cat of files never listed: each name the kernel looks up is the
    # file's lstat beneath the root, as the backend would have answered.
    files = {"d%d/f%02d" % (d, i): b"x" * (d * 10 + i)
             for d in range(3) for i in range(10)}
    src = make_tree(loopbacks, "cold", files)
    os.symlink("d0/f00", os.path.join(src, "link"))
    m = loopbacks.mount("loopback", root=src)
    ops = loopbacks.ops(cwd=m.path)
    # The root's attributes are the backend's (it may present its root as
    # its own).
    ops.ok([("stat", ".")])
    before = backend_ops(m)
    got = ops.ok([("stat", rel) for rel in sorted(files)] +
                 [("lstat", "link"), ("read_file", "d2/f09")])
    assert backend_ops(m) == before, "a lookup reached the backend"
    # 3 directories, 30 files and the link.
    assert daemon_lookups(m) == 34
    for (rel, data), st in zip(sorted(files.items()), got):
        host = host_stat(src, rel)
        assert (st["ino"], st["size"], st["mtime_ns"]) == \
            (host.st_ino, len(data), host.st_mtime_ns), rel
    assert got[-2]["type"] == 0o120000 and got[-2]["size"] == len("d0/f00")
    assert got[-1] == b"x" * 29
    # Absent names too, in a directory or with the directory: an include
    # path searched, a name about to be created.
    assert ops.run([("stat", "d0/none"), ("stat", "nodir/none")]) == \
        ["ENOENT", "ENOENT"]
    assert daemon_lookups(m) == 36  # the kernel stops at "nodir"
    assert backend_ops(m) == before
    # A symlink on the way is the backend's to follow.
    os.symlink("d1", os.path.join(src, "dirlink"))
    assert ops.run([("stat", "dirlink/none")]) == ["ENOENT"]
    assert backend_ops(m) > before


def test_the_daemon_looks_up_as_the_caller(mounts, users):
    # With neither default_permissions nor POSIX ACLs (which make the
    # kernel check anyway) the kernel checks nothing before a lookup: a
    # directory b may not search (root's, 0700, which the daemon itself
    # could search) stays closed to b, whose lookup then goes to the
    # backend and is refused there too.
    src = make_tree(mounts, "lookperm", {"a/secret": b"s", "pub/f": b"p"})
    os.chmod(os.path.join(src, "a"), 0o700)
    backend = mounts.backend("loopback", root=src, args=["--acl=false"])
    m = mounts.mount("loopback", options="allow_other,no_default_permissions",
                     backend=backend)
    b = mounts.ops(user=users.b, cwd=m.path)
    root = mounts.ops(cwd=m.path)
    looked = daemon_lookups(m)
    assert b.run([("stat", "a/secret")]) == ["EACCES"]
    assert daemon_lookups(m) == looked + 1  # "a" only
    # Nor does b learn that a name is missing there.
    assert b.run([("stat", "a/none")]) == ["EACCES"]
    assert daemon_lookups(m) == looked + 1
    b.ok([("stat", "pub/f")])
    assert daemon_lookups(m) == looked + 3
    assert root.ok([("stat", "a/secret")])[0]["size"] == 1


def test_daemon_changes_off_leaves_lookups_to_the_backend(
        loopbacks):  # noqa: F811
    src = make_tree(loopbacks, "lookoff", {"d/f": b"data"})
    m = loopbacks.mount("loopback", options="allow_other,daemon_changes=off",
                        root=src)
    ops = loopbacks.ops(cwd=m.path)
    ops.ok([("stat", ".")])
    before = backend_ops(m)
    ops.ok([("stat", "d/f")])
    assert backend_ops(m) - before == 2
    assert daemon_lookups(m) == 0
