"""The daemon's caching through real mounts of the example backends: what
timeouts let through, the round trips that making, opening and listing
files cost, read-ahead, and the loopback's change notices (its own changes
keep the cache; xattr names come with listings)."""

import os
import time

import pytest

from daemon_stats import (backend_ops, backend_ops_making_files, kernel_nodes,
                         kernel_requests)
from fhlib import run_cmd, wait_until

pytestmark = pytest.mark.usefixtures("needs_daemon")


# --- timeouts ----------------------------------------------------------------

def test_zero_timeouts_see_backing_changes_at_once(mounts):
    """With attr/entry/negative timeouts 0 the kernel asks every time, so a
    change made behind the daemon's back (in the loopback's directory) shows
    through the mount at once."""
    m = mounts.mount("loopback", options="allow_other,attr_timeout=0,"
                     "entry_timeout=0,negative_timeout=0")
    ops = mounts.ops(cwd=m.path)
    back = os.path.join(m.backing, "x")
    assert ops.one(("stat", "x")) == "ENOENT"
    with open(back, "wb") as f:
        f.write(b"12345")
    st = ops.one(("stat", "x"))
    assert isinstance(st, dict) and st["size"] == 5, st
    with open(back, "ab") as f:
        f.write(b"678")
    assert ops.one(("stat", "x"))["size"] == 8
    assert ops.one(("read_file", "x")) == b"12345678"
    os.unlink(back)
    assert ops.one(("stat", "x")) == "ENOENT"
    os.mkdir(back)
    assert ops.one(("stat", "x"))["type"] == 0o040000


def test_default_timeouts_see_backing_changes_soon(mounts):
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    back = os.path.join(m.backing, "y")
    with open(back, "wb") as f:
        f.write(b"1")
    assert ops.one(("stat", "y"))["size"] == 1
    with open(back, "ab") as f:
        f.write(b"2345")
    # Attributes are trusted for attr_timeout (1 s by default), no longer.
    assert wait_until(lambda: ops.one(("stat", "y"))["size"] == 5, 5, 0.3)
    os.unlink(back)
    assert wait_until(lambda: ops.one(("stat", "y")) == "ENOENT", 5, 0.3)


# --- round trips -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_read_only_close_sends_no_flush(mounts, kind):
    """Both examples mark read-only opens noflush, so close(2) of them costs
    no FLUSH round trip. Writable opens too, on memory and on a loopback of
    a local filesystem; a loopback of NFS, say, still flushes on close,
    where its flush reports write-back errors."""
    m = mounts.mount(kind)
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "f", b"data")])
    flushes = kernel_requests(m, "flush")
    for _ in range(5):
        assert ops.one(("read_file", "f")) == b"data"
    assert kernel_requests(m, "flush") == flushes
    ops.ok([("append_file", "f", b"+")])
    assert ops.one(("read_file", "f")) == b"data+"
    local = kind == "memory" or run_cmd(
        ["stat", "-f", "-c", "%T", m.backing]).check().stdout.strip() in (
            "tmpfs", "ext2/ext3", "xfs", "btrfs")
    assert (kernel_requests(m, "flush") == flushes) == local


@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_making_files_costs_one_round_trip_each(mounts, kind):
    """Creating a file and writing it, as tar does, asks the backend for the
    create and the write only (the release goes in the background). The
    replies carry the attributes the kernel asks for next (the directory's,
    before the next create in it; the file's, after the write), so none of
    those GETATTRs reaches the backend."""
    # create + write + release per file
    sent = backend_ops_making_files(mounts, kind, 40)
    assert sent <= 3 * 40 + 2, sent


def test_small_files_come_with_their_open(mounts):
    """loopback sends a small file whole with its read-only open; the
    kernel's first read is answered from it (no backend round trip), and
    nothing later is: reads after the file changed see the change. (With
    passthrough, the default, the kernel reads the file itself and the
    daemon opens it: test_daemon_opens.py.)"""
    m = mounts.mount("loopback", options="allow_other,passthrough=off")
    back = os.path.join(m.backing, "small")
    with open(back, "wb") as f:
        f.write(b"first")
    ops = mounts.ops(cwd=m.path)
    assert ops.one(("stat", "small"))["size"] == 5
    before = backend_ops(m)
    assert ops.one(("read_file", "small")) == b"first"
    time.sleep(0.2)  # the release goes in the background
    assert backend_ops(m) - before == 2  # open and release: no read
    # A reader that stays open, like tail -f, sees what is appended.
    r = ops.run([("open", "small", ["O_RDONLY"]), ("read", "small", 100),
                 ("append_file", "small", b"+more"),
                 ("pread", "small", 100, 0), ("close", "small")])
    assert r[1] == b"first" and r[3] == b"first+more", r
    # Written through another handle between open and first read.
    r = ops.run([("open", "small", ["O_RDONLY"], 0o644, "r"),
                 ("open", "small", ["O_WRONLY", "O_TRUNC"], 0o644, "w"),
                 ("write", "w", b"new"), ("close", "w"),
                 ("read", "r", 100), ("close", "r")])
    assert r[4] == b"new", r


