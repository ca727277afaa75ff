"""The loopback backend mirrors a directory, doing every op as the caller.
So one op script run on the mount and run directly on the backing
directory must give the same results: the same errnos, the same stat fields
(type, mode, uid, gid, size, nlink, rdev), the same listings and contents.

Each case: ops run as root first (setup, e.g. root-owned files for the
permission cases), then ops run as the test user (root or fhtest_a), once in
MNT/work/m_CASE and once in BACKING/work/b_CASE."""

import pytest

from fhlib import Err


MIB = 1 << 20
SHARED = "SHARED_GID"   # replaced by the real gid of fhtest_shared
OTHER_UID = 23456

CASES = {
    "files": ([], [
        ("write_file", "a", b"hello"),
        ("stat", "a"),
        ("open", "b", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o600),
        ("write", "b", b"x"),
        ("close", "b"),
        ("stat", "b"),
        ("open", "a", ["O_WRONLY", "O_CREAT", "O_EXCL"], 0o600),
        ("open", "missing", ["O_RDONLY"]),
        ("open", "a/x", ["O_RDONLY"]),
        ("open", ".", ["O_WRONLY"]),
        ("truncate", "a", 2),
        ("read_file", "a"),
        ("append_file", "a", b"++"),
        ("stat", "a"),
        ("open", "a", ["O_RDWR"]),
        ("pwrite", "a", b"Z", 10),
        ("pread", "a", 20, 0),
        ("fstat", "a"),
        ("close", "a"),
        ("unlink", "b"),
        ("unlink", "b"),
        ("listdir", "."),
    ]),
    "dirs": ([], [
        ("mkdir", "d", 0o700),
        ("mkdir", "d", 0o700),
        ("stat", "d"),
        ("write_file", "d/f", b""),
        ("rmdir", "d"),
        ("unlink", "d"),
        ("rmdir", "d/f"),
        ("mkdir", "d/s", 0o755),
        ("mkdir", "d/f/x", 0o755),
        ("mkdir", "nope/x", 0o755),
        ("stat", "d"),
        ("listdir", "d"),
        ("rmdir", "d/s"),
        ("unlink", "d/f"),
        ("rmdir", "d"),
        ("stat", "d"),
        ("listdir", "."),
    ]),
    "rename": ([], [
        ("write_file", "a", b"A"),
        ("write_file", "b", b"B"),
        ("mkdir", "d", 0o755),
        ("mkdir", "e", 0o755),
        ("write_file", "e/x", b"x"),
        ("mkdir", "empty", 0o755),
        ("rename", "a", "c"),
        ("rename", "c", "b"),
        ("rename", "b", "d/b"),
        ("rename", "d", "e"),
        ("rename", "d/b", "e"),
        ("rename", "e", "d/b"),
        ("rename", "d", "d/sub"),
        ("rename", "d", "empty"),
        ("rename", "missing", "x"),
        ("write_file", "n1", b"1"),
        ("write_file", "n2", b"2"),
        ("renameat2", "n1", "n2", ["NOREPLACE"]),
        ("renameat2", "n1", "n3", ["NOREPLACE"]),
        ("renameat2", "n2", "n3", ["EXCHANGE"]),
        ("read_file", "n2"),
        ("renameat2", "n2", "e", ["EXCHANGE"]),
        ("lstat", "n2"),
        ("lstat", "e"),
        ("renameat2", "n2", "zz", ["EXCHANGE"]),
        ("listdir", "."),
        ("listdir", "empty"),
    ]),
    "links": ([], [
        ("write_file", "t", b"T"),
        ("symlink", "t", "l"),
        ("symlink", "dangling", "dl"),
        ("readlink", "l"),
        ("lstat", "l"),
        ("stat", "l"),
        ("stat", "dl"),
        ("readlink", "t"),
        ("symlink", "x", "l"),
        ("link", "t", "h"),
        ("stat", "t"),
        ("link", "t", "h"),
        ("mkdir", "d", 0o755),
        ("link", "d", "dh"),
        ("unlink", "t"),
        ("stat", "h"),
        ("read_file", "l"),
        ("listdir", "."),
    ]),
    "special": ([], [
        ("mkfifo", "p", 0o640),
        ("lstat", "p"),
        ("mknod", "c", "chr", 0o644, 1, 3),
        ("lstat", "c"),
        ("mknod", "r", "reg", 0o600),
        ("lstat", "r"),
        ("mknod", "p", "fifo", 0o600),
        ("listdir", "."),
    ]),
    "meta": ([], [
        ("write_file", "f", b"x"),
        ("chmod", "f", 0o4750),
        ("stat", "f"),
        ("chown", "f", OTHER_UID, -1),
        ("chown", "f", -1, SHARED),
        ("stat", "f"),
        ("chown", "f", -1, 0),
        ("symlink", "f", "l"),
        ("lchown", "l", -1, SHARED),
        ("lstat", "l"),
        ("utimensat", "f", (1000, 1), (2000, 2)),
        ("utimensat", "f", "NOW", "OMIT"),
        ("chmod", "missing", 0o600),
        ("mkdir", "d", 0o755),
        ("chmod", "d", 0o2775),
        ("stat", "d"),
        ("stat", "f"),
    ]),
    "xattr": ([], [
        ("write_file", "f", b"x"),
        ("setxattr", "f", "user.a", b"1"),
        ("setxattr", "f", "user.a", b"2", ["XATTR_CREATE"]),
        ("setxattr", "f", "user.b", b"2", ["XATTR_REPLACE"]),
        ("getxattr", "f", "user.a"),
        ("getxattr", "f", "user.b"),
        ("setxattr", "f", "user.b", b""),
        ("listxattr", "f"),
        ("removexattr", "f", "user.a"),
        ("removexattr", "f", "user.a"),
        ("listxattr", "f"),
        ("symlink", "f", "l"),
        ("getxattr", "l", "user.b"),
        ("setxattr", "f", "trusted.t", b"t"),
        ("getxattr", "f", "trusted.t"),
    ]),
    "perms": ([
        ("write_file", "secret", b"s", 0o600),
        ("mkdir", "rootdir", 0o755),
        ("write_file", "rootdir/f", b"f", 0o644),
        ("mkdir", "closed", 0o700),
        ("write_file", "closed/f", b"c", 0o644),
        ("mkdir", "grpdir", 0o770),
        ("chmod", "grpdir", 0o770),
        ("chown", "grpdir", 0, SHARED),
        ("mkdir", "tmpdir", 0o777),
        ("chmod", "tmpdir", 0o1777),
        ("write_file", "tmpdir/rootowned", b"r", 0o666),
        ("chmod", "tmpdir/rootowned", 0o666),
        ("mkdir", "sgid", 0o777),
        ("chown", "sgid", 0, SHARED),
        ("chmod", "sgid", 0o2777),
    ], [
        ("read_file", "secret"),
        ("access", "secret", "r"),
        ("access", "rootdir", "w"),
        ("write_file", "rootdir/new", b"n"),
        ("open", "rootdir/f", ["O_WRONLY"]),
        ("read_file", "rootdir/f"),
        ("unlink", "rootdir/f"),
        ("listdir", "closed"),
        ("stat", "closed/f"),
        ("write_file", "grpdir/x", b"g"),
        ("stat", "grpdir/x"),
        ("write_file", "tmpdir/mine", b"m"),
        ("append_file", "tmpdir/rootowned", b"w"),
        ("rename", "tmpdir/rootowned", "tmpdir/r2"),
        ("unlink", "tmpdir/rootowned"),
        ("chmod", "secret", 0o644),
        ("utimensat", "rootdir", "NOW", "NOW"),
        ("setxattr", "secret", "user.x", b"x"),
        ("write_file", "sgid/new", b""),
        ("stat", "sgid/new"),
        ("mkdir", "sgid/newdir", 0o755),
        ("stat", "sgid/newdir"),
        ("write_file", "mine", b"m", 0o444),
        ("open", "mine", ["O_WRONLY"]),
        ("truncate", "mine", 0),
        ("listdir", "."),
    ]),
    "unlinked_open": ([], [
        ("open", "f", ["O_RDWR", "O_CREAT"], 0o644),
        ("write", "f", b"before"),
        ("unlink", "f"),
        ("stat", "f"),
        ("pwrite", "f", b"AFTER", 6),
        ("pread", "f", 20, 0),
        ("fstat", "f"),
        ("close", "f"),
        ("listdir", "."),
    ]),
    "holes_seek": ([], [
        ("open", "h", ["O_RDWR", "O_CREAT"], 0o644),
        ("pwrite", "h", b"d" * 4096, 0),
        ("pwrite", "h", b"e" * 4096, MIB),
        ("fsync", "h"),
        ("fstat", "h"),
        ("lseek", "h", 0, "SEEK_DATA"),
        ("lseek", "h", 0, "SEEK_HOLE"),
        ("lseek", "h", 8192, "SEEK_DATA"),
        ("lseek", "h", MIB, "SEEK_HOLE"),
        ("lseek", "h", MIB + 4096, "SEEK_DATA"),
        ("pread", "h", 8, 4096),
        ("close", "h"),
    ]),
    "fallocate": ([], [
        ("open", "f", ["O_RDWR", "O_CREAT"], 0o644),
        ("posix_fallocate", "f", 0, 65536),
        ("fstat", "f"),
        ("fallocate", "f", 1, 65536, 65536),
        ("fstat", "f"),
        ("pwrite", "f", b"x" * 8192, 0),
        ("fallocate", "f", 3, 0, 4096),
        ("pread", "f", 8, 0),
        ("pread", "f", 8, 4096),
        ("fstat", "f"),
        ("lseek", "f", 0, "SEEK_DATA"),
        ("close", "f"),
    ]),
    "killpriv": ([], [
        ("write_file", "f", b"x"),
        ("chmod", "f", 0o6755),
        ("append_file", "f", b"y"),          # a write clears S_ISUID/S_ISGID
        ("stat", "f"),
        ("chmod", "f", 0o4755),
        ("truncate", "f", 1),               # so does truncate
        ("stat", "f"),
        ("chmod", "f", 0o4755),
        ("chown", "f", -1, SHARED),         # and chown
        ("stat", "f"),
        ("chmod", "f", 0o2745),             # S_ISGID without group exec
        ("append_file", "f", b"z"),
        ("stat", "f"),
    ]),
    "big_offsets": ([], [
        ("open", "f", ["O_RDWR", "O_CREAT"], 0o644),
        ("pwrite", "f", b"far", 5 << 30),
        ("fstat", "f"),
        ("pread", "f", 3, 5 << 30),
        ("pread", "f", 4, (5 << 30) - 1),
        ("lseek", "f", 0, "SEEK_DATA"),
        ("ftruncate", "f", 3 << 30),
        ("fstat", "f"),
        ("lseek", "f", 0, "SEEK_END"),
        ("close", "f"),
        ("truncate", "f", (1 << 40)),
        ("stat", "f"),
    ]),
}

