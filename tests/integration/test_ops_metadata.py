"""Metadata through a fuse-hostd mount, on both example backends, as root
and as a non-root user (fixture `fs`): modes, owners, timestamps, extended
attributes, statvfs, and permission checks (access, sticky directories,
set-id bits, setgid directories). How the checks of test_ops_*.py are
written: see ops_checks.py."""

import os
import time

from fhlib import is_err
from ops_checks import S_IFDIR


# --- metadata ----------------------------------------------------------------

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


# --- permissions -------------------------------------------------------------

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
