"""The Python SDK's invalidations (Operations.notify_*): the per-stream
queues, the Invalidations stream over a real gRPC server, and a filesystem
whose files change behind a mount of the session's daemon."""

import os
import socket
import stat
import tempfile
import threading
import time

import grpc
import pytest

from fhlib import wait_until
from pyfhlib import import_fusehost, py_mounts  # noqa: F401  (fixture)
from sdk_dispatch import servicer

fuse = import_fusehost()
from fusehost import _invalidations, _server  # noqa: E402
from fusehost._proto import pb, pb_grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# --- invalidations: the queues -----------------------------------------------

CHANGED, REMOVED, SUBTREE = (_invalidations.CHANGED, _invalidations.REMOVED,
                             _invalidations.SUBTREE)


def test_hub_delivers_to_every_subscriber_in_order_and_drops_without():
    hub = _invalidations.InvalidationHub()
    hub.publish(CHANGED, "/before")  # nobody listens: dropped
    first, second = hub.subscribe(), hub.subscribe()
    hub.publish(CHANGED, "/a")
    hub.publish(REMOVED, "/b")
    hub.publish(SUBTREE, "/c")
    for sub in (first, second):
        assert sub.take(1) == [(CHANGED, "/a"), (REMOVED, "/b"),
                               (SUBTREE, "/c")]
    start = time.monotonic()
    assert first.take(0.02) == []  # times out empty
    assert time.monotonic() - start >= 0.015


def test_overflow_collapses_to_a_subtree_notice_for_the_root():
    hub = _invalidations.InvalidationHub()
    small = hub.subscribe(max_queued=3)
    large = hub.subscribe()
    for i in range(3):
        hub.publish(CHANGED, "/%d" % i)
    assert small.take(0) == [(CHANGED, "/0"), (CHANGED, "/1"),
                             (CHANGED, "/2")]
    for i in range(10):
        hub.publish(CHANGED, "/%d" % i)
    assert small.take(0) == [(SUBTREE, "/")]
    # Once the collapsed queue was taken, notices queue normally again.
    hub.publish(REMOVED, "/x")
    assert small.take(0) == [(REMOVED, "/x")]
    # The other subscriber's queue was not touched.
    assert len(large.take(0)) == 14


def test_close_wakes_a_waiting_take_and_unsubscribes():
    hub = _invalidations.InvalidationHub()
    sub = hub.subscribe()
    hub.publish(CHANGED, "/dropped")
    closer = threading.Timer(0.05, sub.close)
    closer.start()
    assert sub.take(0) == [(CHANGED, "/dropped")]
    start = time.monotonic()
    assert sub.take(10) is None
    assert time.monotonic() - start < 5
    closer.join()
    assert hub.subscription_count() == 0
    hub.publish(CHANGED, "/after")
    assert sub.take(0) is None


def test_notify_methods_check_their_paths():
    ops = fuse.Operations()
    ops.notify_changed("/ok")
    ops.notify_removed(b"/bytes")
    ops.notify_subtree_changed(os.fsdecode(b"/caf\xe9"))
    for bad in ("relative", "", b"rel", "/a\0b"):
        with pytest.raises(ValueError):
            ops.notify_changed(bad)
    with pytest.raises(TypeError):
        ops.notify_removed(42)
    # Each object has its own notices.
    assert _invalidations.hub_of(ops) is _invalidations.hub_of(ops)
    assert _invalidations.hub_of(ops) is not \
        _invalidations.hub_of(fuse.Operations())


def test_init_reply_carries_default_ttl():
    class Ttl(fuse.Operations):
        default_ttl = 60

    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == \
        60000
    Ttl.default_ttl = 0.0001  # never 0, which would mean the daemon's
    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == 1
    Ttl.default_ttl = float("inf")
    assert servicer(Ttl()).Init(pb.InitRequest(), None).default_ttl_ms == \
        (1 << 32) - 1
    assert servicer(fuse.Operations()).Init(
        pb.InitRequest(), None).default_ttl_ms == 0
    for bad in ("60", -1, float("nan"), True):
        Ttl.default_ttl = bad
        with pytest.raises(ValueError):
            servicer(Ttl())


def test_worker_pool_grows_for_long_calls():
    from fusehost._workers import Workers
    pool = Workers(1, "test")
    second_ran = threading.Event()

    def stream():
        with pool.long_call():
            # With the pool's only thread here, another call still runs.
            return second_ran.wait(10)

    first = pool.submit(stream)
    second = pool.submit(second_ran.set)
    assert first.result(20) is True
    second.result(1)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(print)


# --- invalidations: the stream over gRPC -------------------------------------

@pytest.fixture
def grpc_backend():
    """Serves a filesystem on a Unix socket with one operation thread (so
    the pool has 3 threads for calls); yields (fs, servicer, server, stub).
    """
    class Fs(fuse.Operations):
        use_ns = True

    fs = Fs()
    s = servicer(fs, threads=1)
    d = tempfile.mkdtemp(prefix="fusehost-test-")
    address = "unix:" + os.path.join(d, "backend.sock")
    server = _server.start_server(s, address)
    channel = grpc.insecure_channel(address)
    # The client watches its connection, as the daemon does. A stopping
    # server waits for its client to take in the GOAWAY it sends, and a
    # grpcio channel with no call in flight reads its socket only when its
    # backup poller runs, every 5 s: a stop would then seem to take 5 s.
    channel.subscribe(lambda state: None)
    try:
        yield fs, s, server, pb_grpc.FileSystemStub(channel)
    finally:
        channel.close()
        _server.stop_server(server, s, grace=0)
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


