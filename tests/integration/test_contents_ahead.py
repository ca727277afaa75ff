"""Small files fetched ahead of their opens (mount option prefetch_contents=,
on by default wherever an open is a message to the backend): reading a
directory of small files costs a few messages instead of one per file,
every file reads as it is in the backing directory, a file changed behind
the mount is read as it is now, and contents fetched for one user never
reach another."""

import os
import re

import pytest

import conftest
import fhlib

pytestmark = pytest.mark.usefixtures("needs_daemon")

FILES = 60


def contents(i):
    # Different sizes and bytes for each file, up to a few KiB.
    return (b"%03d:" % i) * (1 + 37 * i)


def make_files(root, mode=0o644):
    d = os.path.join(root, "d")
    os.mkdir(d)
    for i in range(FILES):
        p = os.path.join(d, "f%03d" % i)
        with open(p, "wb") as f:
            f.write(contents(i))
        os.chmod(p, mode)
    return d


def stats(m):
    return m.daemon.ctl("stats", m.path).check().stdout


def counters(m):
    out = stats(m)
    small = re.search(r"small files\s+(\d+) fetched ahead, (\d+) opens", out)
    backend = re.search(r"backend\s+(\d+) messages", out)
    assert small and backend, "no small files or backend line:\n" + out
    return int(small.group(1)), int(small.group(2)), int(backend.group(1))


@pytest.fixture
def tcp_mount(mounts):
    """loopback_fs over plain TCP, mounted with `options`; the backend is
    stopped and the mount unmounted after the test."""
    made = []

    def mount(root, options="allow_other,insecure", args=()):
        backend = conftest.TcpLoopback(mounts, root, args)
        made.append(backend)
        m = backend.mount(mounts, options)
        made.append(m)
        return m
    yield mount
    for thing in reversed(made):
        if isinstance(thing, conftest.Mount):
            if fhlib.is_mounted(thing.path):
                mounts.daemon.unmount(thing.path)
        else:
            thing.stop()


def read_all(top):
    """cat of every file, in name order, by one process: name -> bytes."""
    names = sorted(os.listdir(top))
    out = {}
    for n in names:
        with open(os.path.join(top, n), "rb") as f:
            out[n] = f.read()
    return out


def test_a_directory_of_small_files_is_read_in_a_few_messages(mounts,
                                                              tcp_mount):
    root = mounts.mkdir("ahead_backing")
    make_files(root)
    m = tcp_mount(root)
    top = os.path.join(m.path, "d")
    # Listed with attributes first (ls -l): the daemon knows each size.
    assert len(fhlib.run_cmd(["ls", "-l", top]).stdout.splitlines()) == \
        FILES + 1
    fetched0, answered0, messages0 = counters(m)
    assert (fetched0, answered0) == (0, 0)
    got = read_all(top)
    assert got == {"f%03d" % i: contents(i) for i in range(FILES)}
    fetched, answered, messages = counters(m)
    # The first open went to the backend and brought the other 59 along.
    assert fetched == FILES - 1, stats(m)
    assert answered == FILES - 1, stats(m)
    # One open with its contents, the fetch (in messages of 64 ops) and its
    # releases: not one message per file.
    assert messages - messages0 <= 8, stats(m)


def test_a_reader_that_skips_files_across_directories_is_followed(
        mounts, tcp_mount):
    # Every third file of three directories, in order (cat d*/f000 d*/f003
    # ...): after its first files the reader's opens are the daemon's, and
    # what it skips is not fetched.
    root = mounts.mkdir("ahead_stride_backing")
    for d in range(3):
        os.makedirs(os.path.join(root, "d%d" % d))
        for i in range(30):
            with open(os.path.join(root, "d%d" % d, "f%03d" % i), "wb") as f:
                f.write(contents(i))
    # Windows of 4: f000 goes to the backend and brings f001-f004, f003 is
    # answered and shows the step, f006 goes to the backend and brings every
    # third file after it, and from then on each window goes out half-way
    # through the last, on into d1 and d2.
    m = tcp_mount(root, "allow_other,insecure,prefetch_contents=4")
    fhlib.run_cmd(["ls", "-lR", m.path])
    wanted = ["d%d/f%03d" % (d, i) for d in range(3) for i in range(0, 30, 3)]
    for rel in wanted:
        with open(os.path.join(m.path, rel), "rb") as f:
            assert f.read() == contents(int(rel[-3:])), rel
    fetched, answered, _ = counters(m)
    assert answered == len(wanted) - 2, stats(m)
    # Not sent: f001, f002 and f004 of the first window, and at most a
    # window past the last file read.
    assert fetched <= answered + 3 + 4, stats(m)