def test_memory_backend_sends_small_files_whole_when_asked(mounts):
    """The daemon asks for a file whole with its read-only open when its
    cache holds the file's size and it is small (OpenRequest.contents_up_to,
    FileInfo::contents_up_to in the C++ SDK); memory_fs then sends it, and
    the kernel's first read costs no round trip."""
    m = mounts.mount("memory")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("write_file", "small", b"hello")])
    assert ops.one(("stat", "small"))["size"] == 5
    # The kernel must read the file again: drop its copy.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1")
    before = backend_ops(m)
    assert ops.one(("read_file", "small")) == b"hello"
    time.sleep(0.2)  # the release goes in the background
    assert backend_ops(m) - before == 2  # open and release: no read


def test_listing_with_attributes_spares_lookups(mounts):
    """Every chunk of a listing comes with attributes (not only the first,
    as in the kernel's "auto" mode), so find needs no LOOKUP per name."""
    m = mounts.mount("loopback")
    # The loopback's watcher announces every file made below, and each
    # notice makes the kernel forget the name: one arriving after the
    # listing costs a LOOKUP. Notices come in the order of the changes, so
    # once a name made last shows (it was absent, and absence is cached
    # until its notice), the earlier ones have all been applied.
    marker = os.path.join(m.path, "many-made")
    assert not os.path.exists(marker)
    os.mkdir(os.path.join(m.backing, "many"))
    for i in range(400):  # far more than one 4 KiB readdir chunk
        open(os.path.join(m.backing, "many", "file-%03d" % i), "w").close()
    open(os.path.join(m.backing, "many-made"), "w").close()
    assert wait_until(lambda: os.path.exists(marker), 10, 0.02)
    before = kernel_requests(m, "lookup")
    res = run_cmd(["find", os.path.join(m.path, "many"), "-printf",
                   "%s\n"]).check()
    assert len(res.stdout.splitlines()) == 401
    assert kernel_requests(m, "lookup") - before <= 2


def test_a_find_gets_files_bare_and_find_printf_gets_their_attributes(
        mounts):
    """A file handed out with attributes costs the kernel an inode, which a
    find that looks at no file never uses: once a listing's files were not
    looked up, listings hand files out by name and type only (directories
    still with attributes). Callers that look files up (find -printf %s)
    get attributes again after one directory's worth of LOOKUPs."""
    m = mounts.mount("loopback")
    dirs, files = 20, 50
    tree = os.path.join(m.backing, "tree")
    os.mkdir(tree)
    for d in range(dirs):
        os.mkdir(os.path.join(tree, "d%02d" % d))
        for f in range(files):
            with open(os.path.join(tree, "d%02d" % d, "f%02d" % f), "w") as out:
                out.write("x" * f)
    # Every notice of the loopback's watcher applied (see above).
    open(os.path.join(m.backing, "tree-made"), "w").close()
    assert wait_until(lambda: os.path.exists(
        os.path.join(m.path, "tree-made")), 10, 0.02)
    nodes = kernel_nodes(m)
    res = run_cmd(["find", os.path.join(m.path, "tree")]).check()
    assert len(res.stdout.splitlines()) == 1 + dirs * (1 + files)
    # The mount's first listing ("tree", directories only) came with
    # attributes; its second, a directory of files, handed a few files out
    # bare to see whether they are looked up; they were not, and from then
    # on only directories came with attributes.
    held = kernel_nodes(m) - nodes
    assert 1 + dirs <= held < 1 + dirs + files, held
    # find -printf %s looks every file up.
    before = kernel_requests(m, "lookup")
    res = run_cmd(["find", os.path.join(m.path, "tree"), "-type", "f",
                   "-printf", "%f %s\n"]).check()
    sizes = [line.split() for line in res.stdout.splitlines()]
    assert len(sizes) == dirs * files
    assert all(int(s) == int(name[1:]) for name, s in sizes), sizes
    # The first directory's bare files one by one (the kernel lists its own
    # copy), which shows they are looked up: the other directories are
    # listed afresh, their files with attributes, but for a few in one
    # listing in 16 (the 18th of the mount).
    lookups = kernel_requests(m, "lookup") - before
    assert 1 <= lookups < files, lookups
    assert kernel_nodes(m) - nodes >= 1 + dirs * (1 + files)


