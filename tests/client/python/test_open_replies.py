"""What a Python filesystem's open replies tell the daemon beyond the
handle (proto/filesystem.proto, OpenReply):

- noflush, when flush provably does nothing (not implemented, or a method
  whose code only returns 0 or None) and the filesystem keeps no POSIX
  locks: the kernel then sends no FLUSH on close;
- contents, when the daemon asks for a small file whole
  (OpenRequest.contents_up_to) on a read-only open: one read of up to that
  many bytes plus one, sent when fewer came back.

Each call goes through the servicer, as the daemon's do (nothing is
mounted). Needs `bazel build //...`; runs as any user.
"""

import os

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class _Files(fusehost.Operations):
    """Files named by their contents' length ("/5" holds 5 bytes); records
    the reads it gets."""

    use_ns = True

    def __init__(self):
        self.reads = []

    def getattr(self, path, fh=None):
        return {"st_mode": 0o100644, "st_nlink": 1,
                "st_size": int(path[1:])}

    def open(self, path, flags):
        return 7

    def read(self, path, size, offset, fh):
        self.reads.append((path, size, offset, fh))
        return b"x" * max(0, min(size, int(path[1:]) - offset))


class _FlushReturnsZero(_Files):
    def flush(self, path, fh):
        """As the loopback examples of fusepy and mfusepy have it."""
        return 0


class _FlushSyncs(_Files):
    def flush(self, path, fh):
        return os.fsync(fh)


class _Locking(_FlushReturnsZero):
    def lock(self, path, fh, cmd, lock):
        return 0


def _call(fs, *ops):
    servicer = _server.make_backend(fs, options=_server.backend_options({}))
    try:
        assert servicer.Init(pb.InitRequest(mount_id=1), None).posix_errno == 0
        batch = pb.Batch(mount_id=1, in_order=True, ops=[
            pb.Op(id=i + 1, **op) for i, op in enumerate(ops)])
        return list(servicer.Execute(batch, None).results)
    finally:
        servicer.shutdown()


def _open(path, flags=os.O_RDONLY, up_to=0):
    return {"open": pb.OpenRequest(path=path, flags=flags,
                                   contents_up_to=up_to)}


def test_a_flush_that_does_nothing_is_not_asked_for():
    for fs in (_Files(), _FlushReturnsZero()):
        [opened] = _call(fs, _open(b"/5"))
        assert opened.posix_errno == 0
        assert opened.open.noflush, type(fs).__name__


def test_a_flush_that_does_something_is():
    [opened] = _call(_FlushSyncs(), _open(b"/5"))
    assert not opened.open.noflush


def test_a_filesystem_keeping_posix_locks_gets_its_flushes():
    # The kernel's FLUSH is where a closer's locks are released.
    [opened] = _call(_Locking(), _open(b"/5"))
    assert not opened.open.noflush


def test_a_created_file_says_the_same():
    class Creating(_FlushReturnsZero):
        def create(self, path, mode, fi=None):
            return 9
    [created] = _call(Creating(), {"create": pb.CreateRequest(
        path=b"/0", mode=0o644, flags=os.O_WRONLY)})
    assert created.posix_errno == 0
    assert created.create.open.noflush


def test_a_small_file_comes_whole_with_its_open_when_asked():
    fs = _Files()
    [opened] = _call(fs, _open(b"/5", up_to=100))
    assert opened.open.HasField("contents")
    assert opened.open.contents == b"xxxxx"
    assert fs.reads == [("/5", 101, 0, 7)]


def test_a_file_larger_than_asked_for_is_left_to_the_reads():
    # The daemon's cached size was stale: the file grew.
    fs = _Files()
    [opened] = _call(fs, _open(b"/200", up_to=100))
    assert opened.posix_errno == 0
    assert not opened.open.HasField("contents")
    assert fs.reads == [("/200", 101, 0, 7)]


def test_contents_are_read_only_when_asked_for_and_read_only():
    fs = _Files()
    results = _call(fs, _open(b"/5"), _open(b"/5", os.O_RDWR, up_to=100),
                    _open(b"/5", os.O_WRONLY, up_to=100))
    assert [r.posix_errno for r in results] == [0, 0, 0]
    assert not any(r.open.HasField("contents") for r in results)
    assert fs.reads == []


def test_a_failing_read_at_open_leaves_the_open_alone():
    class Failing(_Files):
        def read(self, path, size, offset, fh):
            raise fusehost.FuseOSError(5)
    [opened] = _call(Failing(), _open(b"/5", up_to=100))
    assert opened.posix_errno == 0
    assert opened.open.fh == 7
    assert not opened.open.HasField("contents")


def test_direct_io_files_are_never_read_at_open():
    fs = _Files()
    servicer_opts = _server.backend_options({"direct_io": True})
    servicer = _server.make_backend(fs, options=servicer_opts)
    try:
        servicer.Init(pb.InitRequest(mount_id=1), None)
        [opened] = servicer.Execute(pb.Batch(mount_id=1, ops=[
            pb.Op(id=1, **_open(b"/5", up_to=100))]), None).results
    finally:
        servicer.shutdown()
    assert opened.open.direct_io
    assert not opened.open.HasField("contents")
    assert fs.reads == []