def test_a_local_backend_that_hands_over_no_descriptor_is_read_ahead(mounts):
    # Its opens are messages too; the first brings the other files along.
    m = mounts.mount("loopback", "allow_other,passthrough=off")
    make_files(m.backing)
    fhlib.run_cmd(["ls", "-l", os.path.join(m.path, "d")])
    messages0 = counters(m)[2]
    assert read_all(os.path.join(m.path, "d")) == \
        {"f%03d" % i: contents(i) for i in range(FILES)}
    fetched, answered, messages = counters(m)
    assert (fetched, answered) == (FILES - 1, FILES - 1), stats(m)
    assert messages - messages0 <= 8, stats(m)


def test_off_where_the_kernel_reads_the_files_itself_and_when_asked(
        mounts, tcp_mount):
    # A local loopback hands over descriptors: the kernel reads its files
    # through them (passthrough), and an open costs no message anyway.
    m = mounts.mount("loopback")
    make_files(m.backing)
    fhlib.run_cmd(["ls", "-l", os.path.join(m.path, "d")])
    read_all(os.path.join(m.path, "d"))
    assert counters(m)[:2] == (0, 0)

    root = mounts.mkdir("ahead_off_backing")
    make_files(root)
    off = tcp_mount(root, "allow_other,insecure,prefetch_contents=0")
    fhlib.run_cmd(["ls", "-l", os.path.join(off.path, "d")])
    assert read_all(os.path.join(off.path, "d")) == \
        {"f%03d" % i: contents(i) for i in range(FILES)}
    assert counters(off)[:2] == (0, 0)


def test_a_file_changed_behind_the_mount_is_read_as_it_is_now(mounts,
                                                              tcp_mount):
    root = mounts.mkdir("ahead_changed_backing")
    backing = make_files(root)
    m = tcp_mount(root)
    top = os.path.join(m.path, "d")
    fhlib.run_cmd(["ls", "-l", top])
    with open(os.path.join(top, "f000"), "rb") as f:
        assert f.read() == contents(0)
    assert fhlib.wait_until(lambda: counters(m)[0] == FILES - 1, 10), stats(m)
    # Changed behind the mount after its contents were fetched: once the
    # backend's notice is in (the mount shows the new times), it reads new.
    for name, data in (("f010", b"same size!" + contents(10)[10:]),
                       ("f020", b"longer than before" + contents(20))):
        path = os.path.join(backing, name)
        before = os.stat(os.path.join(top, name))
        with open(path, "r+b") as f:
            f.write(data)
        after = os.stat(path)
        assert after.st_mtime_ns != before.st_mtime_ns
        assert fhlib.wait_until(
            lambda: os.stat(os.path.join(top, name)).st_mtime_ns ==
            after.st_mtime_ns, 10)
        with open(os.path.join(top, name), "rb") as f:
            assert f.read() == data, name
    # Changed through the mount: read as written.
    with open(os.path.join(top, "f030"), "wb") as f:
        f.write(b"written through the mount")
    with open(os.path.join(top, "f030"), "rb") as f:
        assert f.read() == b"written through the mount"
    # The rest still comes from what was fetched.
    got = read_all(top)
    assert got["f040"] == contents(40)
    assert counters(m)[1] >= FILES - 10, stats(m)


def test_contents_fetched_for_one_user_never_reach_another(mounts, tcp_mount):
    # Readable by their owner only, and the kernel does not check
    # (no_default_permissions, and no POSIX ACLs, which the kernel would
    # check itself): the backend decides who may open them.
    root = mounts.mkdir("ahead_private_backing")
    backing = make_files(root, mode=0o600)
    a, b = mounts.users.a, mounts.users.b
    for n in os.listdir(backing):
        os.chown(os.path.join(backing, n), a.uid, a.gid)
    os.chown(backing, a.uid, a.gid)
    m = tcp_mount(root, "allow_other,insecure,no_default_permissions",
                  ["--acl=false"])
    top = os.path.join(m.path, "d")
    fhlib.run_cmd(["ls", "-l", top])
    first = mounts.ops(a).run([("read_file", os.path.join(top, "f000"))])
    assert not fhlib.is_err(first[0]), first
    assert fhlib.wait_until(lambda: counters(m)[0] == FILES - 1, 10), stats(m)
    # b is refused by the backend, although a's copy is in the daemon.
    other = mounts.ops(b).run([("read_file", os.path.join(top, "f001"))])
    assert other == ["EACCES"], other
    assert counters(m)[1] == 0
    # a gets it from the daemon.
    own = mounts.ops(a).run([("read_file", os.path.join(top, "f001"))])
    assert not fhlib.is_err(own[0]), own
    assert counters(m)[1] == 1, stats(m)
