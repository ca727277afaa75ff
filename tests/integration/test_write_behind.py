"""Write-behind (mount option write_behind): chmod, chown, utimens and
unlink of paths the daemon has cached, rmdir of directories it knows are
empty, creates of names it knows are absent (with the writes, flushes and
release of the files so created), and renames of files to names it knows
are absent or over files it has cached are answered at once and sent to
the backend afterwards, in order (daemon/pipeline/write_behind.h).

A tar round trip lands in the backing directory exactly as it was packed
and the mount shows what the backing directory holds; readers on the mount
see each change at once; queued changes keep their order; the kernel's
permission checks and POSIX's rules still hold; a change the backend
refuses comes back at the next fsync, and the daemon forgets its early
answer; a backend killed with a change queued leaves a consistent state;
and the mount options write_behind needs are enforced."""

import collections
import hashlib
import os
import re
import signal
import stat
import threading
import time

import pytest

import daemon_stats
import fhlib
from fhlib import is_mounted, run_cmd
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from restart_lib import kill_backend, stop_backend

pytestmark = pytest.mark.usefixtures("needs_daemon")

HERE = os.path.dirname(os.path.abspath(__file__))
# The loopbacks' chmod, chown and utimens are otherwise made by the daemon
# itself rather than answered early (test_daemon_changes.py checks the two
# together).
OPTIONS = "allow_other,write_behind,daemon_changes=off"

WriteBehindStats = collections.namedtuple("WriteBehindStats",
                                          "early refused queued")


def write_behind_stats(m):
    """The stats line of write-behind: (answered early, refused later,
    queued now)."""
    out = m.daemon.ctl("stats", m.path).check().stdout
    found = re.search(r"write-behind\s+(\d+) answered early, (\d+) refused "
                      r"later, (\d+) queued now", out)
    assert found, "no write-behind line in stats:\n" + out
    return WriteBehindStats(*(int(x) for x in found.groups()))


def cached(ops, m, *paths):
    """Stats `paths` once the kernel's releases of the files just written
    have reached the daemon (no backing file left). A release comes after
    close(2) returns and drops what the daemon caches of a file written
    through its backing file: a stat made before it would be forgotten, and
    a change of that file would wait for the backend instead of being
    answered early."""
    assert fhlib.wait_until(
        lambda: daemon_stats.passthrough_stats(m)[2] == 0, 10), \
        daemon_stats.passthrough_stats(m)
    ops.ok([("stat", p) for p in paths])


def fsync(ops, path, directory=False):
    """fsync(2) of `path` (a directory: fsyncdir) in a runner process:
    True, or the Err it failed with."""
    flags = ["O_RDONLY"] + (["O_DIRECTORY"] if directory else [])
    r = ops.run([("open", path, flags, 0, "h"), ("fsync", "h"),
                 ("close", "h")])
    assert r[0] is True and r[2] is True, r
    return r[1]


