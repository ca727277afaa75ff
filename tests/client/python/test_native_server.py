"""The Python SDK's server on gRPC's C++ server (_native.py and the
_native_server extension), called over a real Unix socket with grpcio's
client, as the daemon calls it: the handshake, batches, the notice stream
(its headers sent before any notice, notices delivered, ended by the
server's stop), the Session stream (each batch answered as Execute answers
it, with its sequence, several at once), a handler's exception as INTERNAL
(on the stream: a result without op results), the socket's mode, and
FUSEHOST_NATIVE_SERVER=0 choosing grpcio's server, whose Init does not
offer Session.

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
        reply = s.stub.Init(pb.InitRequest(mount_id=1), timeout=10)
        assert reply.posix_errno == 0
        # grpcio's server has no Session: Init must not offer it.
        assert not reply.serves_session
        with pytest.raises(grpc.RpcError) as e:
            list(s.stub.Session(iter([pb.Batch(mount_id=1, sequence=1)]),
                                timeout=10))
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        s.close()


# --- the Session stream -------------------------------------------------------

def _getattrs(mount_id, sequence, paths):
    return pb.Batch(mount_id=mount_id, sequence=sequence, ops=[
        pb.Op(id=i + 1, getattr=pb.GetattrRequest(path=p))
        for i, p in enumerate(paths)])


def test_init_offers_session(served):
    assert served.stub.Init(pb.InitRequest(mount_id=1),
                            timeout=10).serves_session


def test_session_answers_each_batch_as_execute_with_its_sequence(served):
    sequences = list(range(1, 40)) + [128, 1 << 35, (1 << 64) - 1]
    batches = [_getattrs(3, q, [b"/a", b"/b%d" % q]) for q in sequences]
    results = list(served.stub.Session(iter(batches), timeout=30))
    assert sorted(r.sequence for r in results) == sorted(sequences)
    for r in results:
        assert sorted(o.id for o in r.results) == [1, 2]
        assert all(o.getattr.attr.size == 6 for o in r.results)
        # What Execute answers, but for the sequence.
        direct = served.stub.Execute(_getattrs(3, 0, [b"/a", b"/b"]),
                                     timeout=10)
        r.sequence = 0
        assert r == direct


def test_session_runs_batches_at_once():
    """Batches of one stream do not wait for each other: three that each
    wait until all three run are answered."""
    met = threading.Barrier(3, timeout=10)

    def meeting(servicer):
        execute = servicer.Execute

        def execute_together(batch, context):
            met.wait()
            return execute(batch, context)
        servicer.Execute = execute_together
    s = _Served(meeting)
    try:
        batches = [_getattrs(1, q, [b"/x"]) for q in (1, 2, 3)]
        results = list(s.stub.Session(iter(batches), timeout=30))
        assert sorted(r.sequence for r in results) == [1, 2, 3]
        assert all(len(r.results) == 1 for r in results)
    finally:
        s.close()


def test_a_batch_that_raises_is_answered_without_results_alone(capfd):
    def broken(servicer):
        execute = servicer.Execute

        def execute_unless_mount_9(batch, context):
            if batch.mount_id == 9:
                raise ZeroDivisionError("no batch today")
            return execute(batch, context)
        servicer.Execute = execute_unless_mount_9
    s = _Served(broken)
    try:
        batches = [_getattrs(9, 1, [b"/x"]), _getattrs(1, 2, [b"/y"])]
        results = {r.sequence: r
                   for r in s.stub.Session(iter(batches), timeout=30)}
        assert sorted(results) == [1, 2]
        assert len(results[1].results) == 0 and results[1].instance == 0
        assert len(results[2].results) == 1
        assert "no batch today" in capfd.readouterr().err
    finally:
        s.close()


def test_bytes_that_are_no_batch_end_the_session(served):
    raw = served.channel.stream_stream(
        "/fusehost.v1.FileSystem/Session",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    good = _getattrs(1, 5, [b"/x"]).SerializeToString()
    # A truncated field (length 9, one byte follows).
    with pytest.raises(grpc.RpcError) as e:
        list(raw(iter([good, b"\x5a\x09\x01"]), timeout=30))
    assert e.value.code() == grpc.StatusCode.CANCELLED
    # The server goes on.
    assert served.stub.Init(pb.InitRequest(mount_id=1),
                            timeout=10).posix_errno == 0


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
