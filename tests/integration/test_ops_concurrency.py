"""Several processes on one fuse-hostd mount at once, on both example
backends (fixtures `fs` and `root_fs`): flock and fcntl locks, concurrent
clients, and hard links seen alike through every name. How the checks of
test_ops_*.py are written: see ops_checks.py."""

import os

import pytest


# --- locks -------------------------------------------------------------------

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


# --- concurrency and hard links ----------------------------------------------

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


def test_unlink_right_after_link_shows_through_the_other_name(root_fs):
    """link then unlink at once, with no stat between: the name left sees
    one link. The unlinked name's node last heard of one link (when it was
    written), so that it shares a file with the new name is known from the
    link itself."""
    r = root_fs.ops.run([
        ("write_file", "a", b"x"),
        ("stat", "a"),
        ("link", "a", "b"),
        ("stat", "b"),
        ("unlink", "a"),
        ("stat", "b"),
    ])
    assert (r[1]["nlink"], r[3]["nlink"], r[5]["nlink"]) == (1, 2, 1), r


def test_rename_onto_another_name_of_the_same_file_keeps_both(root_fs):
    """rename(2) of one hard link onto another of the same file does
    nothing and succeeds: both names stay. Each name is a node of its own
    in the kernel, so the rename reaches the daemon, which must not then
    remember the first name as gone."""
    r = root_fs.ops.run([
        ("write_file", "a", b"x"),
        ("link", "a", "b"),
        ("stat", "a"), ("stat", "b"),
        ("rename", "a", "b"),
        ("stat", "a"), ("stat", "b"),
        ("listdir", "."),
    ])
    assert r[4] is True, r
    assert isinstance(r[5], dict) and r[5]["nlink"] == 2, r
    assert r[6]["nlink"] == 2 and r[5]["ino"] == r[6]["ino"], r
    assert sorted(r[7]) == ["a", "b"], r


def _forget_unused_kernel_nodes():
    """Makes the kernel drop the dentries and inodes nothing uses, as memory
    pressure would: the daemon gets FORGETs for them, and its node table no
    longer knows those names of a hard-linked file."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")


def test_names_the_kernel_forgot_keep_no_stale_link_count(root_fs):
    """A hard link's other name, forgotten by the kernel, may still be in the
    daemon's cache; a link or an unlink through a name whose attributes the
    daemon had dropped (a write and fsync through it, on a passthrough
    backend) must not leave it showing the old link count."""
    fs = root_fs
    append = ("open", "a", ["O_WRONLY", "O_APPEND"])
    r = fs.ops.run([("write_file", "a", b"x"), ("link", "a", "b"),
                    ("stat", "b")])
    assert r[2]["nlink"] == 2, r
    _forget_unused_kernel_nodes()
    r = fs.ops.run([append, ("write", "a", b"y"), ("fsync", "a"),
                    ("close", "a"), ("link", "a", "c"), ("stat", "b")])
    assert r[5]["nlink"] == 3, "after a link, another name showed %r" % r[5]
    _forget_unused_kernel_nodes()
    r = fs.ops.run([append, ("write", "a", b"z"), ("fsync", "a"),
                    ("close", "a"), ("unlink", "a"), ("stat", "b"),
                    ("stat", "c")])
    assert (r[5]["nlink"], r[6]["nlink"]) == (2, 2), (
        "after an unlink, the other names showed %r" % r[5:])
    assert (r[5]["size"], r[6]["size"]) == (3, 3), r[5:]


@pytest.mark.parametrize("kernel_forgets", [False, True],
                         ids=["kernel-keeps-names", "kernel-forgets-names"])
def test_every_change_through_one_hard_link_shows_through_the_other(
        root_fs, kernel_forgets):
    """Each name of a hard-linked file is a node of its own in the kernel and
    a path of its own in the daemon's cache, each with the file's attributes
    and extended attributes: a change through one name (fallocate, a copy
    into it, a truncating open, an extended attribute set or removed) shows
    at once through the other, whose attributes were cached just before.
    Also when the kernel forgot the names in between (memory pressure), so
    that only the daemon's cache knows b was asked about."""
    fs = root_fs
    r = fs.ops.run([("write_file", "a", b"abc"),
                    ("write_file", "src", b"0123456789"),
                    ("link", "a", "b"), ("stat", "b"),
                    ("getxattr", "b", "user.k")])
    assert (r[3]["nlink"], r[3]["size"], r[4]) == (2, 3, "ENODATA"), r

    def through_a_then_b(changes, *b_checks):
        # b's attributes freshly cached in both caches (well inside their
        # lifetime), then the change through a.
        before = [("stat", "b"), ("listxattr", "b")]
        if kernel_forgets:
            fs.ops.run(before)
            _forget_unused_kernel_nodes()
            before = []
        r = fs.ops.run(before + changes + [("stat", "b")] + list(b_checks))
        return r[len(before):]

    r = through_a_then_b([("open", "a", ["O_RDWR"]),
                          ("posix_fallocate", "a", 0, 8192),
                          ("close", "a")])
    assert r[1] is True and r[3]["size"] == 8192, "after fallocate: %r" % r
    r = through_a_then_b([("open", "a", ["O_WRONLY", "O_TRUNC"]),
                          ("close", "a")], ("read_file", "b"))
    assert (r[2]["size"], r[3]) == (0, b""), "after O_TRUNC: %r" % r
    r = through_a_then_b([("open", "src", ["O_RDONLY"]),
                          ("open", "a", ["O_WRONLY"]),
                          ("copy_file_range", "src", "a", 10, 0, 0),
                          ("close", "a"), ("close", "src")],
                         ("read_file", "b"))
    assert r[2] == 10 and (r[5]["size"], r[6]) == (10, b"0123456789"), (
        "after copy_file_range: %r" % r)
    r = through_a_then_b([("setxattr", "a", "user.k", b"v")],
                         ("getxattr", "b", "user.k"), ("listxattr", "b"))
    assert (r[2], r[3]) == (b"v", ["user.k"]), "after setxattr: %r" % r
    r = through_a_then_b([("removexattr", "a", "user.k")],
                         ("getxattr", "b", "user.k"), ("listxattr", "b"))
    assert (r[2], r[3]) == ("ENODATA", []), "after removexattr: %r" % r


def test_hardlink_coherence_repeated(root_fs):
    """Hard links are one file: a change through one name (a new link, a
    write, an unlink) shows at once through the others. Repeated, because
    stale per-name attributes show up only with some timings."""
    fs = root_fs
    bad = []
    # FH_HARDLINK_ROUNDS=300 makes a rare race show, under load.
    for i in range(int(os.environ.get("FH_HARDLINK_ROUNDS", "30"))):
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