STAT_KEYS = ("type", "perm", "uid", "gid", "size", "nlink", "rdev")


def normalize(v):
    if isinstance(v, Err):
        return ("ERR", v.name)
    if isinstance(v, dict) and "type" in v and "ino" in v:
        return {k: v[k] for k in STAT_KEYS}
    return v


def _subst(ops, shared_gid):
    return [tuple(shared_gid if a == SHARED else a for a in op) for op in ops]


@pytest.mark.parametrize("case", sorted(CASES))
def test_loopback_matches_backing_dir(loopback_fs, users, case):
    fs = loopback_fs
    if fs.backing_work is None:
        pytest.skip("native mode: no backing directory")
    setup, ops = (_subst(x, users.group_gid) for x in CASES[case])
    mdir = fs.work + "/m_" + case
    bdir = fs.backing_work + "/b_" + case
    root = fs.mounts.ops(users.root)
    for d in (mdir, bdir):
        root.ok([("mkdir", d, 0o755),
                 ("chown", d, fs.user.uid, fs.user.gid)])
        root.ok(setup, cwd=d)
    got_mount = [normalize(x) for x in fs.ops.run(ops, cwd=mdir)]
    got_back = [normalize(x) for x in fs.ops.run(ops, cwd=bdir)]
    diffs = [(i, ops[i], m, b) for i, (m, b) in
             enumerate(zip(got_mount, got_back)) if m != b]
    assert not diffs, (
        "mount and backing dir differ as %s (index, op, through mount, "
        "direct):\n%s" % (fs.user.name,
                          "\n".join("  %r" % (d,) for d in diffs)))
    # And the tree itself looks the same both ways (listing + stats), read
    # as root.
    def tree(d):
        names = root.one(("listdir", d))
        assert isinstance(names, list), names
        res = root.run([("lstat", d + "/" + n) for n in names])
        return [(n, normalize(s)) for n, s in zip(names, res)]
    assert tree(mdir) == tree(bdir)
