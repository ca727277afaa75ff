"""Every filesystem operation through a fuse-hostd mount, with ordinary
syscalls and tools, on both example backends, as root and as a non-root user
(fixture `fs`: memory-root, memory-user, loopback-root, loopback-user).

All ops run in fsops_runner.py child processes (see fhlib.Ops); tools run
as the user through setpriv. Paths in op lists are relative to fs.work, a
directory on the mount owned by the user."""

import os
import stat
import time

import pytest

from fhlib import Err, is_err, run_cmd

S_IFREG, S_IFDIR, S_IFLNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK
WR_CREAT_EXCL = ["O_WRONLY", "O_CREAT", "O_EXCL"]
RDWR_CREAT = ["O_RDWR", "O_CREAT"]


def assert_results(results, expected):
    """Compares op results to expectations, showing every mismatch."""
    assert len(results) == len(expected)
    bad = []
    for i, (got, want) in enumerate(zip(results, expected)):
        if callable(want):
            ok = want(got)
        else:
            ok = got == want
        if not ok:
            bad.append((i, got, want))
    assert not bad, "mismatches (index, got, want): %r" % (bad,)


def owned_by(fs, st):
    return st["uid"] == fs.user.uid and st["gid"] == fs.user.gid


# --- files: create, read, write ------------------------------------------------

def test_create_write_read(fs):
    r = fs.ops.run([
        ("open", "f", WR_CREAT_EXCL, 0o640),
        ("write", "f", b"hello world"),
        ("close", "f"),
        ("read_file", "f"),
        ("stat", "f"),
        ("open", "g", WR_CREAT_EXCL, 0o600),   # f exists -> EEXIST below
        ("close", "g"),
        ("open", "f", WR_CREAT_EXCL, 0o600),
        ("open", "missing", ["O_RDONLY"]),
        ("open", "f/x", ["O_RDONLY"]),
        ("open", ".", ["O_WRONLY"]),
        ("listdir", "."),
    ])
    assert r[0] is True and r[1] == 11 and r[2] is True
    assert r[3] == b"hello world"
    st = r[4]
    assert st["type"] == S_IFREG and st["perm"] == 0o640
    assert st["size"] == 11 and st["nlink"] == 1
    assert owned_by(fs, st), st
    assert r[7] == "EEXIST"
    assert r[8] == "ENOENT"
    assert r[9] == "ENOTDIR"
    assert r[10] == "EISDIR"
    assert r[11] == ["f", "g"]


def test_read_write_offsets(fs):
    r = fs.ops.run([
        ("open", "f", RDWR_CREAT, 0o644),
        ("write", "f", b"abcdef"),
        ("lseek", "f", 0, "SEEK_SET"),
        ("read", "f", 3),
        ("read", "f", 10),
        ("read", "f", 10),
        ("pwrite", "f", b"XY", 2),
        ("pread", "f", 4, 1),
        ("pread", "f", 10, 100),
        ("lseek", "f", 0, "SEEK_END"),
        ("lseek", "f", -2, "SEEK_CUR"),
        ("read", "f", 10),
        ("close", "f"),
        ("read_file", "f"),
    ])
    assert_results(r, [True, 6, 0, b"abc", b"def", b"", 2, b"bXYe", b"",
                       6, 4, b"ef", True, b"abXYef"])


def test_append(fs):
    r = fs.ops.run([
        ("write_file", "a", b"123"),
        ("open", "a", ["O_WRONLY", "O_APPEND"]),
        ("write", "a", b"45"),
        ("lseek", "a", 0, "SEEK_SET"),
        ("write", "a", b"67"),          # O_APPEND: still at the end
        ("fstat", "a"),
        ("close", "a"),
        ("append_file", "a", b"89"),
        ("read_file", "a"),
        ("open", "n", ["O_WRONLY", "O_CREAT", "O_APPEND"], 0o644),
        ("write", "n", b"x"),
        ("write", "n", b"y"),
        ("close", "n"),
        ("read_file", "n"),
    ])
    assert r[5]["size"] == 7
    assert_results(r[:5] + r[6:], [True, True, 2, 0, 2, True, 2,
                                   b"123456789", True, 1, 1, True, b"xy"])


def test_holes_pread_pwrite(fs):
    big = (1 << 20) + 5
    r = fs.ops.run([
        ("open", "h", RDWR_CREAT, 0o644),
        ("pwrite", "h", b"tail", big),
        ("fstat", "h"),
        ("pread", "h", 16, 4096),
        ("pread", "h", 4, big),
        ("pread", "h", 8, big + 2),
        ("pread", "h", 4, big + 100),
        ("close", "h"),
        ("stat", "h"),
        ("write_file", "s", b"ab"),
        ("open", "s", ["O_WRONLY"]),
        ("pwrite", "s", b"Z", 5),
        ("close", "s"),
        ("read_file", "s"),
    ])
    assert r[1] == 4
    assert r[2]["size"] == big + 4
    assert r[3] == b"\0" * 16
    assert r[4] == b"tail"
    assert r[5] == b"il"
    assert r[6] == b""
    assert r[8]["size"] == big + 4
    assert r[13] == b"ab\0\0\0Z"


def test_o_trunc(fs):
    r = fs.ops.run([
        ("write_file", "t", b"x" * 5000),
        ("open", "t", ["O_WRONLY", "O_TRUNC"]),
        ("fstat", "t"),
        ("write", "t", b"new"),
        ("close", "t"),
        ("read_file", "t"),
        ("stat", "t"),
        ("open", "t", ["O_RDONLY", "O_TRUNC"]),   # allowed on Linux: truncates
        ("close", "t"),
        ("stat", "t"),
    ])
    assert r[2]["size"] == 0
    assert r[5] == b"new"
    assert r[6]["size"] == 3
    assert r[7] is True
    assert r[9]["size"] == 0


def test_truncate_ftruncate(fs):
    r = fs.ops.run([
        ("write_file", "t", b"0123456789"),
        ("truncate", "t", 4),
        ("read_file", "t"),
        ("truncate", "t", 8),
        ("read_file", "t"),
        ("open", "t", ["O_RDWR"]),
        ("ftruncate", "t", 2),
        ("fstat", "t"),
        ("pread", "t", 10, 0),
        ("ftruncate", "t", 3 << 20),
        ("fstat", "t"),
        ("close", "t"),
        ("truncate", "missing", 0),
        ("truncate", ".", 0),
        ("open", "t", ["O_RDONLY"]),
        ("ftruncate", "t", 1),          # not open for writing
        ("close", "t"),
    ])
    assert r[2] == b"0123"
    assert r[4] == b"0123\0\0\0\0"
    assert r[7]["size"] == 2 and r[8] == b"01"
    assert r[10]["size"] == 3 << 20
    assert r[12] == "ENOENT"
    assert r[13] == "EISDIR"
    assert r[15] in ("EINVAL", "EBADF")

    path = fs.p("tool")
    fs.tool(["truncate", "-s", "100", path]).check()
    assert fs.ops.one(("stat", "tool"))["size"] == 100
    fs.tool(["truncate", "-s", "-40", path]).check()
    assert fs.ops.one(("stat", "tool"))["size"] == 60
    fs.tool(["truncate", "-s", "0", path]).check()
    assert fs.ops.one(("stat", "tool"))["size"] == 0


# --- directories ---------------------------------------------------------------------

