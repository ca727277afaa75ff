"""Write-behind (mount option write_behind): chmod, chown, utimens and
unlink of paths the daemon has cached, rmdir of directories it knows are
empty, creates of names it knows are absent (with the writes, flushes and
release of the files so created), and renames of files to names it knows
are absent or over files it has cached are answered at once and sent to
the backend afterwards, in order (daemon/pipeline/write_behind.h).

Here: a tar round trip lands in the backing directory exactly as it was
packed and the mount shows what the backing directory holds; readers on the
mount see each change at once; queued changes keep their order; the
kernel's permission checks and POSIX's rules still hold; and the mount
options write_behind needs are enforced. Refusals and killed backends are
in test_write_behind_failures.py, creates and renames answered early in
test_write_behind_creates.py."""

import os
import signal
import stat

import pytest

import daemon_stats
import fhlib
from fhlib import is_mounted, run_cmd
from restart_lib import stop_backend
from write_behind_lib import (OPTIONS, write_behind_stats, cached, fsync, perm,
                              stat_fields, DIRS, build_tree, snapshot)


pytestmark = pytest.mark.usefixtures("needs_daemon")


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
