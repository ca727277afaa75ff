"""Write-behind of creates and renames: a create of a name the daemon
knows is absent is answered at once with the file's writes, flush and
release (tar x into a directory made on the mount waits for no backend), a
rename to an absent name or over a cached file too; readers see the new
file while it is written, refusals come back at fsync, and a backend killed
with them queued leaves a consistent state (write_behind_lib.py has what
the write-behind tests share)."""

import hashlib
import os
import signal
import stat
import threading

import pytest

import fhlib
from fhlib import run_cmd
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from restart_lib import kill_backend, stop_backend
from write_behind_lib import (OPTIONS, write_behind_stats, cached, fsync, perm,
                              snapshot, files_tree, made_and_known,
                              refusing_mount, refusal_reported)


pytestmark = pytest.mark.usefixtures("needs_daemon")


def test_tar_x_into_a_directory_made_on_the_mount_waits_for_no_backend(
        mounts, users):
    """Into a directory the daemon knows is empty (made through the mount),
    tar x of files needs no answer from the backend: it completes with the
    backend stopped. A stat on the mount sees each file's size, mode, owner
    and times at once; once the backend runs again, readers see the
    contents, and after an fsync the backing directory holds exactly what
    was packed."""
    m = mounts.mount("loopback", options=OPTIONS)
    staging = mounts.mkdir("staging-files")
    files_tree(staging, users)
    archive = mounts.path("files.tar")
    names = sorted(os.listdir(staging))
    run_cmd(["tar", "--numeric-owner", "-cf", archive, "-C", staging] +
            names, timeout=60).check()
    want = snapshot(staging)
    x = os.path.join(m.path, "x")
    ops = mounts.ops()
    made_and_known(ops, m, x)
    before = write_behind_stats(m)
    stop_backend(m)
    resumed = False
    try:
        run_cmd(["tar", "--numeric-owner", "-xf", archive, "-C", x],
                timeout=60).check()
        wb = write_behind_stats(m)
        # A create, its writes, the times, owner and mode, and the release
        # of every file.
        assert wb.early >= before.early + 4 * len(names), (before, wb)
        assert wb.queued > 0, wb
        assert os.listdir(os.path.join(m.backing, "x")) == []
        # Another process on the mount sees the attributes at once.
        seen = ops.ok([("stat", os.path.join(x, n)) for n in names])
        got = {n: {"perm": st["perm"], "uid": st["uid"], "gid": st["gid"],
                   "size": st["size"], "mtime": st["mtime_ns"] // 10**9}
               for n, st in zip(names, seen)}
        assert got == {n: {k: want[n][k] for k in ("perm", "uid", "gid",
                                                   "size", "mtime")}
                       for n in names}
        assert sorted(ops.one(("listdir", x))) == names
        m.backend.signal(signal.SIGCONT)
        resumed = True
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
    # Readers of the contents wait for the queue, then see what was written.
    sums = ops.ok([("sha256", os.path.join(x, n)) for n in names])
    assert [s[0] for s in sums] == [want[n]["sha256"] for n in names]
    assert fsync(ops, x, directory=True) is True
    assert snapshot(os.path.join(m.backing, "x")) == want
    wb = write_behind_stats(m)
    assert wb.refused == 0 and wb.queued == 0, wb
    # After the fsync, the mount shows what the backing holds.
    seen = ops.ok([("stat", os.path.join(x, n)) for n in names])
    for n, st in zip(names, seen):
        b = os.lstat(os.path.join(m.backing, "x", n))
        assert (st["perm"], st["uid"], st["gid"], st["size"],
                st["mtime_ns"]) == (stat.S_IMODE(b.st_mode), b.st_uid,
                                    b.st_gid, b.st_size, b.st_mtime_ns), n


def test_a_reader_sees_a_file_created_early_while_it_is_written(mounts):
    """A second process sees the file a first one created and writes, with
    its size and contents, while the first still holds it open."""
    m = mounts.mount("loopback", options=OPTIONS)
    writer = mounts.ops()
    reader = mounts.ops()
    d = os.path.join(m.path, "d")
    f = os.path.join(d, "new")
    made_and_known(writer, m, d)
    before = write_behind_stats(m)
    written = []
    # The writer holds the file open meanwhile: 4 s, then one more write.
    thread = threading.Thread(target=lambda: written.append(writer.run(
        [("open", f, ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o640, "h"),
         ("write", "h", b"first part;"), ("write", "h", b"second part"),
         ("sleep", 4), ("write", "h", b"!"), ("close", "h")], timeout=30)))
    thread.start()
    try:
        assert fhlib.wait_until(
            lambda: write_behind_stats(m).early >= before.early + 3, 3), \
            (before, write_behind_stats(m))
        r = reader.run([("stat", f), ("read_file", f), ("listdir", d)])
        st = r[0]
        assert (st["perm"], st["size"], st["nlink"]) == (0o640, 22, 1), st
        assert st["uid"] == os.getuid() and st["gid"] == os.getgid(), st
        assert r[1:] == [b"first part;second part", ["new"]], r
    finally:
        thread.join(30)
    assert written == [[True, 11, 11, True, 1, True]], written
    assert reader.one(("read_file", f)) == b"first part;second part!"
    assert fsync(reader, f) is True
    with open(os.path.join(m.backing, "d", "new"), "rb") as fh:
        assert fh.read() == b"first part;second part!"
    assert perm(os.path.join(m.backing, "d", "new")) == 0o640
    assert write_behind_stats(m).refused == 0


def test_a_refused_create_is_reported_and_the_name_disappears(
        py_mounts):  # noqa: F811
    """A create answered early that the backend refuses is reported by the
    next fsync, with the writes behind it; the name is gone from the
    mount, and the mount goes on working."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("write_file", "other", b"o", 0o644),
            ("listdir", "d"), ("stat", "d")])
    before = write_behind_stats(m)
    # Answered early, the writes and the close too: the backend is stopped,
    # so its refusal cannot come before them (it would fail them, as ops
    # on a file whose create was refused).
    stop_backend(m)
    try:
        assert ops.one(("write_file", "d/nocreate-me", b"data", 0o644),
                       timeout=20) is True
        assert write_behind_stats(m).early > before.early
    finally:
        m.backend.signal(signal.SIGCONT)
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r == [True, "EACCES", True, True], r
    wb = write_behind_stats(m)
    assert wb.refused > before.refused and wb.queued == 0, wb
    log = fhlib.tail(m.daemon.log, py_mounts.daemon_log_start, 200000)
    assert "write-behind: create of /d/nocreate-me failed at the backend" \
        in log, log
    r = ops.run([("stat", "d/nocreate-me"), ("listdir", "d"),
                 ("write_file", "d/fine", b"fine"), ("read_file", "d/fine")])
    assert r == ["ENOENT", [], True, b"fine"], r


def test_a_backend_killed_with_creates_and_writes_queued(mounts):
    """Files created and written while the backend is stopped, which is
    then killed: afterwards the mount shows what the backing holds, name
    by name, and goes on working."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    d = os.path.join(m.path, "d")
    made_and_known(ops, m, d)
    names = ["k%d" % i for i in range(5)]
    stop_backend(m)
    try:
        assert ops.run([("write_file", os.path.join(d, n), n.encode() * 100,
                         0o600) for n in names], timeout=20) == [True] * 5
        assert write_behind_stats(m).queued >= 5
    finally:
        kill_backend(m)
    m.backend.start()

    synced = fsync(ops, d, directory=True)
    assert synced is True or isinstance(synced, fhlib.Err), synced
    assert write_behind_stats(m).queued == 0
    backing = sorted(os.listdir(os.path.join(m.backing, "d")))
    assert sorted(ops.one(("listdir", d))) == backing
    for n in names:
        path = os.path.join(d, n)
        r = ops.run([("stat", path), ("read_file", path)])
        b = os.path.join(m.backing, "d", n)
        if n in backing:
            with open(b, "rb") as fh:
                assert r[1] == fh.read(), (n, r)
            assert r[0]["size"] == os.lstat(b).st_size, (n, r)
        else:
            assert r == ["ENOENT", "ENOENT"], (n, r)
    if synced is True:
        assert backing == names
    # The mount goes on working, early answers included.
    g = os.path.join(d, "after")
    r = ops.run([("write_file", g, b"after the restart"), ("read_file", g)])
    assert r == [True, b"after the restart"], r
    assert fsync(ops, g) is True
    with open(os.path.join(m.backing, "d", "after"), "rb") as fh:
        assert fh.read() == b"after the restart"


# --- 8. renames answered early -------------------------------------------------------

def test_a_rename_is_answered_with_the_backend_stopped(mounts):
    """A rename of a cached file to a name the daemon knows is absent is
    answered while the backend is stopped; a reader on the mount finds the
    old name gone at once, and the new name with the file's contents once
    the backend runs again; after an fsync the backing directory holds
    the same file under the new name."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    reader = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "src", b"moved contents", 0o640),
            ("write_file", "other", b"o", 0o644), ("stat", "src"),
            ("stat", "."), ("listdir", ".")])
    cached(ops, m, "src", ".")
    ops.ok([("listdir", ".")])
    assert fsync(ops, m.path, directory=True) is True
    ino = os.lstat(os.path.join(m.backing, "src")).st_ino
    before = write_behind_stats(m)
    stop_backend(m)
    resumed = False
    try:
        assert ops.run([("rename", "src", "dst")], timeout=20) == [True]
        wb = write_behind_stats(m)
        assert wb.early == before.early + 1 and wb.queued >= 1, (before, wb)
        assert reader.run([("stat", "src")], timeout=20) == ["ENOENT"]
        assert sorted(os.listdir(m.backing)) == ["other", "src"]
        m.backend.signal(signal.SIGCONT)
        resumed = True
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
    r = reader.run([("stat", "dst"), ("read_file", "dst"), ("stat", "src"),
                    ("listdir", ".")])
    assert r[0]["perm"] == 0o640 and r[0]["nlink"] == 1, r
    assert r[1:3] == [b"moved contents", "ENOENT"], r
    assert sorted(r[3]) == ["dst", "other"], r
    assert fsync(ops, "other") is True
    assert sorted(os.listdir(m.backing)) == ["dst", "other"]
    b = os.lstat(os.path.join(m.backing, "dst"))
    assert (b.st_ino, stat.S_IMODE(b.st_mode)) == (ino, 0o640)
    with open(os.path.join(m.backing, "dst"), "rb") as f:
        assert f.read() == b"moved contents"
    wb = write_behind_stats(m)
    assert wb.refused == 0 and wb.queued == 0, wb


def test_a_rename_over_a_file_replaces_it(mounts):
    """A rename over a cached file of one name (an editor's save) is
    answered early: the replaced file is gone, from the mount and the
    backing directory, but stays readable through a descriptor opened
    before; the moved file keeps its one link. Over a file of two names
    the rename waits for the backend, and the other name is left with one
    link."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "new", b"new contents", 0o600),
            ("write_file", "old", b"old contents", 0o644),
            ("write_file", "a", b"linked", 0o644), ("link", "a", "b"),
            ("write_file", "c", b"over the link", 0o644)])
    cached(ops, m, "new", "old", "a", "b", "c", ".")
    ino = os.lstat(os.path.join(m.backing, "new")).st_ino
    before = write_behind_stats(m)
    r = ops.run([("open", "old", ["O_RDONLY"], 0, "h"),
                 ("rename", "new", "old"), ("read", "h", 100),
                 ("close", "h")])
    assert r == [True, True, b"old contents", True], r
    assert write_behind_stats(m).early == before.early + 1
    r = ops.run([("stat", "old"), ("read_file", "old"), ("stat", "new")])
    assert (r[0]["perm"], r[0]["nlink"], r[0]["size"]) == (0o600, 1, 12), r
    assert r[1:] == [b"new contents", "ENOENT"], r

    # Over one of two names: the backend's answer, awaited.
    before = write_behind_stats(m)
    assert ops.one(("rename", "c", "b")) is True
    assert write_behind_stats(m).early == before.early
    r = ops.run([("stat", "a"), ("read_file", "b"), ("listdir", ".")])
    assert r[0]["nlink"] == 1, r
    assert r[1] == b"over the link", r
    assert sorted(r[2]) == ["a", "b", "old"], r

    assert fsync(ops, m.path, directory=True) is True
    assert sorted(os.listdir(m.backing)) == ["a", "b", "old"]
    b = os.lstat(os.path.join(m.backing, "old"))
    assert (b.st_ino, b.st_nlink, stat.S_IMODE(b.st_mode)) == \
        (ino, 1, 0o600)
    with open(os.path.join(m.backing, "old"), "rb") as f:
        assert f.read() == b"new contents"
    assert os.lstat(os.path.join(m.backing, "a")).st_nlink == 1
    assert write_behind_stats(m).refused == 0