def test_mkdir_rmdir(fs):
    r = fs.ops.run([
        ("mkdir", "d", 0o750),
        ("stat", "d"),
        ("mkdir", "d", 0o755),
        ("write_file", "d/f", b"x"),
        ("rmdir", "d"),
        ("unlink", "d"),
        ("rmdir", "d/f"),
        ("mkdir", "d/sub", 0o755),
        ("stat", "d"),
        ("mkdir", "missing/x", 0o755),
        ("mkdir", "d/f/x", 0o755),
        ("listdir", "d"),
        ("unlink", "d/f"),
        ("rmdir", "d"),
        ("rmdir", "d/sub"),
        ("rmdir", "d"),
        ("stat", "d"),
        ("rmdir", "d"),
        ("rmdir", "."),
    ])
    assert r[0] is True
    st = r[1]
    assert st["type"] == S_IFDIR and st["perm"] == 0o750 and owned_by(fs, st)
    assert st["nlink"] == 2
    assert r[2] == "EEXIST"
    assert r[4] == "ENOTEMPTY"
    assert r[5] == "EISDIR"
    assert r[6] == "ENOTDIR"
    assert r[7] is True
    assert r[8]["nlink"] == 3
    assert r[9] == "ENOENT"
    assert r[10] == "ENOTDIR"
    assert r[11] == ["f", "sub"]
    assert r[13] == "ENOTEMPTY"
    assert r[14] is True and r[15] is True
    assert r[16] == "ENOENT"
    assert r[17] == "ENOENT"
    assert r[18] in ("EINVAL", "EBUSY")


def test_unlink(fs):
    r = fs.ops.run([
        ("write_file", "u", b"data"),
        ("unlink", "u"),
        ("stat", "u"),
        ("unlink", "u"),
        ("listdir", "."),
        ("write_file", "u", b"again"),   # same name, new file
        ("read_file", "u"),
        ("unlink", "nodir/u"),
    ])
    assert_results(r, [True, True, Err("ENOENT", 2), Err("ENOENT", 2), [],
                       True, b"again", Err("ENOENT", 2)])


# --- rename ------------------------------------------------------------------------------

def test_rename(fs):
    r = fs.ops.run([
        ("write_file", "a", b"A"),
        ("write_file", "b", b"B"),
        ("mkdir", "d", 0o755),
        ("rename", "a", "c"),            # 3
        ("stat", "a"),
        ("read_file", "c"),
        ("rename", "c", "b"),            # 6: replaces b
        ("read_file", "b"),
        ("listdir", "."),
        ("rename", "b", "d/b"),          # 9: into a subdirectory
        ("read_file", "d/b"),
        ("mkdir", "e", 0o755),
        ("write_file", "e/x", b"x"),
        ("rename", "d", "e"),            # 13: dir over non-empty dir
        ("rename", "d/b", "e"),          # 14: file over dir
        ("rename", "e", "d/b"),          # 15: dir over file
        ("rename", "d", "d/sub"),        # 16: into itself
        ("mkdir", "empty", 0o755),
        ("rename", "d", "empty"),        # 18: dir over empty dir
        ("listdir", "."),
        ("listdir", "empty"),
        ("rename", "missing", "zz"),     # 21
        ("rename", "empty/b", "empty/b"),  # 22: same name, no-op
        ("read_file", "empty/b"),
    ])
    assert r[3] is True and r[4] == "ENOENT" and r[5] == b"A"
    assert r[6] is True and r[7] == b"A" and r[8] == ["b", "d"]
    assert r[9] is True and r[10] == b"A"
    assert r[13] in ("ENOTEMPTY", "EEXIST")
    assert r[14] == "EISDIR"
    assert r[15] == "ENOTDIR"
    assert r[16] == "EINVAL"
    assert r[18] is True
    assert r[19] == ["e", "empty"]
    assert r[20] == ["b"]
    assert r[21] == "ENOENT"
    assert r[22] is True and r[23] == b"A"


def test_renameat2_noreplace_exchange(fs):
    r = fs.ops.run([
        ("write_file", "n1", b"one"),
        ("write_file", "n2", b"two"),
        ("renameat2", "n1", "n2", ["NOREPLACE"]),     # 2: EEXIST
        ("read_file", "n1"),
        ("read_file", "n2"),
        ("renameat2", "n1", "n3", ["NOREPLACE"]),     # 5: ok
        ("listdir", "."),
        ("renameat2", "n2", "n3", ["EXCHANGE"]),      # 7
        ("read_file", "n2"),
        ("read_file", "n3"),
        ("renameat2", "n2", "nothere", ["EXCHANGE"]),  # 10: ENOENT
        ("mkdir", "xd", 0o700),
        ("write_file", "xd/inside", b"in"),
        ("renameat2", "n2", "xd", ["EXCHANGE"]),      # 13: file <-> dir
        ("lstat", "n2"),
        ("lstat", "xd"),
        ("read_file", "n2/inside"),
        ("read_file", "xd"),
        ("renameat2", "n2", "n3", ["EXCHANGE", "NOREPLACE"]),  # 18: EINVAL
    ])
    assert r[2] == "EEXIST", r[2]
    assert r[3] == b"one" and r[4] == b"two"
    assert r[5] is True
    assert r[6] == ["n2", "n3"]
    assert r[7] is True, r[7]
    assert r[8] == b"one" and r[9] == b"two"
    assert r[10] == "ENOENT"
    assert r[13] is True, r[13]
    assert r[14]["type"] == S_IFDIR and r[14]["perm"] == 0o700
    assert r[15]["type"] == S_IFREG
    assert r[16] == b"in" and r[17] == b"one"
    assert r[18] == "EINVAL"


def test_mv_across_directories(fs):
    fs.ops.ok([
        ("mkdir", "d1", 0o755), ("mkdir", "d2", 0o755),
        ("mkdir", "d1/sub", 0o755),
        ("write_file", "d1/f", b"file"),
        ("write_file", "d1/sub/g", b"deep"),
    ])
    fs.tool(["mv", fs.p("d1/f"), fs.p("d2/")]).check()
    fs.tool(["mv", fs.p("d1/sub"), fs.p("d2/sub2")]).check()
    r = fs.ops.run([
        ("listdir", "d1"), ("listdir", "d2"), ("read_file", "d2/f"),
        ("read_file", "d2/sub2/g"), ("stat", "d1/sub"), ("stat", "d1"),
        ("stat", "d2"),
    ])
    assert r[0] == [] and r[1] == ["f", "sub2"]
    assert r[2] == b"file" and r[3] == b"deep"
    assert r[4] == "ENOENT"
    assert r[5]["nlink"] == 2 and r[6]["nlink"] == 3
    # A tree moved back again (parent changes twice; the daemon's inode
    # table must follow).
    fs.tool(["mv", fs.p("d2/sub2"), fs.p("d1/sub")]).check()
    assert fs.ops.one(("read_file", "d1/sub/g")) == b"deep"


# --- links and special files ---------------------------------------------------------