def perm(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def stat_fields(path):
    """`stat` the tool, in its own process: perm (octal text), uid, gid,
    atime, mtime (seconds)."""
    r = run_cmd(["stat", "-c", "%a %u %g %X %Y", path], timeout=30)
    assert r.returncode == 0, r
    p, uid, gid, atime, mtime = r.stdout.split()
    return int(p, 8), int(uid), int(gid), int(atime), int(mtime)


# --- 1. a tar round trip -----------------------------------------------------------

FILE_MODES = (0o600, 0o640, 0o644, 0o755, 0o444, 0o700, 0o664, 0o750)
DIRS = {"tree": 0o755, "tree/a": 0o755, "tree/a/b": 0o750,
        "tree/a/b/c": 0o700, "tree/d": 0o775, "tree/d/e": 0o755,
        "tree/f": 0o711}
FILE_DIRS = sorted(d for d in DIRS if d != "tree") + ["tree"]
BASE_TIME = 1_000_000_000


def build_tree(top, users, files=200):
    """Under `top`: the directories of DIRS, `files` files of varied sizes,
    modes and owners, a symlink and a pair of hard links, every mtime set
    explicitly (the directories' last)."""
    for d in sorted(DIRS):
        os.mkdir(os.path.join(top, d))
    for i in range(files):
        path = os.path.join(top, FILE_DIRS[i % len(FILE_DIRS)],
                            "file%03d" % i)
        with open(path, "wb") as f:
            f.write(("%d;" % i).encode() * ((i * 37) % 900))
        if i % 4 == 0:
            os.chown(path, users.a.uid, users.a.gid)
        os.chmod(path, FILE_MODES[i % len(FILE_MODES)])
        os.utime(path, (BASE_TIME + 500 + i, BASE_TIME + i * 3607))
    os.symlink("b/c/file002", os.path.join(top, "tree/a/link"))
    os.utime(os.path.join(top, "tree/a/link"),
             (BASE_TIME, BASE_TIME + 77), follow_symlinks=False)
    hard = os.path.join(top, "tree/d/hard1")
    with open(hard, "wb") as f:
        f.write(b"one file, two names\n")
    os.chmod(hard, 0o640)
    os.link(hard, os.path.join(top, "tree/f/hard2"))
    os.utime(hard, (BASE_TIME, BASE_TIME + 99))
    for n, d in enumerate(sorted(DIRS, reverse=True)):  # deepest first
        path = os.path.join(top, d)
        os.chmod(path, DIRS[d])
        os.utime(path, (BASE_TIME, BASE_TIME + 10_000 * (n + 1)))


def snapshot(top):
    """What tar must carry over, for every name below `top`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            entry = {"type": stat.S_IFMT(st.st_mode),
                     "perm": stat.S_IMODE(st.st_mode),
                     "uid": st.st_uid, "gid": st.st_gid,
                     "mtime": st.st_mtime_ns // 10**9}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
                entry["size"] = st.st_size
                entry["nlink"] = st.st_nlink
            elif stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            out[os.path.relpath(path, top)] = entry
    return out


def test_a_tar_round_trip_lands_in_the_backing_directory(mounts, users):
    m = mounts.mount("loopback", options=OPTIONS)
    staging = mounts.mkdir("staging")
    build_tree(staging, users)
    archive = mounts.path("tree.tar")
    run_cmd(["tar", "--numeric-owner", "-cf", archive, "-C", staging,
             "tree"], timeout=60).check()
    want = snapshot(staging)
    assert len(want) == 200 + 1 + 2 + len(DIRS), len(want)

    run_cmd(["tar", "--numeric-owner", "-xf", archive, "-C", m.path],
            timeout=120).check()
    ops = mounts.ops()
    assert fsync(ops, m.path, directory=True) is True

    got = snapshot(m.backing)
    assert sorted(got) == sorted(want)
    bad = {name: (want[name], got[name]) for name in want
           if got[name] != want[name]}
    assert not bad, "backing differs from the staging tree: %r" % bad
    for name in ("tree/d/hard1", "tree/f/hard2"):
        assert got[name]["nlink"] == 2, name
    assert os.lstat(os.path.join(m.backing, "tree/d/hard1")).st_ino == \
        os.lstat(os.path.join(m.backing, "tree/f/hard2")).st_ino

    # The mount shows what the backing directory holds.
    names = sorted(want)
    seen = ops.ok([("lstat", os.path.join(m.path, n)) for n in names])
    mismatched = []
    for name, st in zip(names, seen):
        b = os.lstat(os.path.join(m.backing, name))
        mine = {"type": st["type"], "perm": st["perm"], "uid": st["uid"],
                "gid": st["gid"], "mtime_ns": st["mtime_ns"],
                "nlink": st["nlink"]}
        theirs = {"type": stat.S_IFMT(b.st_mode),
                  "perm": stat.S_IMODE(b.st_mode), "uid": b.st_uid,
                  "gid": b.st_gid, "mtime_ns": b.st_mtime_ns,
                  "nlink": b.st_nlink}
        if not stat.S_ISDIR(b.st_mode):
            mine["size"], theirs["size"] = st["size"], b.st_size
        if mine != theirs:
            mismatched.append((name, mine, theirs))
    # (Asserted at the end, once the rest has been checked too.)
    files = [n for n in names if want[n]["type"] == stat.S_IFREG]
    sums = ops.ok([("sha256", os.path.join(m.path, n)) for n in files])
    assert [s[0] for s in sums] == [want[n]["sha256"] for n in files]
    assert ops.one(("readlink", os.path.join(m.path, "tree/a/link"))) == \
        "b/c/file002"
    listed = run_cmd(["find", os.path.join(m.path, "tree"), "-printf",
                      "%P\n"], timeout=60).check()
    assert sorted(l for l in listed.stdout.splitlines() if l) == \
        sorted(os.path.relpath(n, "tree") for n in names if n != "tree")

    wb = write_behind_stats(m)
    assert wb.early > 0, wb
    assert wb.refused == 0, wb
    assert wb.queued == 0, wb

    # And away again (the files' unlinks answered early too).
    run_cmd(["rm", "-rf", os.path.join(m.path, "tree")], timeout=120).check()
    assert fsync(ops, m.path, directory=True) is True
    assert os.listdir(m.backing) == []
    assert ops.one(("listdir", m.path)) == []
    after = write_behind_stats(m)
    assert after.early > wb.early, (wb, after)
    assert after.refused == 0 and after.queued == 0, after

    assert not mismatched, "after the extraction, stat through the mount " \
        "differed from the backing for %d names (name, mount, backing): %r" \
        % (len(mismatched), mismatched[:5])


def test_rm_rf_after_tar_x_is_answered_early_and_empties_the_backing(
        mounts):
    """rm -rf of a tree just extracted (the benchmark's rm): every unlink
    is answered early (the files' attributes outlive the close of their
    writes through the backing file) and so is every rmdir (each directory
    is known empty from its listing once its names were unlinked); the
    backing directory ends up empty."""
    m = mounts.mount("loopback", options=OPTIONS)
    staging = mounts.mkdir("staging")
    ndirs, per_dir = 4, 25
    for d in range(ndirs):
        sub = os.path.join(staging, "pkg", "sub%d" % d)
        os.makedirs(sub)
        for i in range(per_dir):
            with open(os.path.join(sub, "file%02d" % i), "wb") as f:
                f.write(b"%d;" % i * 300)
    archive = mounts.path("pkg.tar")
    run_cmd(["tar", "-cf", archive, "-C", staging, "pkg"], timeout=60).check()
    run_cmd(["tar", "-xf", archive, "-C", m.path], timeout=120).check()
    ops = mounts.ops()
    # The closes' releases have reached the daemon.
    assert fhlib.wait_until(
        lambda: daemon_stats.passthrough_stats(m)[2] == 0, 10), \
        daemon_stats.passthrough_stats(m)
    before = write_behind_stats(m)
    run_cmd(["rm", "-rf", os.path.join(m.path, "pkg")], timeout=120).check()
    after = write_behind_stats(m)
    assert after.early - before.early == ndirs * per_dir + ndirs + 1, \
        (before, after)
    assert ops.one(("listdir", m.path)) == []
    assert fsync(ops, m.path, directory=True) is True
    assert os.listdir(m.backing) == []
    wb = write_behind_stats(m)
    assert wb.refused == 0 and wb.queued == 0, wb
    # The names can be made again at once.
    r = ops.run([("mkdir", os.path.join(m.path, "pkg"), 0o755),
                 ("mkdir", os.path.join(m.path, "pkg", "sub0"), 0o755),
                 ("write_file", os.path.join(m.path, "pkg", "sub0", "f"),
                  b"again")])
    assert r == [True, True, True], r
    assert fsync(ops, m.path, directory=True) is True
    with open(os.path.join(m.backing, "pkg", "sub0", "f"), "rb") as f:
        assert f.read() == b"again"


def test_times_set_on_a_file_open_for_writing_are_kept(mounts):
    """tar's sequence for each file (create, write, set the times, fchown,
    fchmod, close), its writes passed through to the backing file: the
    times wait for the backend (a later write through the backing file must
    not reach the file before them), the owner and mode are answered early
    with the backend stopped, and the mount shows the times the file was
    given, not those its backing file had before."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "other", b"o")])
    when = [1000000000, 0]
    h = mounts.hold(ops, [
        ("open", "f", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o644),
        ("write", "f", "some data"),
        ("utimensat", "f", when, when),
        ("sync", "timed"),
        ("fchown", "f", 0, 0),
        ("fchmod", "f", 0o600),
        ("sync", "changed"),
        ("fstat", "f"),
        ("close", "f"),
        ("stat", "f")])
    h.wait_sync("timed")
    before = write_behind_stats(m)
    stop_backend(m)
    try:
        # Answered early: they do not wait for the stopped backend.
        h.release()
        h.wait_sync("changed")
        wb = write_behind_stats(m)
        assert wb.early == before.early + 2 and wb.queued >= 1, wb
    finally:
        m.backend.signal(signal.SIGCONT)
    h.release()
    r = h.finish()
    assert r[:7] == [True, 9, True, True, True, True, True], r
    assert r[8] is True, r
    assert fsync(ops, "other") is True
    b = os.lstat(os.path.join(m.backing, "f"))
    assert (stat.S_IMODE(b.st_mode), b.st_mtime_ns, b.st_size) == \
        (0o600, 10**18, 9)
    seen = {"fstat before close": r[7], "stat after close": r[9],
            "stat after fsync": ops.one(("stat", "f"))}
    wrong = {k: (st["perm"], st["mtime_ns"], st["size"])
             for k, st in seen.items()
             if (st["perm"], st["mtime_ns"], st["size"]) != (0o600, 10**18, 9)}
    assert not wrong, "the mount shows (perm, mtime_ns, size) %r; the " \
        "backing file (0o600, 10**18, 9)" % wrong


def test_a_write_after_setting_the_times_moves_mtime(mounts):
    """POSIX: a write after utime sets mtime to the time of the write, also
    when the write goes straight to the backing file (passthrough)."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    when = [1000000000, 0]
    r = ops.ok([
        ("open", "f", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o644),
        ("write", "f", "first"),
        ("utimensat", "f", when, when),
        ("write", "f", "second"),
        ("close", "f"),
        ("stat", "f")])
    mounted = r[-1]["mtime_ns"]
    b = os.lstat(os.path.join(m.backing, "f"))
    assert mounted > 10**18 and b.st_mtime_ns > 10**18, (mounted, b)


# --- 2. readers see each change at once ----------------------------------------------

def test_a_reader_on_the_mount_sees_each_change_at_once(mounts, users):
    m = mounts.mount("loopback", options=OPTIONS)
    root = mounts.ops(cwd=m.path)
    root.ok([("write_file", "f", b"contents", 0o644),
             ("write_file", "g", b"doomed", 0o644),
             ("stat", "f"), ("stat", "g"), ("listdir", ".")])
    cached(root, m, "f", "g", ".")
    f, g = os.path.join(m.path, "f"), os.path.join(m.path, "g")
    before = write_behind_stats(m)

    # Each change by one process (a tool), each look by another.
    run_cmd(["chmod", "640", f], timeout=30).check()
    assert stat_fields(f)[0] == 0o640
    # -c: by path, as os.utime (a file open for writing is another test's).
    run_cmd(["touch", "-c", "-d", "@1234567890", f], timeout=30).check()
    assert stat_fields(f)[3:] == (1234567890, 1234567890)
    run_cmd(["chown", "%d:%d" % (users.a.uid, users.a.gid), f],
            timeout=30).check()
    assert stat_fields(f) == (0o640, users.a.uid, users.a.gid, 1234567890,
                              1234567890)
    run_cmd(["rm", g], timeout=30).check()
    listed = run_cmd(["ls", "-a", m.path], timeout=30).check()
    assert listed.stdout.split() == [".", "..", "f"]
    gone = run_cmd(["stat", g], timeout=30)
    assert gone.returncode != 0 and "No such file" in gone.stderr, gone
    assert root.one(("exists", "g")) is False

    # Those were answered early, and reach the backend.
    assert write_behind_stats(m).early >= before.early + 4
    root.ok([("write_file", "other", b"o")])
    assert fsync(root, "other") is True
    b = os.lstat(os.path.join(m.backing, "f"))
    assert (stat.S_IMODE(b.st_mode), b.st_uid, b.st_gid, b.st_atime_ns,
            b.st_mtime_ns) == (0o640, users.a.uid, users.a.gid,
                               1234567890 * 10**9, 1234567890 * 10**9)
    assert not os.path.lexists(os.path.join(m.backing, "g"))
    assert write_behind_stats(m).refused == 0


# --- 3. order ------------------------------------------------------------------------

def test_many_chmods_of_one_file_end_with_the_last(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"x", 0o644), ("stat", "f")])
    cached(ops, m, "f")
    before = write_behind_stats(m)
    modes = [0o600, 0o640, 0o604, 0o644, 0o660, 0o606, 0o700, 0o755, 0o711,
             0o750, 0o705, 0o664, 0o646, 0o666, 0o400, 0o444, 0o641]
    ops.ok([("chmod", "f", mode) for mode in modes])
    assert write_behind_stats(m).early >= before.early + len(modes)
    assert fsync(ops, "f") is True
    assert perm(os.path.join(m.backing, "f")) == modes[-1]
    assert ops.one(("stat", "f"))["perm"] == modes[-1]


def test_unlink_then_create_of_one_name_keeps_the_new_file(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "g", b"the old contents", 0o644), ("stat", "g"),
            ("listdir", ".")])
    cached(ops, m, "g", ".")
    before = write_behind_stats(m)
    ops.ok([("unlink", "g"), ("write_file", "g", b"new", 0o600)])
    assert write_behind_stats(m).early >= before.early + 1
    assert fsync(ops, "g") is True
    with open(os.path.join(m.backing, "g"), "rb") as f:
        assert f.read() == b"new"
    assert perm(os.path.join(m.backing, "g")) == 0o600
    r = ops.ok([("read_file", "g"), ("stat", "g"), ("listdir", ".")])
    assert r[0] == b"new" and r[1]["perm"] == 0o600 and r[1]["size"] == 3
    assert r[2] == ["g"]


def test_rename_over_a_name_after_queued_chmods(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "src", b"the source", 0o644),
            ("write_file", "dst", b"the target", 0o644),
            ("stat", "src"), ("stat", "dst")])
    cached(ops, m, "src", "dst", ".")
    before = write_behind_stats(m)
    ops.ok([("chmod", "dst", 0o666), ("chmod", "src", 0o600),
            ("rename", "src", "dst")])
    assert write_behind_stats(m).early >= before.early + 2
    assert fsync(ops, m.path, directory=True) is True
    assert sorted(os.listdir(m.backing)) == ["dst"]
    with open(os.path.join(m.backing, "dst"), "rb") as f:
        assert f.read() == b"the source"
    assert perm(os.path.join(m.backing, "dst")) == 0o600
    r = ops.run([("stat", "dst"), ("read_file", "dst"), ("stat", "src"),
                 ("listdir", ".")])
    assert r[0]["perm"] == 0o600 and r[1] == b"the source", r
    assert r[2] == "ENOENT" and r[3] == ["dst"], r


# --- 4. POSIX still holds ---------------------------------------------------------------

def test_a_chmod_by_a_non_owner_is_refused(mounts, users):
    m = mounts.mount("loopback", options=OPTIONS)
    root = mounts.ops(cwd=m.path)
    root.ok([("mkdir", "shared", 0o777), ("chmod", "shared", 0o777),
             ("write_file", "shared/roots", b"root's", 0o644),
             ("stat", "shared/roots")])
    a = mounts.ops(users.a, cwd=os.path.join(m.path, "shared"))
    r = a.run([("chmod", "roots", 0o666), ("chown", "roots", users.a.uid, -1),
               ("utimensat", "roots", [1, 0], [2, 0]),
               ("write_file", "mine", b"a's", 0o644), ("stat", "mine"),
               ("chmod", "mine", 0o600),
               ("chown", "mine", users.b.uid, -1),
               ("stat", "roots"), ("stat", "mine")])
    assert r[:3] == ["EPERM", "EPERM", "EPERM"], r
    assert r[3] is True and r[5] is True, r
    assert r[6] == "EPERM", r
    assert r[7]["perm"] == 0o644 and r[7]["uid"] == 0, r
    assert r[8]["perm"] == 0o600 and r[8]["uid"] == users.a.uid, r
    assert fsync(root, m.path, directory=True) is True
    b = os.lstat(os.path.join(m.backing, "shared/roots"))
    assert (stat.S_IMODE(b.st_mode), b.st_uid) == (0o644, 0)
    assert b.st_mtime_ns != 2 * 10**9
    b = os.lstat(os.path.join(m.backing, "shared/mine"))
    assert (stat.S_IMODE(b.st_mode), b.st_uid) == (0o600, users.a.uid)
    wb = write_behind_stats(m)
    assert wb.refused == 0, wb


def test_unlinking_one_of_two_hard_links_leaves_one_link(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "one", b"shared", 0o644), ("link", "one", "two")])
    cached(ops, m, ".")
    r = ops.ok([("stat", "one"), ("stat", "two"), ("listdir", ".")])
    assert r[0]["nlink"] == 2 and r[1]["nlink"] == 2, r
    before = write_behind_stats(m)
    assert ops.one(("unlink", "two")) is True
    # Not answered early: the file has another name, whose ops would not
    # wait behind the queued unlink.
    assert write_behind_stats(m).early == before.early
    # At once, from another process.
    r = ops.run([("stat", "one"), ("stat", "two")])
    assert r[1] == "ENOENT", r
    assert r[0]["nlink"] == 1, r
    assert fsync(ops, "one") is True
    assert os.lstat(os.path.join(m.backing, "one")).st_nlink == 1
    assert ops.one(("stat", "one"))["nlink"] == 1


def test_a_chmod_moves_ctime(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"x", 0o644)])
    cached(ops, m, "f")
    first = ops.one(("stat", "f"))
    before = write_behind_stats(m)
    assert ops.one(("chmod", "f", 0o604)) is True
    after = ops.one(("stat", "f"))
    assert write_behind_stats(m).early >= before.early + 1
    assert after["perm"] == 0o604
    assert after["ctime_ns"] >= first["ctime_ns"]
    assert after["mtime_ns"] == first["mtime_ns"]
    assert fsync(ops, "f") is True
    assert perm(os.path.join(m.backing, "f")) == 0o604


def test_utime_with_explicit_values_gives_exactly_those(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"x", 0o644), ("write_file", "other", b"o"),
            ("stat", "f")])
    cached(ops, m, "f")
    before = write_behind_stats(m)
    atime, mtime = (1234567890, 123456789), (1000000000, 5)
    assert ops.one(("utimensat", "f", list(atime), list(mtime))) is True
    st = ops.one(("stat", "f"))
    assert write_behind_stats(m).early >= before.early + 1
    want_a = atime[0] * 10**9 + atime[1]
    want_m = mtime[0] * 10**9 + mtime[1]
    assert (st["atime_ns"], st["mtime_ns"]) == (want_a, want_m), st
    # Only the atime, then: the mtime stays.
    assert ops.one(("utimensat", "f", [1500000000, 7], "OMIT")) is True
    st = ops.one(("stat", "f"))
    assert (st["atime_ns"], st["mtime_ns"]) == (1500000000 * 10**9 + 7,
                                                want_m), st
    # fsync waits for every queued op. (Of another file: the loopback's
    # open of f would move the atime of its backing file.)
    assert fsync(ops, "other") is True
    b = os.lstat(os.path.join(m.backing, "f"))
    assert (b.st_atime_ns, b.st_mtime_ns) == (1500000000 * 10**9 + 7, want_m)


def test_rmdir_of_a_directory_not_known_empty_gets_enotempty(mounts):
    """An rmdir is answered early only for a directory the daemon knows is
    empty. One holding a name the daemon never listed (made in the backing
    directory: the directory was never listed through the mount, or was
    listed empty before the name appeared), or one listed with a name left
    in it, goes to the backend and fails there, at once."""
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    os.mkdir(os.path.join(m.backing, "unlisted"))
    with open(os.path.join(m.backing, "unlisted", "x"), "wb") as f:
        f.write(b"x")
    ops.ok([("mkdir", "listed", 0o755), ("listdir", "listed"),
            ("mkdir", "full", 0o755), ("write_file", "full/z", b"z"),
            ("listdir", "full"), ("stat", "unlisted"), ("stat", "listed"),
            ("stat", "full"), ("listdir", ".")])
    with open(os.path.join(m.backing, "listed", "y"), "wb") as f:
        f.write(b"y")
    # The backend's notice of the new name has reached the mount.
    assert fhlib.wait_until(
        lambda: ops.one(("listdir", "listed")) == ["y"], 10)
    before = write_behind_stats(m)
    r = ops.run([("rmdir", "unlisted"), ("rmdir", "listed"),
                 ("rmdir", "full")])
    assert r == ["ENOTEMPTY"] * 3, r
    assert write_behind_stats(m).early == before.early
    assert sorted(os.listdir(m.backing)) == ["full", "listed", "unlisted"]
    r = ops.run([("listdir", "unlisted"), ("listdir", "listed"),
                 ("listdir", "full")])
    assert r == [["x"], ["y"], ["z"]], r
    # Emptied through the mount, each goes at once.
    ops.ok([("unlink", "unlisted/x"), ("unlink", "listed/y"),
            ("unlink", "full/z"), ("rmdir", "unlisted"), ("rmdir", "listed"),
            ("rmdir", "full")])
    assert ops.one(("listdir", ".")) == []
    assert fsync(ops, m.path, directory=True) is True
    assert os.listdir(m.backing) == []
    assert write_behind_stats(m).refused == 0


def test_unlink_of_a_directory_fails_and_leaves_it(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("write_file", "d/f", b"x"),
            ("stat", "d"), ("listdir", ".")])
    r = ops.run([("unlink", "d"), ("stat", "d"), ("listdir", "d")])
    assert r[0] in ("EISDIR", "EPERM"), r
    assert stat.S_ISDIR(r[1]["mode"]) and r[2] == ["f"], r
    assert fsync(ops, "d/f") is True
    assert os.path.isdir(os.path.join(m.backing, "d"))
    assert os.listdir(os.path.join(m.backing, "d")) == ["f"]
    assert write_behind_stats(m).refused == 0


# --- 5. a change the backend refuses --------------------------------------------------

def refusing_mount(py_mounts, *flags):
    """refusing_fs.py served on a socket, mounted with write_behind."""
    sock = py_mounts.path("refusing.sock")
    p = py_mounts.python([os.path.join(HERE, "refusing_fs.py")] +
                         list(flags) + ["--listen", "unix:" + sock],
                         listen=sock, name="refusing")
    return py_mounts.mount_backend(p, options=OPTIONS)


def refusal_reported(py_mounts, m, ops, before, err, line):  # noqa: F811
    """The one refusal since `before` (write_behind_stats) of a change
    answered early: the next fsync (of the file "other") returns `err`,
    the one after it 0; it is counted, and logged as `line`."""
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r == [True, err, True, True], r
    wb = write_behind_stats(m)
    assert wb.refused == before.refused + 1 and wb.queued == 0, wb
    log = fhlib.tail(m.daemon.log, py_mounts.daemon_log_start, 200000)
    assert line in log, log


def test_a_refused_change_is_reported_by_the_next_fsync(py_mounts):  # noqa: F811
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("write_file", "refuse-me", b"x", 0o644),
            ("write_file", "other", b"y", 0o644),
            ("stat", "refuse-me"), ("stat", "other")])
    cached(ops, m, "refuse-me", "other")
    before = write_behind_stats(m)
    # Answered early: 0, before the backend has seen it.
    assert ops.one(("chmod", "refuse-me", 0o600)) is True
    assert write_behind_stats(m).early == before.early + 1
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r[0] is True, r
    assert r[1] == "EACCES", r
    assert r[2] is True, r
    # The daemon forgot its early answer: the backend's mode is back.
    assert ops.one(("stat", "refuse-me"))["perm"] == 0o644
    wb = write_behind_stats(m)
    assert wb.refused == 1 and wb.queued == 0, wb
    log = fhlib.tail(m.daemon.log, py_mounts.daemon_log_start, 200000)
    assert "write-behind: chmod of /refuse-me failed at the backend" in log, \
        log
    # Other changes of that mount are not refused.
    assert ops.one(("chmod", "other", 0o640)) is True
    assert fsync(ops, "other") is True
    assert ops.one(("stat", "other"))["perm"] == 0o640
    assert write_behind_stats(m).refused == 1


def test_a_refused_change_is_reported_by_fsync_of_a_listed_directory(
        py_mounts):  # noqa: F811
    """fsyncdir waits for the queue and reports its errors too, also on a
    directory the daemon opens from its own cached listing."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("mkdir", "y", 0o755),
            ("write_file", "d/refuse-this", b"x"), ("write_file", "y/z", b"z"),
            ("stat", "d/refuse-this"), ("listdir", "."), ("listdir", "d"),
            ("listdir", "y")])
    cached(ops, m, "d/refuse-this")
    assert ops.one(("chmod", "d/refuse-this", 0o600)) is True
    assert fsync(ops, "y", directory=True) == "EACCES"
    assert fsync(ops, "y", directory=True) is True
    assert fsync(ops, "y/z") is True
    assert ops.one(("stat", "d/refuse-this"))["perm"] == 0o644
    assert write_behind_stats(m).refused == 1