def test_create_write_rename_write_lands_byte_identical(mounts):
    """Files created, written and renamed while the backend is stopped
    (each in a directory the daemon knows, as a rename drops its
    directory's listing, as one the backend answered does), then written
    again under the new name once it runs: the backing directories end with
    exactly what was written, under the new names, no old name left."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    writer = mounts.ops()
    n = 8
    dirs = [os.path.join(m.path, "d%d" % i) for i in range(n)]
    for d in dirs:
        made_and_known(ops, m, d)
    renamed, rewritten, want = [], [], {}
    for i, d in enumerate(dirs):
        tmp, final = os.path.join(d, "tmp"), os.path.join(d, "final")
        first = hashlib.sha256(b"first %d" % i).digest() * (1 + i * 37)
        last = hashlib.sha256(b"last %d" % i).digest() * (1 + i * 11)
        renamed += [("open", tmp, ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o644,
                     "h%d" % i), ("write", "h%d" % i, first),
                    ("rename", tmp, final)]
        rewritten += [("write", "h%d" % i, last), ("close", "h%d" % i)]
        want[i] = first + last
    before = write_behind_stats(m)
    written = []
    thread = threading.Thread(target=lambda: written.append(
        writer.run(renamed + rewritten, timeout=60)))
    stop_backend(m)
    resumed = False
    try:
        # The creates, first writes and renames are answered early; the
        # writes after a rename wait for the backend.
        thread.start()
        assert fhlib.wait_until(
            lambda: write_behind_stats(m).early >= before.early + 3 * n, 10), \
            (before, write_behind_stats(m))
        for d in dirs:
            assert os.listdir(os.path.join(m.backing, os.path.basename(d))) \
                == []
        m.backend.signal(signal.SIGCONT)
        resumed = True
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
        if thread.is_alive():
            thread.join(60)
    assert len(written) == 1 and \
        not [x for x in written[0] if isinstance(x, fhlib.Err)], written
    assert fsync(ops, m.path, directory=True) is True
    for i, d in enumerate(dirs):
        backing = os.path.join(m.backing, os.path.basename(d))
        assert os.listdir(backing) == ["final"], i
        with open(os.path.join(backing, "final"), "rb") as f:
            assert f.read() == want[i], i
    sums = ops.ok([("sha256", os.path.join(d, "final")) for d in dirs])
    assert [s[0] for s in sums] == \
        [hashlib.sha256(want[i]).hexdigest() for i in range(n)]
    assert write_behind_stats(m).refused == 0


def test_a_refused_rename_is_reported_and_both_names_show_the_backend(
        py_mounts):  # noqa: F811
    """A rename answered early that the backend refuses is reported by the
    next fsync and logged; the mount forgets the early answer: the old
    name is back, the new one gone."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("write_file", "refuse-mv", b"x", 0o644),
            ("write_file", "other", b"o", 0o644), ("stat", "refuse-mv"),
            ("stat", "."), ("stat", "d"), ("listdir", "."), ("listdir", "d")])
    before = write_behind_stats(m)
    # Answered early: 0, before the backend has seen (and refused) it.
    assert ops.one(("rename", "refuse-mv", "d/moved")) is True
    assert write_behind_stats(m).early == before.early + 1
    refusal_reported(
        py_mounts, m, ops, before, "EACCES",
        "write-behind: rename of /refuse-mv failed at the backend")
    r = ops.run([("stat", "refuse-mv"), ("read_file", "refuse-mv"),
                 ("stat", "d/moved"), ("listdir", "."), ("listdir", "d")])
    assert r[0]["size"] == 1 and r[1] == b"x", r
    assert r[2] == "ENOENT" and r[4] == [], r
    assert sorted(r[3]) == ["d", "other", "refuse-mv"], r
    # The mount goes on working, renames answered early included.
    ops.ok([("stat", "other"), ("stat", "."), ("listdir", "d"), ("stat", "d")])
    before = write_behind_stats(m)
    assert ops.one(("rename", "other", "d/other")) is True
    assert write_behind_stats(m).early == before.early + 1
    assert fsync(ops, "d", directory=True) is True
    assert write_behind_stats(m).refused == before.refused
    assert ops.run([("stat", "other"), ("read_file", "d/other")]) == \
        ["ENOENT", b"o"]