def test_symlink_readlink(fs):
    long_target = "t" * 1000
    r = fs.ops.run([
        ("symlink", "target_file", "ln"),
        ("readlink", "ln"),
        ("lstat", "ln"),
        ("stat", "ln"),                  # 3: dangling
        ("write_file", "target_file", b"T"),
        ("stat", "ln"),
        ("read_file", "ln"),
        ("symlink", "x", "ln"),          # 7: EEXIST
        ("readlink", "target_file"),     # 8: EINVAL
        ("symlink", long_target, "long"),
        ("readlink", "long"),
        ("mkdir", "sub", 0o755),
        ("symlink", "../target_file", "sub/up"),
        ("read_file", "sub/up"),
        ("symlink", "sub", "dirlink"),
        ("listdir", "dirlink"),
        ("unlink", "ln"),                # removes the link, not the target
        ("read_file", "target_file"),
        ("readlink", "missing"),
    ])
    assert r[0] is True and r[1] == "target_file"
    assert r[2]["type"] == S_IFLNK and r[2]["size"] == len("target_file")
    assert owned_by(fs, r[2])
    assert r[3] == "ENOENT"
    assert r[5]["type"] == S_IFREG and r[5]["size"] == 1
    assert r[6] == b"T"
    assert r[7] == "EEXIST"
    assert r[8] == "EINVAL"
    assert r[9] is True and r[10] == long_target
    assert r[13] == b"T"
    assert r[15] == ["up"]
    assert r[16] is True and r[17] == b"T"
    assert r[18] == "ENOENT"


def test_hardlinks_with_ln(fs):
    fs.ops.ok([("write_file", "a", b"shared"), ("mkdir", "d", 0o755)])
    fs.tool(["ln", fs.p("a"), fs.p("b")]).check()
    fs.tool(["ln", fs.p("a"), fs.p("d/c")]).check()
    r = fs.ops.run([
        ("stat", "a"), ("stat", "b"), ("stat", "d/c"),
        ("append_file", "b", b"+more"),
        ("read_file", "a"),
        ("read_file", "d/c"),
        ("unlink", "a"),
        ("stat", "b"),
        ("link", "b", "d/c"),            # 8: EEXIST
        ("link", "d", "dl"),             # 9: EPERM (directory)
        ("link", "missing", "x"),        # 10: ENOENT
        ("read_file", "d/c"),
        ("stat", "d/c"),                 # 12: one inode: nlink 2 everywhere
    ])
    a, b, c = r[0], r[1], r[2]
    assert a["ino"] == b["ino"] == c["ino"]
    assert a["nlink"] == b["nlink"] == c["nlink"] == 3
    assert r[4] == b"shared+more" and r[5] == b"shared+more"
    assert r[7]["nlink"] == 2 and r[7]["ino"] == a["ino"]
    assert r[8] == "EEXIST"
    assert r[9] == "EPERM"
    assert r[10] == "ENOENT"
    assert r[11] == b"shared+more"
    assert r[12]["nlink"] == 2 and r[12]["size"] == len(b"shared+more")
    # ln's own error for an existing name.
    res = fs.tool(["ln", fs.p("b"), fs.p("d/c")])
    assert res.returncode != 0 and "exists" in res.stderr


def test_mkfifo(fs):
    r = fs.ops.run([
        ("mkfifo", "p", 0o640),
        ("lstat", "p"),
        ("mknod", "q", "fifo", 0o600),
        ("lstat", "q"),
        ("open", "p", ["O_RDONLY", "O_NONBLOCK"]),
        ("close", "p"),
        ("mkfifo", "p", 0o640),
        ("unlink", "p"),
        ("listdir", "."),
    ])
    assert r[0] is True
    assert r[1]["type"] == stat.S_IFIFO and r[1]["perm"] == 0o640
    assert owned_by(fs, r[1])
    assert r[3]["type"] == stat.S_IFIFO
    assert r[4] is True
    assert r[6] == "EEXIST"
    assert r[8] == ["q"]
    res = fs.tool(["mkfifo", fs.p("tool_fifo")])
    assert res.returncode == 0, res
    assert fs.ops.one(("lstat", "tool_fifo"))["type"] == stat.S_IFIFO


def test_mknod_char_device(fs):
    r = fs.ops.run([
        ("mknod", "null", "chr", 0o644, 1, 3),
        ("lstat", "null"),
        ("mknod", "reg", "reg", 0o600),
        ("lstat", "reg"),
    ])
    if fs.is_root:
        assert r[0] is True, r[0]
        assert r[1]["type"] == stat.S_IFCHR
        assert r[1]["rdev"] == os.makedev(1, 3)
    else:
        assert r[0] == "EPERM"
        assert r[1] == "ENOENT"
    assert r[2] is True and r[3]["type"] == S_IFREG and r[3]["perm"] == 0o600


# --- metadata ------------------------------------------------------------------------------

def test_chmod(fs):
    fs.root_ops.ok([("write_file", "rootfile", b"r")])
    r = fs.ops.run([
        ("write_file", "f", b"x"),
        ("chmod", "f", 0o600),
        ("stat", "f"),
        ("chmod", "f", 0o4755),
        ("stat", "f"),
        ("mkdir", "d", 0o755),
        ("chmod", "d", 0o1700),
        ("stat", "d"),
        ("chmod", "rootfile", 0o666),
        ("stat", "rootfile"),
        ("chmod", "missing", 0o600),
    ])
    assert r[2]["perm"] == 0o600
    assert r[4]["perm"] == 0o4755
    assert r[7]["perm"] == 0o1700 and r[7]["type"] == S_IFDIR
    if fs.is_root:
        assert r[8] is True and r[9]["perm"] == 0o666
    else:
        assert r[8] == "EPERM" and r[9]["perm"] == 0o644
    assert r[10] == "ENOENT"
    fs.tool(["chmod", "g+w,o-r", fs.p("f")]).check()
    assert fs.ops.one(("stat", "f"))["perm"] == 0o4771


def test_chown(fs, users):
    shared = users.group_gid
    r = fs.ops.run([
        ("write_file", "f", b"x"),
        ("symlink", "f", "l"),
        ("chown", "f", 12345, 54321),     # 2
        ("stat", "f"),
        ("chown", "f", -1, shared),       # 4: to a group the user is in
        ("stat", "f"),
        ("chown", "f", fs.user.uid, -1),  # 6: no change
        ("chown", "f", -1, 0),            # 7
        ("lchown", "l", 23456, 23456),    # 8
        ("lstat", "l"),
        ("chown", "missing", 1, 1),
    ])
    if fs.is_root:
        assert r[2] is True
        assert r[3]["uid"] == 12345 and r[3]["gid"] == 54321
        assert r[4] is True and r[5]["gid"] == shared
        assert r[7] is True
        assert r[8] is True
        assert r[9]["uid"] == 23456 and r[9]["gid"] == 23456
    else:
        assert r[2] == "EPERM"
        assert r[3]["uid"] == fs.user.uid
        assert r[4] is True and r[5]["gid"] == shared
        assert r[6] is True
        assert r[7] == "EPERM"
        assert r[8] == "EPERM"
        assert r[9]["uid"] == fs.user.uid
    assert r[10] == "ENOENT"
    # chgrp/chown tools.
    fs.ops.ok([("write_file", "g", b"")])
    fs.tool(["chgrp", "fhtest_shared", fs.p("g")]).check()
    assert fs.ops.one(("stat", "g"))["gid"] == shared
    res = fs.tool(["chown", "root", fs.p("g")])
    assert (res.returncode == 0) == fs.is_root, res