def test_a_refused_rmdir_is_reported_by_the_next_fsync(
        py_mounts):  # noqa: F811
    """An rmdir answered early (the daemon made the directory and knows it
    is empty) that the backend refuses (ENOTEMPTY: as if another client had
    made a name in it) is reported by the next fsync, and the directory
    shows through the mount again."""
    m = refusing_mount(py_mounts)
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "refuse-d", 0o755), ("mkdir", "plain", 0o755),
            ("write_file", "other", b"o", 0o644), ("stat", "refuse-d"),
            ("stat", "plain"), ("stat", "."), ("listdir", ".")])
    before = write_behind_stats(m)
    # Both answered early: 0, before the backend has seen them. The one
    # the backend refuses goes last: its refusal makes the daemon forget
    # the root's attributes, and an rmdir after that would wait for the
    # backend.
    assert ops.run([("rmdir", "plain"), ("rmdir", "refuse-d")]) == \
        [True, True]
    assert write_behind_stats(m).early == before.early + 2
    refusal_reported(py_mounts, m, ops, before, "ENOTEMPTY",
                     "write-behind: rmdir of /refuse-d failed at the backend")
    # The daemon and the kernel forgot the early answer.
    r = ops.run([("stat", "refuse-d"), ("stat", "plain"), ("listdir", ".")])
    assert stat.S_ISDIR(r[0]["mode"]), r
    assert r[1] == "ENOENT", r
    assert sorted(r[2]) == ["other", "refuse-d"], r


