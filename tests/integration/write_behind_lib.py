"""What the write-behind tests share (test_write_behind.py,
test_write_behind_failures.py, test_write_behind_creates.py): the mount
options, the daemon's write-behind counts, and the trees they pack, make and
compare."""

import collections
import hashlib
import os
import re
import stat

import daemon_stats
import fhlib
from fhlib import run_cmd

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



# --- trees ---------------------------------------------------------------------------

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


# --- a backend that refuses ------------------------------------------------------------

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