def test_utimensat(fs):
    a1, m1 = (1000000000, 123456789), (1500000000, 987654321)
    fs.ops.ok([("write_file", "f", b"x")])
    r = fs.ops.run([
        ("utimensat", "f", a1, m1),
        ("stat", "f"),
        ("utimensat", "f", "OMIT", (1600000000, 5)),
        ("stat", "f"),
    ])
    assert r[0] is True
    assert r[1]["atime_ns"] == 1000000000123456789
    assert r[1]["mtime_ns"] == 1500000000987654321
    assert r[2] is True
    assert r[3]["atime_ns"] == 1000000000123456789
    assert r[3]["mtime_ns"] == 1600000000000000005

    t0 = time.time_ns()
    r = fs.ops.run([
        ("utimensat", "f", "NOW", "OMIT"),
        ("stat", "f"),
        ("utimensat", "f", "OMIT", "NOW"),
        ("stat", "f"),
        ("utimensat", "f", "OMIT", "OMIT"),
        ("stat", "f"),
    ])
    t1 = time.time_ns()
    slack = 2 * 10**9
    assert r[0] is True
    assert t0 - slack <= r[1]["atime_ns"] <= t1 + slack
    assert r[1]["mtime_ns"] == 1600000000000000005
    assert r[2] is True
    assert t0 - slack <= r[3]["mtime_ns"] <= t1 + slack
    assert r[3]["atime_ns"] == r[1]["atime_ns"]
    assert r[5]["atime_ns"] == r[3]["atime_ns"]
    assert r[5]["mtime_ns"] == r[3]["mtime_ns"]

    # Somebody else's file: NOW needs write access, explicit times need
    # ownership.
    fs.root_ops.ok([("write_file", "rootfile", b"r", 0o644)])
    r = fs.ops.run([
        ("utimensat", "rootfile", "NOW", "NOW"),
        ("utimensat", "rootfile", a1, m1),
    ])
    if fs.is_root:
        assert r == [True, True]
    else:
        assert r[0] == "EACCES" and r[1] == "EPERM"
    fs.tool(["touch", "-d", "2001-02-03 04:05:06", fs.p("f")]).check()
    assert fs.ops.one(("stat", "f"))["mtime_ns"] == 981173106 * 10**9


def test_xattr_syscalls(fs):
    fs.root_ops.ok([("write_file", "rootfile", b"r", 0o644)])
    big = b"v" * 4000
    r = fs.ops.run([
        ("write_file", "f", b"x"),
        ("setxattr", "f", "user.a", b"1"),
        ("getxattr", "f", "user.a"),
        ("setxattr", "f", "user.a", b"2", ["XATTR_CREATE"]),   # 3
        ("setxattr", "f", "user.nope", b"x", ["XATTR_REPLACE"]),  # 4
        ("getxattr", "f", "user.nope"),                         # 5
        ("setxattr", "f", "user.b", b""),
        ("getxattr", "f", "user.b"),
        ("setxattr", "f", "user.a", b"\x00\xff bin", ["XATTR_REPLACE"]),
        ("getxattr", "f", "user.a"),
        ("setxattr", "f", "user.big", big),
        ("getxattr", "f", "user.big"),
        ("listxattr", "f"),                                     # 12
        ("removexattr", "f", "user.a"),
        ("getxattr", "f", "user.a"),
        ("removexattr", "f", "user.a"),                         # 15
        ("listxattr", "f"),
        ("mkdir", "d", 0o755),
        ("setxattr", "d", "user.dir", b"dir"),
        ("getxattr", "d", "user.dir"),
        ("setxattr", "rootfile", "user.x", b"x"),               # 20
        ("getxattr", "missing", "user.x"),
        ("symlink", "f", "l"),
        ("setxattr", "l", "user.x", b"x"),                      # 23: follows
        ("getxattr", "f", "user.x"),
    ])
    assert r[1] is True and r[2] == b"1"
    assert r[3] == "EEXIST"
    assert r[4] == "ENODATA"
    assert r[5] == "ENODATA"
    assert r[6] is True and r[7] == b""
    assert r[9] == b"\x00\xff bin"
    assert r[10] is True and r[11] == big
    assert r[12] == ["user.a", "user.b", "user.big"]
    assert r[13] is True and r[14] == "ENODATA" and r[15] == "ENODATA"
    assert r[16] == ["user.b", "user.big"]
    assert r[18] is True and r[19] == b"dir"
    if fs.is_root:
        assert r[20] is True
    else:
        assert r[20] in ("EACCES", "EPERM")
    assert r[21] == "ENOENT"
    assert r[23] is True and r[24] == b"x"


def test_xattr_tools(fs):
    path = fs.p("f")
    fs.ops.ok([("write_file", "f", b"x")])
    fs.tool(["setfattr", "-n", "user.tool", "-v", "hello", path]).check()
    res = fs.tool(["getfattr", "-n", "user.tool", "--only-values", path])
    assert res.returncode == 0 and res.stdout == "hello", res
    res = fs.tool(["getfattr", "-d", path]).check()
    assert 'user.tool="hello"' in res.stdout
    fs.tool(["setfattr", "-x", "user.tool", path]).check()
    res = fs.tool(["getfattr", "-n", "user.tool", path])
    assert res.returncode != 0 and "No such attribute" in res.stderr, res


def test_statvfs(fs):
    r = fs.ops.run([("statvfs", "."), ("statvfs", "missing")])
    s = r[0]
    assert s["bsize"] > 0 and s["frsize"] > 0
    assert s["blocks"] > 0 and s["bfree"] <= s["blocks"]
    assert s["bavail"] <= s["blocks"]
    assert s["namemax"] >= 255
    assert s["flag"] & os.ST_RDONLY == 0
    assert r[1] == "ENOENT"
    res = fs.tool(["df", "-P", fs.mnt]).check()
    if fs.mount.daemon is not None:   # (not in native mode)
        assert res.stdout.splitlines()[-1].split()[-1] == fs.mnt, res


def test_fsync_fdatasync_close(fs):
    r = fs.ops.run([
        ("open", "f", RDWR_CREAT, 0o644),
        ("write", "f", b"durable"),
        ("fsync", "f"),
        ("pwrite", "f", b"D", 0),
        ("fdatasync", "f"),
        ("close", "f"),
        ("read_file", "f"),
        ("open", ".", ["O_RDONLY", "O_DIRECTORY"]),
        ("fsync", "."),
        ("close", "."),
        ("open", "f", ["O_RDONLY"]),
        ("fsync", "f"),
        ("close", "f"),
    ])
    assert_results(r, [True, 7, True, 1, True, True, b"Durable", True, True,
                       True, True, True, True])


# --- locks -----------------------------------------------------------------------------