def test_a_directory_made_on_the_mount_inherits_what_its_parent_has_of_default_acls(
        mounts, users):
    """A directory made through the mount where the daemon knows there is no
    default ACL has none either (POSIX ACLs are inherited): its first create
    is answered early too, with the backend stopped (an untar makes a
    directory and fills it at once). Where the parent has a default ACL, or
    one is set on the new directory through the mount, creates in it go to
    the backend, and the files get the ACL."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    plain = os.path.join(m.path, "plain")
    made_and_known(ops, m, plain)
    sub = os.path.join(plain, "sub")
    ops.ok([("mkdir", sub, 0o755)])
    before = write_behind_stats(m)
    stop_backend(m)
    resumed = False
    try:
        run_cmd(["sh", "-c", "echo first > %s/f" % sub], timeout=30).check()
        # The create, its write, flush and release.
        assert write_behind_stats(m).early >= before.early + 3
        m.backend.signal(signal.SIGCONT)
        resumed = True
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
    assert fsync(ops, sub, directory=True) is True
    with open(os.path.join(m.backing, "plain", "sub", "f"), "rb") as f:
        assert f.read() == b"first\n"

    entry = "user:%s:rwx" % users.a.name
    # A parent with a default ACL: the new directory and its files inherit it.
    shared = os.path.join(m.path, "shared")
    ops.ok([("mkdir", shared, 0o755)])
    run_cmd(["setfacl", "-d", "-m", "u:%s:rwx" % users.a.name, shared]).check()
    inner = os.path.join(shared, "inner")
    ops.ok([("mkdir", inner, 0o755), ("write_file", os.path.join(inner, "g"),
                                      b"g")])
    # And a default ACL set on a directory just made where there was none.
    late = os.path.join(plain, "late")
    ops.ok([("mkdir", late, 0o755)])
    run_cmd(["setfacl", "-d", "-m", "u:%s:rwx" % users.a.name, late]).check()
    ops.ok([("write_file", os.path.join(late, "h"), b"h")])
    for d in (shared, plain):
        assert fsync(ops, d, directory=True) is True
    for path in ("shared/inner", "plain/late"):
        for where in (m.backing, m.path):
            acl = run_cmd(["getfacl", "-p", os.path.join(where, path)]).check()
            assert "default:" + entry in acl.stdout, (where, path, acl.stdout)
    for path in ("shared/inner/g", "plain/late/h"):
        for where in (m.backing, m.path):
            acl = run_cmd(["getfacl", "-p", os.path.join(where, path)]).check()
            # rwx masked by the file's mode, as getfacl shows it.
            assert "\nuser:%s:rwx" % users.a.name in acl.stdout, (
                where, path, acl.stdout)