@pytest.mark.parametrize("read_ahead_kb", [None, 0])
def test_read_ahead_window(mounts, read_ahead_kb):
    """The daemon widens the kernel's read-ahead window once the mount is
    up (4 MiB unless read_ahead_kb= says otherwise; 0 keeps the kernel's), so
    a sequential read arrives in large requests (of 1 MiB, several at once):
    fewer round trips. (Reads are forwarded here: with passthrough none
    reach the daemon.)"""
    options = "allow_other,passthrough=off"
    if read_ahead_kb is not None:
        options += ",read_ahead_kb=%d" % read_ahead_kb
    m = mounts.mount("loopback", options=options)
    with open(os.path.join(m.backing, "big"), "wb") as f:
        f.write(os.urandom(8 << 20))
    ops = mounts.ops(cwd=m.path)
    assert ops.one(("stat", "big"))["size"] == 8 << 20
    dev = os.stat(m.path).st_dev
    with open("/sys/class/bdi/%d:%d/read_ahead_kb" %
              (os.major(dev), os.minor(dev))) as f:
        window = int(f.read())
    assert window == (4096 if read_ahead_kb is None else 128), window
    before = kernel_requests(m, "read")
    data = ops.one(("read_file", "big"))
    assert len(data) == 8 << 20
    reads = kernel_requests(m, "read") - before
    # 8 MiB in requests of the window's size, give or take the start.
    if read_ahead_kb is None:
        assert reads <= 12, reads
    else:
        assert reads >= 60, reads


# --- the loopback's notices --------------------------------------------------

def test_own_changes_keep_the_cache(mounts):
    """inotify reports changes made through the mount like any other; the
    loopback recognises its own and does not announce them, so what the
    daemon and the kernel cached from those changes stays cached. Changes
    made behind the mount are still announced."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    ops.ok([("mkdir", "d", 0o755), ("listdir", "d")])  # listing cached
    script = []
    for i in range(20):
        script += [("write_file", "d/f%d" % i, b"x" * i),
                   ("chmod", "d/f%d" % i, 0o600)]
    script += [("rename", "d/f0", "d/g0"), ("unlink", "d/f1")]
    ops.ok(script)
    time.sleep(0.5)  # the watcher's events for all of it have been handled
    assert len(ops.one(("listdir", "d"))) == 19

    def asked():
        return (backend_ops(m), kernel_requests(m, "lookup"),
                kernel_requests(m, "getattr"))
    before = asked()
    r = ops.run([("stat", "d/f%d" % i) for i in range(2, 20)])
    assert [x["mode"] & 0o777 for x in r] == [0o600] * 18, r
    # Not even the kernel asks: nothing told it to forget.
    assert asked() == before
    with open(os.path.join(m.backing, "d", "f5"), "ab") as f:
        f.write(b"outside")
    assert wait_until(
        lambda: ops.one(("stat", "d/f5"))["size"] == 12, 5, 0.02)


def test_a_change_behind_the_mount_reaches_every_name_of_the_file(mounts):
    """The loopback's notices name the path that changed; the file's other
    names (hard links, cached for a minute with notices on) show the change
    too: an append, an extended attribute and an unlink behind the mount,
    each through one name. Which file a notice is about must be known to
    one of the two caches: at first only to the kernel (the link dropped
    the name's attributes from the daemon's cache), at the end only to the
    daemon's (a notice made the kernel forget the name; a stat brought it
    back)."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    r = ops.run([("write_file", "a", b"abc"), ("link", "a", "b"),
                 ("stat", "b"), ("getxattr", "b", "user.k")])
    assert (r[2]["nlink"], r[2]["size"], r[3]) == (2, 3, "ENODATA"), r
    with open(os.path.join(m.backing, "a"), "ab") as f:
        f.write(b"def")
    assert wait_until(lambda: ops.one(("stat", "b"))["size"] == 6, 5, 0.02), (
        ops.one(("stat", "b")))
    os.setxattr(os.path.join(m.backing, "a"), "user.k", b"v")
    assert wait_until(
        lambda: ops.one(("getxattr", "b", "user.k")) == b"v", 5, 0.02)
    assert ops.one(("stat", "a"))["nlink"] == 2
    os.unlink(os.path.join(m.backing, "a"))
    assert wait_until(lambda: ops.one(("stat", "b"))["nlink"] == 1, 5, 0.02), (
        ops.one(("stat", "b")))
    assert ops.one(("stat", "a")) == "ENOENT"


