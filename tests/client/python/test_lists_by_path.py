"""Listing by path (InitReply.lists_by_path in proto/filesystem.proto): a
filesystem without opendir and releasedir is listed with a readdir alone,
which gets handle 0 as it always did; one that opens its directories says
no, so that the daemon keeps calling opendir and releasedir.

Each call goes through the servicer, as the daemon's do (nothing is
mounted). Needs `bazel build //...`; runs as any user.
"""

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class _Names(fusehost.Operations):
    """A directory of two names, listed without being opened."""

    use_ns = True

    def __init__(self):
        self.handles = []

    def getattr(self, path, fh=None):
        return {"st_mode": 0o40755, "st_nlink": 2}

    def readdir(self, path, fh):
        self.handles.append(fh)
        return [".", "..", "a", "b"]


class _Opening(_Names):
    """The same, with a handle from opendir."""

    def opendir(self, path):
        return 42

    def releasedir(self, path, fh):
        return 0


class _OnlyReleasing(_Names):
    def releasedir(self, path, fh):
        return 0


def _init(fs):
    servicer = _server.make_backend(fs, options=_server.backend_options({}))
    try:
        reply = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert reply.posix_errno == 0
        batch = pb.Batch(mount_id=1, ops=[
            pb.Op(id=1, readdir=pb.ReaddirRequest(path=b"/"))])
        result = servicer.Execute(batch, None)
        return reply, result.results[0]
    finally:
        servicer.shutdown()


def test_a_filesystem_without_opendir_lists_by_path():
    fs = _Names()
    reply, listed = _init(fs)
    assert reply.lists_by_path
    assert listed.posix_errno == 0
    assert [e.name for e in listed.readdir.entries
            if e.name not in (b".", b"..")] == [b"a", b"b"]
    assert listed.readdir.eof
    assert fs.handles == [0]


def test_a_filesystem_that_opens_its_directories_does_not():
    reply, _ = _init(_Opening())
    assert not reply.lists_by_path


def test_a_filesystem_with_releasedir_alone_does_not_either():
    reply, _ = _init(_OnlyReleasing())
    assert not reply.lists_by_path