def test_flock_tool(fs, users):
    path = fs.p("lockfile")
    fs.ops.ok([("write_file", "lockfile", b"", 0o666)])
    import subprocess
    holder = subprocess.Popen(
        fs.user.prefix() + ["flock", path, "-c", "echo locked; exec sleep 60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd="/")
    try:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(holder.stdout, selectors.EVENT_READ)
        assert sel.select(20), "flock holder did not take the lock"
        assert holder.stdout.readline().strip() == "locked"
        res = fs.tool(["flock", "-n", path, "true"], timeout=20)
        assert res.returncode == 1, res
        res = fs.tool(["flock", "-s", "-n", path, "true"], timeout=20)
        assert res.returncode == 1, res
        # Another user (sharing the file through its mode) is also refused.
        res = fs.tool(["flock", "-n", path, "true"], timeout=20, user=users.b)
        assert res.returncode == 1, res
        # A waiting (blocking) flock with a timeout gives up too.
        # (The signal that ends the wait must interrupt the FUSE request:
        # the daemon has to honour FUSE_INTERRUPT for a forwarded flock.)
        res = fs.tool(["flock", "-w", "1", path, "true"], timeout=10)
        assert res.returncode == 1, res
    finally:
        os.killpg(holder.pid, 9)
        holder.wait(timeout=10)
    res = fs.tool(["flock", "-n", path, "true"], timeout=20)
    assert res.returncode == 0, res


def test_flock_syscall_two_processes(fs, users):
    fs.ops.ok([("write_file", "lk", b"", 0o666)])
    h = fs.mounts.hold(fs.ops, [
        ("open", "lk", ["O_RDONLY"]),
        ("flock", "lk", ["LOCK_SH"]),
        ("sync", "shared"),
        ("flock", "lk", ["LOCK_EX"]),      # upgrade
        ("sync", "excl"),
        ("close", "lk"),
    ], cwd=fs.work)
    h.wait_sync("shared")
    r = fs.ops.run([
        ("open", "lk", ["O_RDONLY"]),
        ("flock", "lk", ["LOCK_SH", "LOCK_NB"]),   # shared with shared: ok
        ("flock", "lk", ["LOCK_UN"]),
        ("flock", "lk", ["LOCK_EX", "LOCK_NB"]),   # 3: refused
        ("close", "lk"),
    ])
    assert r[1] is True and r[2] is True
    assert r[3] == "EAGAIN"
    h.release()
    h.wait_sync("excl")
    r = fs.ops.as_user(users.b).run([
        ("open", "lk", ["O_RDONLY"]),
        ("flock", "lk", ["LOCK_SH", "LOCK_NB"]),
    ])
    assert r[1] == "EAGAIN"
    h.release()
    res = h.finish()
    assert all(x is True for x in res), res
    r = fs.ops.run([("open", "lk", ["O_RDONLY"]),
                    ("flock", "lk", ["LOCK_EX", "LOCK_NB"])])
    assert r[1] is True


def test_fcntl_locks_two_processes(fs):
    fs.ops.ok([("write_file", "pl", b"0" * 100, 0o666)])
    h = fs.mounts.hold(fs.ops, [
        ("open", "pl", ["O_RDWR"]),
        ("lockf", "pl", ["LOCK_EX"], 10, 0),
        ("sync", "held"),
        ("close", "pl"),                    # closing drops POSIX locks
        ("sync", "closed"),
    ], cwd=fs.work)
    h.wait_sync("held")
    r = fs.ops.run([
        ("open", "pl", ["O_RDWR"]),
        ("lockf", "pl", ["LOCK_EX", "LOCK_NB"], 10, 0),   # 1: conflicts
        ("lockf", "pl", ["LOCK_SH", "LOCK_NB"], 1, 5),    # 2: conflicts
        ("lockf", "pl", ["LOCK_EX", "LOCK_NB"], 10, 20),  # 3: disjoint: ok
        ("close", "pl"),
    ])
    assert r[1] in ("EAGAIN", "EACCES"), r[1]
    assert r[2] in ("EAGAIN", "EACCES"), r[2]
    assert r[3] is True
    h.release()
    h.wait_sync("closed")
    r = fs.ops.run([
        ("open", "pl", ["O_RDWR"]),
        ("lockf", "pl", ["LOCK_EX", "LOCK_NB"], 10, 0),
        ("close", "pl"),
    ])
    assert r[1] is True
    h.release()
    h.finish()


# --- allocation, copying, seeking --------------------------------------------------------

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


def test_fallocate(fs):
    r = fs.ops.run([
        ("open", "f", RDWR_CREAT, 0o644),
        ("posix_fallocate", "f", 0, 65536),
        ("fstat", "f"),
        ("pread", "f", 10, 100),
        ("fallocate", "f", FALLOC_FL_KEEP_SIZE, 65536, 65536),
        ("fstat", "f"),
        ("fallocate", "f", 0, 0, 100000),
        ("fstat", "f"),
        ("close", "f"),
    ])
    assert r[1] is True, r[1]
    assert r[2]["size"] == 65536
    assert r[3] == b"\0" * 10
    assert r[4] is True, r[4]
    assert r[5]["size"] == 65536
    assert r[6] is True, r[6]
    assert r[7]["size"] == 100000
    # Punching a hole keeps the size and reads back zeros.
    r = fs.ops.run([
        ("open", "f", ["O_RDWR"]),
        ("pwrite", "f", b"x" * 16384, 0),
        ("fallocate", "f", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
         4096),
        ("pread", "f", 4096, 0),
        ("pread", "f", 4, 4096),
        ("fstat", "f"),
        ("close", "f"),
    ])
    if fs.kind == "memory" and r[2] == "EOPNOTSUPP":
        pass   # memory_fs documents: no hole punching (loopback must do it)
    else:
        assert r[2] is True, "punch hole: %r" % (r[2],)
        assert r[3] == b"\0" * 4096
        assert r[4] == b"xxxx"
    assert r[5]["size"] == 100000
    res = fs.tool(["fallocate", "-l", "1M", fs.p("tool")])
    assert res.returncode == 0, res
    assert fs.ops.one(("stat", "tool"))["size"] == 1 << 20


def test_copy_file_range(fs):
    n = 300000
    r = fs.ops.run([
        ("write_pattern", "src", n, 3),
        ("open", "src", ["O_RDONLY"]),
        ("open", "dst", ["O_WRONLY", "O_CREAT", "O_TRUNC"], 0o644),
        ("copy_file_range", "src", "dst", n, 0, 0),
        ("close", "dst"),
        ("sha256", "dst"),
        ("open", "part", ["O_WRONLY", "O_CREAT"], 0o644),
        ("copy_file_range", "src", "part", 1000, 500, 10),
        ("close", "part"),
        ("read_file", "part"),
        ("read_file", "src"),
        ("open", "src", ["O_RDWR"], 0, "srcrw"),
        ("copy_file_range", "srcrw", "srcrw", 10, 0, 5),  # 12: overlap: EINVAL
    ])
    assert r[3] == n, r[3]
    assert r[5] == [r[0], n]
    assert r[7] == 1000
    src = r[10]
    assert r[9] == b"\0" * 10 + src[500:1500]
    assert r[12] == "EINVAL"


def test_seek_data_hole(fs):
    mib = 1 << 20
    r = fs.ops.run([
        ("open", "f", RDWR_CREAT, 0o644),
        ("pwrite", "f", b"d" * 4096, 0),
        ("pwrite", "f", b"e" * 4096, mib),
        ("fsync", "f"),
        ("lseek", "f", 0, "SEEK_DATA"),
        ("lseek", "f", 0, "SEEK_HOLE"),
        ("lseek", "f", 8192, "SEEK_DATA"),
        ("lseek", "f", mib, "SEEK_HOLE"),
        ("lseek", "f", mib + 4096, "SEEK_DATA"),   # 8: at EOF -> ENXIO
        ("lseek", "f", mib + 9999, "SEEK_HOLE"),   # 9: past EOF -> ENXIO
        ("close", "f"),
    ])
    size = mib + 4096
    assert r[4] == 0
    if r[5] == size:
        # Allowed by POSIX: the whole file reported as data (memory_fs keeps
        # no hole map).
        assert r[6] == 8192, r[6]
    else:
        assert 4096 <= r[5] < mib, "first hole at %r" % (r[5],)
        assert 8192 <= r[6] <= mib, "data after the hole at %r" % (r[6],)
    if fs.kind == "loopback":
        # ext4 below: the hole is real and block-sized.
        assert (r[5], r[6]) == (4096, mib), r[5:7]
    assert r[7] == size
    assert r[8] == "ENXIO"
    assert r[9] == "ENXIO"


# --- permissions ---------------------------------------------------------------------------

def test_access_checks(fs, users):
    fs.root_ops.ok([
        ("write_file", "secret", b"s", 0o600),
        ("mkdir", "rootdir", 0o755),
        ("write_file", "rootdir/f", b"f", 0o644),
        ("mkdir", "grpdir", 0o770),
        ("chmod", "grpdir", 0o770),            # (umask 022 at mkdir)
        ("chown", "grpdir", 0, users.group_gid),
        ("mkdir", "closed", 0o700),
        ("write_file", "closed/f", b"c", 0o644),
    ])
    fs.ops.ok([("write_file", "mine_ro", b"ro", 0o444)])
    r = fs.ops.run([
        ("read_file", "secret"),                       # 0
        ("access", "secret", "r"),                     # 1
        ("write_file", "rootdir/new", b"n"),           # 2
        ("open", "rootdir/f", ["O_WRONLY"]),           # 3
        ("unlink", "rootdir/f"),                       # 4
        ("listdir", "rootdir"),                        # 5
        ("read_file", "rootdir/f"),                    # 6
        ("write_file", "grpdir/x", b"g"),              # 7: via the group
        ("listdir", "closed"),                         # 8
        ("stat", "closed/f"),                          # 9
        ("open", "mine_ro", ["O_WRONLY"]),             # 10
        ("truncate", "mine_ro", 0),                    # 11
        ("read_file", "mine_ro"),                      # 12
        ("access", "rootdir", "w"),                    # 13
        ("mkdir", "rootdir/sub", 0o755),               # 14
        ("rename", "rootdir/f", "stolen"),             # 15
    ])
    if fs.is_root:
        assert r[0] == b"s" and r[1] is True
        assert r[2] is True and r[3] is True and r[4] is True
        assert r[7] is True and r[8] == ["f"] and r[9]["size"] == 1
        assert r[10] is True and r[11] is True
        assert r[13] is True and r[14] is True
    else:
        assert r[0] == "EACCES" and r[1] is False
        assert r[2] == "EACCES" and r[3] == "EACCES" and r[4] == "EACCES"
        assert r[5] == ["f"] and r[6] == b"f"
        assert r[7] is True, "supplementary group not honoured: %r" % (r[7],)
        assert r[8] == "EACCES" and r[9] == "EACCES"
        assert r[10] == "EACCES" and r[11] == "EACCES"
        assert r[12] == b"ro"
        assert r[13] is False and r[14] == "EACCES"
        assert r[15] == "EACCES"
    st = fs.root_ops.one(("stat", "grpdir/x"))
    assert st["uid"] == fs.user.uid


def test_sticky_directory(fs, users):
    fs.root_ops.ok([("mkdir", "tmpdir", 0o777),
                    ("chmod", "tmpdir", 0o1777),
                    ("write_file", "tmpdir/rootowned", b"r", 0o666),
                    ("chmod", "tmpdir/rootowned", 0o666)])
    r = fs.ops.run([
        ("write_file", "tmpdir/mine", b"m"),
        ("unlink", "tmpdir/rootowned"),
        ("rename", "tmpdir/rootowned", "tmpdir/x"),
        ("append_file", "tmpdir/rootowned", b"w"),   # 0666 lets anyone write
    ])
    assert r[0] is True
    if fs.is_root:
        assert r[1] is True and r[2] == "ENOENT"
    else:
        assert r[1] == "EPERM" and r[2] == "EPERM" and r[3] == 1
    r = fs.ops.as_user(users.b).run([("unlink", "tmpdir/mine")])
    assert r[0] == "EPERM"


def test_set_id_bits_cleared_when_another_user_changes_the_file(fs, users):
    """A write, truncate, ftruncate, fallocate or O_TRUNC open by a user
    without CAP_FSETID clears S_ISUID, and S_ISGID of a group-executable
    file, as on the host: here by users.b, who may write fs.user's 0777
    files but owns none of them (before a write the kernel asks the backend,
    in b's name, to drop the bits). Root's changes keep them."""
    changes = {
        "append": lambda f: [("append_file", f, b"b")],
        "truncate": lambda f: [("truncate", f, 1)],
        "ftruncate": lambda f: [("open", f, ["O_WRONLY"]),
                                ("ftruncate", f, 2), ("close", f)],
        "fallocate": lambda f: [("open", f, ["O_WRONLY"]),
                                ("posix_fallocate", f, 0, 8192),
                                ("close", f)],
        "o_trunc": lambda f: [("open", f, ["O_WRONLY", "O_TRUNC"]),
                              ("close", f)],
    }
    files = {}
    for change in changes:
        for mode in (0o4777, 0o2777, 0o6777):
            for who in ("b", "root"):
                files["%s_%o_%s" % (change, mode, who)] = (change, mode, who)
    setup = []
    for name, (_, mode, _) in files.items():
        setup += [("write_file", name, b"data"), ("chmod", name, mode)]
    fs.ops.ok(setup)
    by = {"b": fs.ops.as_user(users.b), "root": fs.root_ops}
    failed = []
    for name, (change, mode, who) in files.items():
        r = by[who].run(changes[change](name))
        if any(is_err(x) for x in r):
            failed.append((name, r))
    assert not failed, "changes that failed: %r" % failed
    got = {name: fs.root_ops.one(("stat", name))["perm"] for name in files}
    want = {name: mode if who == "root" else 0o777
            for name, (_, mode, who) in files.items()}
    wrong = {name: (oct(got[name]), oct(want[name])) for name in files
             if got[name] != want[name]}
    assert not wrong, "mode after the change (got, want): %r" % wrong


# --- open files, large directories, odd names ---------------------------------------

def test_unlinked_open_file(fs):
    r = fs.ops.run([
        ("open", "f", RDWR_CREAT, 0o644),
        ("write", "f", b"before"),
        ("open", "g", ["O_RDONLY", "O_CREAT"], 0o644),
        ("write_file", "other", b""),
        ("stat", "f"),
        ("unlink", "f"),                 # 5
        ("stat", "f"),
        ("listdir", "."),
        ("pwrite", "f", b"AFTER", 6),
        ("pread", "f", 20, 0),
        ("fstat", "f"),                  # 10
        ("ftruncate", "f", 3),
        ("pread", "f", 20, 0),
        ("fsync", "f"),
        ("close", "f"),                  # 14
        ("close", "g"),
        ("listdir", "."),
    ])
    assert r[5] is True and r[6] == "ENOENT"
    assert "f" not in r[7]
    assert r[8] == 5
    assert r[9] == b"beforeAFTER"
    assert r[10]["nlink"] == 0 and r[10]["size"] == 11
    assert r[10]["ino"] == r[4]["ino"]
    assert r[11] is True and r[12] == b"bef"
    assert r[14] is True
    assert r[16] == ["g", "other"]
    # Two descriptors; the file is renamed over while open.
    r = fs.ops.run([
        ("write_file", "x", b"old"),
        ("open", "x", ["O_RDONLY"]),
        ("write_file", "y", b"new"),
        ("rename", "y", "x"),
        ("read", "x", 10),               # 4: still the old file
        ("read_file", "x"),
        ("close", "x"),
    ])
    assert r[4] == b"old" and r[5] == b"new"


def test_large_directory(fs):
    n = 2000
    r = fs.ops.run([
        ("mkdir", "big", 0o755),
        ("create_many", "big", n, "entry_"),
        ("listdir", "big"),
        ("stat", "big/entry_01999"),
    ], timeout=240)
    assert r[1] == n
    assert r[2] == ["entry_%05d" % i for i in range(n)]
    assert r[3]["type"] == S_IFREG
    res = fs.tool(["ls", "-1", "-f", fs.p("big")], timeout=120).check()
    names = [l for l in res.stdout.splitlines() if l not in (".", "..")]
    assert len(names) == n and len(set(names)) == n
    res = fs.tool(["ls", "-l", fs.p("big")], timeout=120).check()
    assert res.stdout.startswith("total ")
    assert len(res.stdout.splitlines()) == n + 1
    fs.tool(["rm", "-rf", fs.p("big")], timeout=240).check()
    assert fs.ops.one(("stat", "big")) == "ENOENT"


def test_ls_l(fs):
    fs.ops.ok([
        ("write_file", "f1", b"12345"),
        ("mkdir", "d1", 0o750),
        ("symlink", "f1", "l1"),
        ("chmod", "f1", 0o640),
    ])
    res = fs.tool(["ls", "-l", "--time-style=+%Y", fs.work]).check()
    lines = {l.split()[-1] if "->" not in l else l.split()[-3]: l
             for l in res.stdout.splitlines()[1:]}
    assert set(lines) == {"f1", "d1", "l1"}, res.stdout
    f1 = lines["f1"].split()
    assert f1[0] == "-rw-r-----" and f1[4] == "5"
    assert f1[2] == fs.user.name
    assert lines["d1"].split()[0] == "drwxr-x---"
    assert lines["l1"].startswith("l") and lines["l1"].endswith("l1 -> f1")
    res = fs.tool(["ls", "-la", fs.mnt]).check()
    assert " work" in res.stdout


ODD_NAMES = [
    "with space",
    os.fsdecode(b"caf\xe9-latin1"),
    os.fsdecode(b"\xff\xfe\x80raw"),
    "tab\tand\nnewline",
    "-leading-dash",
    "\u00fcn\u00efc\u00f6d\u00e9 \u6f22\u5b57",
    " leading and trailing ",
    "x" * 255,
]


def test_odd_names(fs):
    ops = []
    for i, n in enumerate(ODD_NAMES):
        ops.append(("write_file", n, b"%d" % i))
    ops.append(("listdir", "."))
    for n in ODD_NAMES:
        ops.append(("stat", n))
    for n in ODD_NAMES[:-1]:
        ops.append(("rename", n, n + " 2"))
    ops.append(("listdir", "."))
    for i, n in enumerate(ODD_NAMES[:-1]):
        ops.append(("read_file", n + " 2"))
    ops += [("write_file", "y" * 256, b""), ("mkdir", "z" * 256, 0o755),
            ("stat", "y" * 256)]
    ops.append(("mkdir", os.fsdecode(b"dir \xe9"), 0o755))
    ops.append(("write_file", os.fsdecode(b"dir \xe9/in \xfe"), b"nested"))
    ops.append(("read_file", os.fsdecode(b"dir \xe9/in \xfe")))
    r = fs.ops.run(ops)
    k = len(ODD_NAMES)
    assert r[:k] == [True] * k
    assert r[k] == sorted(ODD_NAMES)
    for st in r[k + 1:2 * k + 1]:
        assert isinstance(st, dict), st
    j = 2 * k + 1
    assert r[j:j + k - 1] == [True] * (k - 1)
    assert r[j + k - 1] == sorted([n + " 2" for n in ODD_NAMES[:-1]]
                                  + [ODD_NAMES[-1]])
    j += k
    assert r[j:j + k - 1] == [b"%d" % i for i in range(k - 1)]
    j += k - 1
    assert r[j] == "ENAMETOOLONG" and r[j + 1] == "ENAMETOOLONG"
    assert r[j + 2] == "ENAMETOOLONG"
    assert r[j + 5] == b"nested"
    res = fs.tool(["ls", "-1b", fs.work]).check()
    assert "with\\ space\\ 2" in res.stdout
    assert "caf\\351-latin1\\ 2" in res.stdout


def test_large_file_checksum(fs):
    size = 20 << 20
    r = fs.ops.run([
        ("write_pattern", "big", size, 42),
        ("sha256", "big"),
        ("stat", "big"),
    ], timeout=240)
    assert r[1] == [r[0], size]
    assert r[2]["size"] == size
    assert r[2]["blocks"] * 512 >= size * 0.9
    if fs.backing_work:
        back = fs.mounts.ops(fs.user, fs.backing_work).one(
            ("sha256", "big"), timeout=120)
        assert back == [r[0], size]
    res = fs.tool(["cmp", "-n", str(size), fs.p("big"), fs.p("big")],
                  timeout=120)
    assert res.returncode == 0, res


# --- whole trees with cp, diff, rm and tar ------------------------------------------

SRC_TREE = "/usr/include/linux"


def test_cp_a_diff_rm(fs):
    dst = fs.p("linux")
    fs.tool(["cp", "-a", SRC_TREE, fs.work + "/"], timeout=300).check()
    res = fs.tool(["diff", "-r", SRC_TREE, dst], timeout=300)
    assert res.returncode == 0, res
    # cp -a keeps modes and mtimes (and owners, for root).
    st_src = os.stat(os.path.join(SRC_TREE, "fuse.h"))
    st = fs.ops.one(("stat", "linux/fuse.h"))
    assert st["mtime_ns"] == st_src.st_mtime_ns
    assert st["perm"] == stat.S_IMODE(st_src.st_mode)
    if fs.is_root:
        assert st["uid"] == st_src.st_uid
    fs.tool(["rm", "-rf", dst], timeout=300).check()
    assert fs.ops.one(("listdir", ".")) == []


def test_tar_roundtrip(fs):
    tarball = os.path.join(fs.mounts.dir, "src.tar")
    run_cmd(["tar", "-C", "/usr/include/linux", "-cf", tarball,
             "netfilter"], timeout=60).check()
    os.chmod(tarball, 0o644)
    # tar x into the mount.
    fs.tool(["tar", "-C", fs.work, "-xf", tarball], timeout=120).check()
    fs.tool(["diff", "-r", "/usr/include/linux/netfilter",
             fs.p("netfilter")], timeout=120).check()
    # tar c from the mount (into the mount), then x again, elsewhere.
    fs.tool(["tar", "-C", fs.work, "-cf", fs.p("out.tar"), "netfilter"],
            timeout=120).check()
    fs.ops.ok([("mkdir", "x", 0o755)])
    fs.tool(["tar", "-C", fs.p("x"), "-xf", fs.p("out.tar")],
            timeout=120).check()
    fs.tool(["diff", "-r", "/usr/include/linux/netfilter",
             fs.p("x/netfilter")], timeout=120).check()
    # And listing the archive made on the mount.
    res = fs.tool(["tar", "-tf", fs.p("out.tar")], timeout=60).check()
    assert "netfilter/xt_mark.h" in res.stdout


# --- more: mmap, exec, deep trees, concurrency, setgid, open files over rename --------

def test_mmap_read_write(fs):
    r = fs.ops.run([
        ("write_file", "m", b"." * 10000),
        ("open", "m", ["O_RDWR"]),
        ("mmap_write", "m", 5000, b"MAPPED"),
        ("pread", "m", 6, 5000),
        ("close", "m"),
        ("read_file", "m"),
        ("open", "m", ["O_RDONLY"]),
        ("mmap_read", "m", 4998, 10),
        ("close", "m"),
    ])
    assert r[2] is True and r[3] == b"MAPPED"
    assert r[5][5000:5006] == b"MAPPED" and len(r[5]) == 10000
    assert r[7] == b"..MAPPED.."


def test_exec_from_mount(fs):
    fs.tool(["cp", "/bin/echo", fs.p("echo")]).check()
    fs.tool(["chmod", "0755", fs.p("echo")]).check()
    res = fs.tool([fs.p("echo"), "run", "from", "fuse"]).check()
    assert res.stdout == "run from fuse\n"
    fs.ops.ok([("write_file", "script.sh", b"#!/bin/sh\necho script $1\n"),
               ("chmod", "script.sh", 0o755)])
    res = fs.tool([fs.p("script.sh"), "ok"]).check()
    assert res.stdout == "script ok\n"
    # Not executable: EACCES from execve.
    fs.ops.ok([("chmod", "script.sh", 0o644)])
    res = fs.tool([fs.p("script.sh")])
    assert res.returncode != 0


def test_deep_tree(fs):
    depth = 40
    name = "level_directory_%02d" % 7
    r = fs.ops.run([("mkdir_chain", depth, name)])
    assert r[0] == depth
    deep = "/".join([name] * depth)
    r = fs.ops.run([
        ("write_file", deep + "/leaf", b"deep"),
        ("read_file", deep + "/leaf"),
        ("stat", deep),
        ("rename", name, "renamed_top"),
        ("read_file", "renamed_top/" + "/".join([name] * (depth - 1))
         + "/leaf"),
    ])
    assert r[0] is True and r[1] == b"deep", r
    assert r[2]["type"] == S_IFDIR
    assert r[3] is True and r[4] == b"deep"
    fs.tool(["rm", "-rf", fs.p("renamed_top")], timeout=120).check()
    assert fs.ops.one(("listdir", ".")) == []


def test_concurrent_clients(fs):
    """Several processes at once (requests from all of them in flight
    together, so the daemon batches and interleaves them)."""
    n_procs, n_files, size = 6, 60, 3000
    fs.ops.ok([("mkdir", "p%d" % i, 0o755) for i in range(n_procs)])
    held = [fs.mounts.hold(fs.ops, [
        ("sync", "go"),
        ("write_files", "f", n_files, size),
        ("check_files", "f", n_files, size),
        ("listdir", "."),
    ], cwd=fs.p("p%d" % i)) for i in range(n_procs)]
    for h in held:
        h.wait_sync("go")
    for h in held:
        h.release()
    for i, h in enumerate(held):
        r = h.finish(timeout=120)
        assert r[1] == n_files, r[1]
        assert r[2] == [], "process %d read back wrong data: %r" % (i, r[2])
        assert r[3] == sorted("f%d" % j for j in range(n_files))
    # And a reader of everything, afterwards.
    r = fs.ops.run([("check_files", "f", n_files, size)], cwd=fs.p("p0"))
    assert r[0] == []


def test_setgid_directory_inheritance(fs, users):
    shared = users.group_gid
    fs.root_ops.ok([("mkdir", "sg", 0o777), ("chown", "sg", 0, shared),
                    ("chmod", "sg", 0o2777)])
    r = fs.ops.run([
        ("write_file", "sg/f", b""),
        ("stat", "sg/f"),
        ("mkdir", "sg/d", 0o755),
        ("stat", "sg/d"),
    ])
    assert r[1]["gid"] == shared and r[1]["uid"] == fs.user.uid
    assert r[3]["gid"] == shared
    assert r[3]["perm"] & 0o2000, "new subdirectory must keep S_ISGID"


def test_rename_directory_with_open_files(fs):
    r = fs.ops.run([
        ("mkdir", "d", 0o755),
        ("mkdir", "d/sub", 0o755),
        ("write_file", "d/sub/f", b"12345"),
        ("open", "d/sub/f", ["O_RDWR"], 0, "fd"),
        ("rename", "d", "e"),
        ("pwrite", "fd", b"AB", 0),
        ("fsync", "fd"),
        ("read_file", "e/sub/f"),
        ("stat", "d/sub/f"),
        ("mkdir", "d", 0o755),                 # a new d, unrelated
        ("write_file", "d/other", b"o"),
        ("rename", "e/sub", "d/moved"),
        ("pread", "fd", 5, 0),
        ("fstat", "fd"),
        ("read_file", "d/moved/f"),
        ("close", "fd"),
        ("listdir", "d"),
        ("listdir", "e"),
    ])
    assert r[4] is True and r[5] == 2
    assert r[7] == b"AB345"
    assert r[8] == "ENOENT"
    assert r[12] == b"AB345" and r[13]["size"] == 5
    assert r[14] == b"AB345"
    assert r[16] == ["moved", "other"] and r[17] == []


def test_symlink_loops_and_dir_symlinks(fs):
    r = fs.ops.run([
        ("symlink", "b", "a"),
        ("symlink", "a", "b"),
        ("stat", "a"),
        ("lstat", "a"),
        ("open", "a", ["O_RDONLY"]),
        ("symlink", "a", "c"),
        ("open", "c", ["O_RDONLY", "O_NOFOLLOW"]),
    ])
    assert r[2] == "ELOOP"
    assert r[3]["type"] == S_IFLNK
    assert r[4] == "ELOOP"
    assert r[6] == "ELOOP"


def test_hardlink_coherence_repeated(root_fs):
    """Hard links are one file: a change through one name (a new link, a
    write, an unlink) shows at once through the others. Repeated, because
    stale per-name attributes show up only with some timings."""
    fs = root_fs
    bad = []
    for i in range(30):
        d = "x%d" % i
        r = fs.ops.run([
            ("mkdir", d, 0o755),
            ("write_file", d + "/a", b"shared"),
            ("mkdir", d + "/d", 0o755),
            ("link", d + "/a", d + "/b"),
            ("link", d + "/a", d + "/d/c"),
            ("stat", d + "/a"), ("stat", d + "/b"), ("stat", d + "/d/c"),
            ("append_file", d + "/b", b"+more"),
            ("read_file", d + "/a"), ("read_file", d + "/d/c"),
            ("unlink", d + "/a"),
            ("stat", d + "/b"), ("stat", d + "/d/c"),
        ])
        got = (r[5]["nlink"], r[6]["nlink"], r[7]["nlink"], r[9], r[10],
               r[12]["nlink"], r[13]["nlink"], r[12]["size"], r[13]["size"])
        want = (3, 3, 3, b"shared+more", b"shared+more", 2, 2, 11, 11)
        if got != want:
            bad.append((i, got))
    assert not bad, (
        "%d/30 rounds saw stale state through another hard link; want "
        "(nlink a,b,c after 2 links; read a, c after append via b; nlink "
        "b,c after unlink a; size b,c) = %r; got %r" % (len(bad), want,
                                                         bad[:4]))