@pytest.mark.parametrize("how", ["unlinked", "renamed"])
def test_an_open_file_gone_from_its_name_behind_the_mount_stats(mounts, how):
    """fstat(2) of an open file whose name went away on the backend, behind
    the mount (a log rotated or deleted at the other end): the kernel sends
    no handle with it, the daemon's path leads nowhere, and the answer comes
    through the open file's handle at the backend, as fstat of a local file
    would, instead of ENOENT."""
    m = mounts.mount("loopback", options="allow_other,passthrough=off,"
                     "prefetch_contents=0")
    with open(os.path.join(m.backing, "log"), "wb") as f:
        f.write(b"1234567")
    path = os.path.join(m.path, "log")
    with open(path, "rb") as held:
        assert held.read() == b"1234567"
        if how == "unlinked":
            os.unlink(os.path.join(m.backing, "log"))
        else:
            os.rename(os.path.join(m.backing, "log"),
                      os.path.join(m.backing, "log.1"))
        assert wait_until(lambda: not os.path.exists(path), 5, 0.02)
        st = os.fstat(held.fileno())
        assert (st.st_size, st.st_nlink) == \
            (7, 0 if how == "unlinked" else 1), st
        assert os.pread(held.fileno(), 100, 2) == b"34567"
    assert not os.path.exists(path)


def test_xattr_names_come_with_listings(mounts):
    """loopback lists each entry's xattr names in readdir, so getxattr of
    a name a file lacks (ls -l asks every file for its ACL) and listxattr
    are answered without a backend round trip; a change made behind the
    mount or through it is seen at once."""
    m = mounts.mount("loopback")
    ops = mounts.ops(cwd=m.path)
    for name in ("plain", "tagged"):
        with open(os.path.join(m.backing, name), "wb") as f:
            f.write(b"x")
    os.setxattr(os.path.join(m.backing, "tagged"), "user.k", b"v")
    assert sorted(ops.one(("listdir", "."))) == ["plain", "tagged"]

    before = backend_ops(m)
    r = ops.run([("getxattr", "plain", "system.posix_acl_access"),
                 ("getxattr", "plain", "user.k"),
                 ("listxattr", "plain"),
                 ("getxattr", "tagged", "system.posix_acl_access"),
                 ("listxattr", "tagged")])
    assert r == ["ENODATA", "ENODATA", [], "ENODATA", ["user.k"]], r
    assert backend_ops(m) == before
    assert ops.one(("getxattr", "tagged", "user.k")) == b"v"
    ls = run_cmd(["ls", "-l", m.path]).check()
    assert "plain" in ls.stdout and "tagged" in ls.stdout

    # Behind the mount: inotify tells the daemon.
    os.setxattr(os.path.join(m.backing, "plain"), "user.new", b"1")
    assert wait_until(
        lambda: ops.one(("getxattr", "plain", "user.new")) == b"1", 5, 0.02)
    assert ops.one(("listxattr", "plain")) == ["user.new"]
    os.removexattr(os.path.join(m.backing, "tagged"), "user.k")
    assert wait_until(
        lambda: ops.one(("listxattr", "tagged")) == [], 5, 0.02)
    # Through the mount.
    ops.ok([("setxattr", "tagged", "user.m", b"2")])
    assert ops.run([("getxattr", "tagged", "user.m"),
                    ("listxattr", "tagged")]) == [b"2", ["user.m"]]
    ops.ok([("removexattr", "plain", "user.new")])
    assert ops.run([("getxattr", "plain", "user.new"),
                    ("listxattr", "plain")]) == ["ENODATA", []]