def test_a_refused_change_is_reported_by_a_backend_without_fsync(
        py_mounts):  # noqa: F811
    """A backend that implements no fsync (the SDK answers ENOSYS, which
    the kernel takes for success, asking no more) still gets its refusal
    reported: fsync returns the error rather than 0."""
    m = refusing_mount(py_mounts, "--without-fsync")
    ops = py_mounts.ops(cwd=m.path)
    ops.ok([("write_file", "refuse-me", b"x", 0o644),
            ("write_file", "other", b"y", 0o644), ("stat", "refuse-me")])
    cached(ops, m, "refuse-me")
    assert ops.one(("chmod", "refuse-me", 0o600)) is True
    r = ops.run([("open", "other", ["O_RDONLY"], 0, "h"), ("fsync", "h"),
                 ("fsync", "h"), ("close", "h")])
    assert r[0] is True and r[3] is True, r
    assert r[1] == "EACCES", r
    assert r[2] is True, r
    assert ops.one(("stat", "refuse-me"))["perm"] == 0o644
    assert write_behind_stats(m).refused == 1


# --- 6. a backend killed with a change queued ---------------------------------------------

def test_a_backend_killed_with_a_change_queued(mounts):
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    f = os.path.join(m.path, "f")
    ops.ok([("write_file", f, b"data", 0o644), ("stat", f)])
    cached(ops, m, f)
    before = write_behind_stats(m)
    stop_backend(m)
    try:
        # Answered early: it does not wait for the stopped backend.
        assert ops.run([("chmod", f, 0o600)], timeout=20) == [True]
        wb = write_behind_stats(m)
        assert wb.early == before.early + 1 and wb.queued >= 1, wb
    finally:
        kill_backend(m)
    m.backend.start()

    synced = fsync(ops, f)
    backing = perm(os.path.join(m.backing, "f"))
    seen = ops.one(("stat", f))["perm"]
    if synced is True:
        # Sent again to the new backend, and applied.
        assert backing == 0o600 and seen == 0o600, (backing, seen)
        assert write_behind_stats(m).refused == 0
    else:
        # Lost with the connection, and reported: the mount shows what the
        # backend holds.
        assert isinstance(synced, fhlib.Err), synced
        assert seen == backing, (synced, seen, backing)
        assert write_behind_stats(m).refused == 1
        assert fsync(ops, f) is True
    assert write_behind_stats(m).queued == 0

    # The mount goes on working.
    g = os.path.join(m.path, "g")
    r = ops.run([("write_file", g, b"after the restart"), ("read_file", g),
                 ("chmod", g, 0o640), ("stat", g)])
    assert r[:3] == [True, b"after the restart", True], r
    assert r[3]["perm"] == 0o640, r
    assert fsync(ops, g) is True
    with open(os.path.join(m.backing, "g"), "rb") as fh:
        assert fh.read() == b"after the restart"
    assert perm(os.path.join(m.backing, "g")) == 0o640


