"""Operations on names through a fuse-hostd mount, on both example backends,
as root and as a non-root user (fixture `fs`): directories, removal, renames
(also of directories with open files), links, symlinks, special files and
odd names. How the checks of test_ops_*.py are written: see ops_checks.py."""

import os
import stat

from fhlib import Err
from ops_checks import S_IFDIR, S_IFLNK, S_IFREG, assert_results, owned_by


# --- directories -------------------------------------------------------------

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


# --- rename ------------------------------------------------------------------

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


# --- links and special files -------------------------------------------------

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


# --- odd names ---------------------------------------------------------------

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