@pytest.mark.parametrize("kind", ["loopback", "memory"])
def test_node_examples_send_xattr_names_with_their_attributes(node_mounts,
                                                             kind):
    """The Node.js examples give each entry's xattr names with its
    attributes (the loopback with its listings, one round trip to its
    helper process for all of them; memory with every answer), so ls -l,
    which asks each file for its ACL and label, sends the backend no
    getxattr; a name a file has is still fetched, and one set through the
    mount is seen at once. The loopback declares the host's security
    labels unsupported."""
    m = node_mounts.mount(kind)
    ops = node_mounts.ops(cwd=m.path)
    if kind == "loopback":
        many = os.path.join(m.backing, "many")
        os.mkdir(many)
        for i in range(40):
            open(os.path.join(many, "f%05d" % i), "wb").close()
        os.setxattr(os.path.join(many, "f00007"), "user.k", b"v")
    else:
        ops.ok([("mkdir", "many", 0o755), ("create_many", "many", 40),
                ("setxattr", "many/f00007", "user.k", b"v")])

    asked, sent = kernel_requests(m, "getxattr"), backend_ops(m)
    assert "f00039" in run_cmd(["ls", "-l", os.path.join(m.path, "many")]
                               ).check().stdout
    assert kernel_requests(m, "getxattr") - asked >= 40
    # The listing and the lookups it needs, not a getxattr per file.
    assert backend_ops(m) - sent < 10, backend_ops(m) - sent
    if kind == "loopback":
        # It declares the host's security labels unsupported: after the
        # first EOPNOTSUPP, ls -l asks each file for its ACL and no label
        # (two requests per file otherwise).
        asked = kernel_requests(m, "getxattr")
        run_cmd(["ls", "-l", os.path.join(m.path, "many")]).check()
        assert 40 <= kernel_requests(m, "getxattr") - asked < 50
        assert ops.one(("getxattr", "many/f00001", "security.selinux")) == \
            "ENOTSUP"
    assert ops.run([("getxattr", "many/f00007", "user.k"),
                    ("listxattr", "many/f00007"),
                    ("getxattr", "many/f00001", "user.k"),
                    ("listxattr", "many/f00001")]) == [
                        b"v", ["user.k"], "ENODATA", []]
    ops.ok([("setxattr", "many/f00001", "user.m", b"2")])
    assert ops.run([("getxattr", "many/f00001", "user.m"),
                    ("listxattr", "many/f00001")]) == [b"2", ["user.m"]]


def test_ls_l_again_sends_no_getxattr(mounts):
    """loopback hands the kernel its files' ACLs to keep (posix_acl; the
    backing filesystem keeps ACLs) and declares the host's security labels
    unsupported, so ls -l asks the daemon for each file's ACL once per
    mount and for labels only until the first EOPNOTSUPP. A label on a
    backing file is not shown through the mount."""
    m = mounts.mount("loopback")
    labeled = os.path.join(m.backing, "labeled")
    open(labeled, "wb").close()
    os.setxattr(labeled, "user.k", b"v")
    os.setxattr(labeled, "security.selinux", b"system_u:object_r:tmp_t:s0\0")
    ops = mounts.ops(cwd=m.path)
    assert ops.run([("getxattr", "labeled", "security.selinux"),
                    ("setxattr", "labeled", "security.selinux", b"x"),
                    ("listxattr", "labeled")]) == ["ENOTSUP", "ENOTSUP",
                                                   ["user.k"]]
    assert os.getxattr(labeled, "security.selinux") == \
        b"system_u:object_r:tmp_t:s0\0"

    # Made through the mount: no change notice from the backing directory
    # makes the kernel drop what it keeps of them.
    ops.ok([("mkdir", "many", 0o755), ("create_many", "many", 40)])
    many = os.path.join(m.path, "many")
    first = kernel_requests(m, "getxattr")
    assert "f00039" in run_cmd(["ls", "-l", many]).check().stdout
    again = kernel_requests(m, "getxattr")
    # The first ls asks each file for its ACL (the kernel keeps the answer).
    assert again - first >= 40
    assert "f00039" in run_cmd(["ls", "-l", many]).check().stdout
    # The second: only the first file's label, which the daemon answers
    # EOPNOTSUPP and this ls then asks no other file for.
    assert kernel_requests(m, "getxattr") - again == 1


def test_acls_kept_by_the_kernel_follow_changes_behind_the_mount(mounts,
                                                                 users):
    """An ACL set through the mount is enforced at once; one removed in the
    backing directory stops being enforced as soon as the loopback's watch
    reports it, although the kernel had kept it."""
    m = mounts.mount("loopback")
    with open(os.path.join(m.backing, "shared"), "wb") as f:
        f.write(b"x")
    os.chmod(os.path.join(m.backing, "shared"), 0o644)
    as_a = mounts.ops(user=users.a, cwd=m.path)
    assert as_a.one(("read_file", "shared")) == b"x"
    run_cmd(["setfacl", "-m", "u:%s:---" % users.a.name,
             os.path.join(m.path, "shared")]).check()
    acl = run_cmd(["getfacl", "-c", os.path.join(m.path, "shared")]).check()
    assert "user:%s:---" % users.a.name in acl.stdout
    assert as_a.one(("read_file", "shared")) == "EACCES"
    run_cmd(["setfacl", "-b", os.path.join(m.backing, "shared")]).check()
    assert wait_until(
        lambda: as_a.one(("read_file", "shared")) == b"x", 5, 0.05)
