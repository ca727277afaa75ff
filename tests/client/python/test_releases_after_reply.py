"""Releases that come with other ops (InitReply.releases_after_reply in
proto/filesystem.proto): the daemon sends a release, which nothing waits
for, in the next message that goes out; the Python SDK answers it at once
and runs it on a helper after, so that the other ops' reply never waits for
it. Alone, in a batch to run in order, or with nothreads, a release runs
before the reply, and a nothreads filesystem says it does not detach them.

Through the servicer's Execute, as the daemon's batches go (nothing is
mounted). Needs `bazel build //...`; runs as any user.
"""

import threading

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class Gated(fusehost.Operations):
    """release waits for `gate`; `released` counts the releases done."""

    use_ns = True

    def __init__(self):
        self.gate = threading.Event()
        self.released = 0
        self.done = threading.Condition()

    def getattr(self, path, fh=None):
        return {"st_mode": 0o100644, "st_nlink": 1}

    def open(self, path, flags):
        return 7

    def release(self, path, fh):
        self.gate.wait(30)
        with self.done:
            self.released += 1
            self.done.notify_all()
        return 0


def _servicer(fs, **options):
    return _server.make_backend(fs, options=_server.backend_options(options))


def _op(op_id, **kind):
    return pb.Op(id=op_id, **kind)


def _release(op_id):
    return _op(op_id, release=pb.ReleaseRequest(path=b"/f", fh=7))


def _getattr(op_id):
    return _op(op_id, getattr=pb.GetattrRequest(path=b"/f"))


def test_a_release_among_other_ops_does_not_hold_their_reply():
    fs = Gated()
    servicer = _servicer(fs)
    try:
        init = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert init.releases_after_reply
        result = servicer.Execute(
            pb.Batch(mount_id=1, ops=[_getattr(1), _release(2)]), None)
        # Answered while the release still waits for its gate.
        assert sorted((r.id, r.posix_errno) for r in result.results) == [
            (1, 0), (2, 0)]
        assert fs.released == 0
        fs.gate.set()
        with fs.done:
            assert fs.done.wait_for(lambda: fs.released == 1, 10)
    finally:
        fs.gate.set()
        servicer.shutdown()


def test_alone_or_in_order_a_release_runs_before_the_reply():
    fs = Gated()
    fs.gate.set()
    servicer = _servicer(fs)
    try:
        servicer.Execute(pb.Batch(mount_id=1, ops=[_release(1)]), None)
        assert fs.released == 1
        servicer.Execute(pb.Batch(mount_id=1, in_order=True,
                                  ops=[_release(2), _getattr(3)]), None)
        assert fs.released == 2
    finally:
        servicer.shutdown()


def test_nothreads_runs_releases_before_the_reply_and_says_so():
    fs = Gated()
    fs.gate.set()
    servicer = _servicer(fs, nothreads=True)
    try:
        init = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert not init.releases_after_reply
        servicer.Execute(pb.Batch(mount_id=1, ops=[_getattr(1), _release(2)]),
                         None)
        assert fs.released == 1
    finally:
        servicer.shutdown()
