"""The Python SDK's server on gRPC's C++ server (_native.py and the
_native_server extension), called over a real Unix socket with grpcio's
client, as the daemon calls it: the handshake, batches, the notice stream
(its headers sent before any notice, notices delivered, ended by the
server's stop), a handler's exception as INTERNAL, the socket's mode, and
FUSEHOST_NATIVE_SERVER=0 choosing grpcio's server.

Needs `bazel build //...`; runs as any user.
"""

import os
import stat
import tempfile
import threading
import time

import grpc
import pytest

import fusehost  # the package, on the path by conftest.py
from fusehost import _native, _server
from fusehost._proto import pb, pb_grpc


class _Hello(fusehost.Operations):
    use_ns = True

    def getattr(self, path, fh=None):
        if path == "/boom":
            raise RuntimeError("not an OSError")
        return {"st_mode": 0o100644, "st_nlink": 1, "st_size": 6}


class _Served:
    """A filesystem served on the C++ server, and a client of it."""

    def __init__(self, patch=None):
        self.fs = _Hello()
        self.servicer = _server.make_backend(
            self.fs, options=_server.backend_options({}))
        if patch is not None:
            patch(self.servicer)
        self.dir = tempfile.mkdtemp()
        self.sock = os.path.join(self.dir, "b.sock")
        self.server = _server.start_server(self.servicer, "unix:" + self.sock)
        self.channel = grpc.insecure_channel("unix:" + self.sock)
        self.stub = pb_grpc.FileSystemStub(self.channel)

    def close(self):
        self.channel.close()
        _server.stop_server(self.server, self.servicer, grace=1)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        os.rmdir(self.dir)


@pytest.fixture
def served():
    assert _native.available(), "the _native_server extension did not load"
    s = _Served()
    try:
        yield s
    finally:
        s.close()


def test_it_runs_on_the_cpp_server(served):
    assert isinstance(served.server, _native.NativeServer)


def test_the_socket_is_the_owners_only(served):
    mode = stat.S_IMODE(os.stat(served.sock).st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_init_and_a_batch_answer_as_the_servicer_does(served):
    stub = served.stub
    reply = stub.Init(pb.InitRequest(mount_id=3), timeout=10)
    assert reply.posix_errno == 0 and reply.protocol_version == 1
    result = stub.Execute(pb.Batch(mount_id=3, ops=[
        pb.Op(id=1, getattr=pb.GetattrRequest(path=b"/a")),
        pb.Op(id=2, getattr=pb.GetattrRequest(path=b"/b"))]), timeout=10)
    assert result.instance == reply.instance
    assert sorted(r.id for r in result.results) == [1, 2]
    assert all(r.getattr.attr.size == 6 for r in result.results)
    stub.Destroy(pb.DestroyRequest(mount_id=3), timeout=10)


def test_an_exception_out_of_the_servicer_fails_the_call_alone():
    def broken(servicer):
        def execute(batch, context):
            raise ZeroDivisionError("no batch today")
        servicer.Execute = execute
    s = _Served(broken)
    try:
        with pytest.raises(grpc.RpcError) as e:
            s.stub.Execute(pb.Batch(mount_id=1), timeout=10)
        assert e.value.code() == grpc.StatusCode.INTERNAL
        assert "no batch today" in e.value.details()
        assert s.stub.Init(pb.InitRequest(mount_id=1),
                           timeout=10).posix_errno == 0
    finally:
        s.close()


def test_notices_stream_after_their_headers(served):
    call = served.stub.Invalidations(pb.InvalidationsRequest(mount_id=5))
    # The headers come before any notice: from then on nothing is missed.
    call.initial_metadata()
    served.fs.notify_changed("/hello")
    first = next(call)
    assert first.kind == pb.Invalidation.CHANGED and first.path == b"/hello"
    call.cancel()


def test_ending_the_streams_ends_them_unavailable(served):
    call = served.stub.Invalidations(pb.InvalidationsRequest(mount_id=6))
    call.initial_metadata()
    # What stop_server does first: the daemon then reopens its stream
    # against the next server.
    served.servicer.end_streams()
    with pytest.raises(grpc.RpcError) as e:
        next(call)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_environment_can_ask_for_grpcios_server(monkeypatch):
    monkeypatch.setenv("FUSEHOST_NATIVE_SERVER", "0")
    s = _Served()
    try:
        assert not isinstance(s.server, _native.NativeServer)
        assert s.stub.Init(pb.InitRequest(mount_id=1),
                           timeout=10).posix_errno == 0
    finally:
        s.close()


def test_stopping_gives_up_on_a_call_that_never_ends():
    """A filesystem operation stuck for good must not keep the process
    from stopping (grpcio's server gives up after its grace too)."""
    stuck = threading.Event()
    release = threading.Event()

    def stalling(servicer):
        def execute(batch, context):
            stuck.set()
            release.wait(60)
            return pb.BatchResult()
        servicer.Execute = execute
    s = _Served(stalling)
    call = s.stub.Execute.future(pb.Batch(mount_id=1), timeout=30)
    try:
        assert stuck.wait(10)
        handle = s.server._handle
        started = time.monotonic()
        assert _native._native_server.stop(handle, 0.1, 0.5) is False
        assert time.monotonic() - started < 5
    finally:
        release.set()
        call.cancel()
        s.close()