def test_an_unmount_sends_the_queued_changes_first(mounts):
    # The backend is stopped while three chmods are answered early: they
    # wait in the daemon. An unmount must send them before it lets go of
    # the backend, not drop them (a program that chmods and unmounts would
    # otherwise lose its changes without a word).
    m = mounts.mount("loopback", options=OPTIONS)
    ops = mounts.ops()
    names = ["f1", "f2", "f3"]
    paths = [os.path.join(m.path, n) for n in names]
    ops.ok([("write_file", p, b"data", 0o644) for p in paths])
    cached(ops, m, *paths)
    stop_backend(m)
    resumed = False
    try:
        assert ops.run([("chmod", p, 0o600) for p in paths],
                       timeout=20) == [True] * 3
        assert write_behind_stats(m).queued == 3
        unmount = threading.Thread(
            target=lambda: m.daemon.unmount(m.path, timeout=60))
        unmount.start()
        time.sleep(1)  # the unmount is waiting for the stopped backend
        m.backend.signal(signal.SIGCONT)
        resumed = True
        unmount.join(60)
        assert not unmount.is_alive()
    finally:
        if not resumed:
            m.backend.signal(signal.SIGCONT)
    assert fhlib.wait_until(lambda: not is_mounted(m.path), 20)
    assert [perm(os.path.join(m.backing, n)) for n in names] == [0o600] * 3


