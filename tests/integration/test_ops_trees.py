"""Whole trees through a fuse-hostd mount, on both example backends, as root
and as a non-root user (fixture `fs`): large and deep directories, ls -l,
and cp, diff, rm and tar. How the checks of test_ops_*.py are written: see
ops_checks.py."""

import os
import stat

from fhlib import run_cmd
from ops_checks import S_IFDIR, S_IFREG


# --- large and deep directories ----------------------------------------------

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


# --- whole trees with cp, diff, rm and tar -----------------------------------

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