def open_streams(stub, fs, n):
    # The deadline keeps a missing notice from hanging the test.
    streams = [stub.Invalidations(pb.InvalidationsRequest(mount_id=i),
                                  timeout=20)
               for i in range(n)]
    for st in streams:
        st.initial_metadata()  # sent as soon as the stream is subscribed
    assert _invalidations.hub_of(fs).subscription_count() == n
    return streams


def read_notices(stream, n):
    return [(x.kind, x.path) for x in (next(stream) for _ in range(n))]


def test_every_stream_gets_notices_in_order(grpc_backend):
    fs, _, _, stub = grpc_backend
    fs.notify_changed("/dropped")  # no stream yet
    first, second = open_streams(stub, fs, 2)
    fs.notify_changed("/a")
    fs.notify_removed(b"/b")
    fs.notify_subtree_changed(os.fsdecode(b"/caf\xe9"))
    for i in range(500):  # a burst keeps its order
        fs.notify_changed("/f%d" % i)
    expected = [(CHANGED, b"/a"), (REMOVED, b"/b"), (SUBTREE, b"/caf\xe9")] + \
        [(CHANGED, b"/f%d" % i) for i in range(500)]
    assert read_notices(first, 503) == expected
    assert read_notices(second, 503) == expected
    # A stream the daemon gave up no longer gets notices; the other does.
    first.cancel()
    assert wait_until(
        lambda: _invalidations.hub_of(fs).subscription_count() == 1, 5)
    fs.notify_changed("/z")
    assert read_notices(second, 1) == [(CHANGED, b"/z")]


def test_streams_do_not_take_threads_from_operations(grpc_backend):
    fs, _, _, stub = grpc_backend
    # More streams than the pool's 3 threads: all open at once, and
    # operations still run.
    streams = open_streams(stub, fs, 6)
    batch = pb.Batch(mount_id=1, ops=[
        pb.Op(id=i, getattr=pb.GetattrRequest(path=b"/")) for i in range(3)])
    for _ in range(3):
        reply = stub.Execute(batch, timeout=5)
        assert [r.getattr.attr.mode for r in reply.results] == \
            [stat.S_IFDIR | 0o755] * 3
    fs.notify_changed("/x")
    for st in streams:
        assert read_notices(st, 1) == [(CHANGED, b"/x")]


def test_stopping_the_server_ends_streams_at_once(grpc_backend):
    fs, s, server, stub = grpc_backend
    streams = open_streams(stub, fs, 2)
    start = time.monotonic()
    _server.stop_server(server, s, grace=10)
    assert time.monotonic() - start < 2
    for st in streams:
        with pytest.raises(grpc.RpcError) as e:
            next(st)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _invalidations.hub_of(fs).subscription_count() == 0


# --- invalidations: through the daemon ---------------------------------------

def control(path, request):
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(path)
        c.sendall(request.encode() + b"\n")
        answer = c.makefile().readline().strip()
    assert not answer.startswith("error"), (request, answer)
    return answer


def changed_at(ctl, request):
    """Makes the change; returns when its notice went out (monotonic)."""
    return float(control(ctl, request).split()[1])


def within(seconds, since, pred):
    """Polls pred until it holds; asserts that it did within `seconds` of
    `since` (a time.monotonic())."""
    while not pred():
        assert time.monotonic() - since < seconds, \
            "not visible %.0f ms after the notice" % (seconds * 1000)
        time.sleep(0.002)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_notices_reach_the_mount_despite_a_long_ttl(py_mounts):
    mp = py_mounts.mountpoint()
    ctl = py_mounts.path("notify.ctl")
    p = py_mounts.python([os.path.join(HERE, "notifying_fs.py"), mp, ctl],
                         mountpoint=mp, name="notify")
    # The daemon opens the stream once mounted; notices before reach nobody.
    assert wait_until(lambda: control(ctl, "streams") == "1", 10), \
        p.output()
    f, g, h = (os.path.join(mp, n) for n in "fgh")
    assert read(f) == b"one" and os.stat(g).st_size == 6
    assert sorted(os.listdir(mp)) == ["f", "g"]
    assert not os.path.exists(h)

    # Without a notice the old attributes stay, beyond the daemon's 1 s
    # default: default_ttl (60 s) reached the daemon and the kernel.
    control(ctl, "quiet /f four")
    time.sleep(1.5)
    assert os.stat(f).st_size == 3

    sent = changed_at(ctl, "set /f changed")
    within(0.1, sent, lambda: os.stat(f).st_size == 7)
    assert read(f) == b"changed"

    sent = changed_at(ctl, "remove /g")
    within(0.1, sent, lambda: not os.path.exists(g))
    with pytest.raises(FileNotFoundError):
        os.stat(g)

    # A new name: its absence and the root's listing were cached.
    sent = changed_at(ctl, "set /h new")
    within(0.1, sent, lambda: os.path.exists(h))
    assert sorted(os.listdir(mp)) == ["f", "h"]
    assert read(h) == b"new"

    # Unmounting ends the stream and FUSE() returns.
    py_mounts.daemon.unmount(mp).check()
    assert p.wait(20) == 0, p.output()