# --- 7. creates answered early ----------------------------------------------------------

def files_tree(top, users, files=60):
    """`files` files directly under `top`, of varied sizes (some of several
    writes), modes, owners and times."""
    for i in range(files):
        path = os.path.join(top, "f%03d" % i)
        with open(path, "wb") as f:
            f.write(hashlib.sha256(b"%d" % i).digest() *
                    ((i * 977) % (300 if i % 10 else 20000)))
        if i % 3 == 0:
            os.chown(path, users.a.uid, users.a.gid)
        os.chmod(path, FILE_MODES[i % len(FILE_MODES)])
        os.utime(path, (BASE_TIME + 500 + i, BASE_TIME + i * 3607))


def made_and_known(ops, m, d):
    """Makes directory `d` on the mount, where the daemon then knows every
    name and (the backend keeps POSIX ACLs) that it has no default ACL: the
    first create in it asks the backend."""
    prime = os.path.join(d, "prime")
    ops.ok([("mkdir", d, 0o755), ("listdir", d), ("stat", d)])

    def create_answered_early():
        before = write_behind_stats(m).early
        ops.ok([("write_file", prime, b""), ("unlink", prime)])
        assert fsync(ops, d, directory=True) is True
        # The create, the release and the unlink; else the unlink alone.
        return write_behind_stats(m).early >= before + 3
    assert fhlib.wait_until(create_answered_early, 10)


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


# --- 9. the options write_behind needs -------------------------------------------------

@pytest.mark.parametrize("options", [
    "allow_other,write_behind,no_default_permissions",
    "allow_other,no_default_permissions,write_behind",
    "allow_other,write_behind,cache_entries=0",
])
def test_a_mount_without_what_write_behind_needs_is_refused(mounts, options):
    b = mounts.backend("loopback")
    mp = mounts.mountpoint()
    res = mounts.daemon.mount(b.addr, mp, options)
    assert res.returncode != 0, res
    assert "write_behind" in res.stderr, res
    assert not is_mounted(mp)
