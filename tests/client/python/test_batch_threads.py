"""Which threads run a batch's ops (client/python/src/fusehost/_batch.py):
ops of a kind timed cheap run on the thread that received the batch, with
no helper; helpers join a batch whose op blocks, even when that op waits
for another op of the same batch; kinds timed dear get helpers from the
start.

Each batch goes through the servicer's Execute, as the daemon's batches do
(nothing is mounted). Needs `bazel build //...`; runs as any user.
"""

import stat
import threading
import time

import fusehost  # the package, on the path by conftest.py
from fusehost import _batch
from fusehost import _server
from fusehost._proto import pb

_FILE = {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1}


class Threads(fusehost.Operations):
    """getattr records the thread it ran on; `/wait` blocks until `/go` has
    run (at most 10 s), `/slow` takes `slow` seconds."""

    use_ns = True

    def __init__(self, slow=0.0):
        self.slow = slow
        self.threads = []
        self.go = threading.Event()
        self._lock = threading.Lock()

    def getattr(self, path, fh=None):
        with self._lock:
            self.threads.append((path, threading.get_ident()))
        if path == "/wait":
            if not self.go.wait(10):
                raise fusehost.FuseOSError(110)  # ETIMEDOUT
        elif path == "/go":
            self.go.set()
        elif path == "/slow":
            time.sleep(self.slow)
        return dict(_FILE)


def _batch_of(paths):
    batch = pb.Batch(mount_id=1)
    for i, path in enumerate(paths, 1):
        batch.ops.add(id=i).getattr.path = path
    return batch


def _servicer(fs):
    return _server.make_backend(
        fs, options=_server.backend_options({"threads": 8}), instance=5)


def _learn_cheap(servicer, fs):
    """Sends batches of cheap getattrs, which time the kind, until it counts
    as cheap (a first op slowed by a busy machine can leave the moving
    average above CHEAP after one batch); returns the ids of the threads the
    last one ran on."""
    costs = servicer._batches.costs
    for _ in range(50):
        fs.threads.clear()
        servicer.Execute(_batch_of([b"/f%d" % i for i in range(20)]), None)
        if costs._seconds.get("getattr", 1.0) <= _batch.CHEAP:
            break
    assert costs._seconds["getattr"] <= _batch.CHEAP, costs._seconds
    return {t for _, t in fs.threads}


def test_cheap_ops_run_on_the_receiving_thread_alone():
    fs = Threads()
    servicer = _servicer(fs)
    try:
        assert _learn_cheap(servicer, fs) == {threading.get_ident()}
        fs.threads.clear()
        results = servicer.Execute(
            _batch_of([b"/f%d" % i for i in range(50)]), None).results
        assert [(r.id, r.posix_errno) for r in results] == \
            [(i, 0) for i in range(1, 51)]
        assert {t for _, t in fs.threads} == {threading.get_ident()}
    finally:
        servicer.shutdown()


def test_helpers_join_a_cheap_batch_whose_op_waits_for_another_of_it():
    fs = Threads()
    servicer = _servicer(fs)
    try:
        _learn_cheap(servicer, fs)
        fs.threads.clear()
        start = time.monotonic()
        results = servicer.Execute(_batch_of([b"/wait", b"/go"]), None).results
        # The watchdog's two looks, not the 10 s the op would wait alone.
        assert time.monotonic() - start < 5
        assert [(r.id, r.posix_errno) for r in results] == [(1, 0), (2, 0)]
        ran_on = dict(fs.threads)
        assert ran_on["/wait"] == threading.get_ident()
        assert ran_on["/go"] != threading.get_ident()
    finally:
        servicer.shutdown()


def test_after_a_slow_op_the_rest_of_the_batch_and_the_next_get_helpers(
        monkeypatch):
    # No watchdog to call helpers in: only the slow op's time can.
    monkeypatch.setattr(_batch, "PATIENCE", 60.0)
    fs = Threads(slow=3 * _batch.SLOW)
    servicer = _servicer(fs)
    try:
        _learn_cheap(servicer, fs)
        fs.threads.clear()
        results = servicer.Execute(
            _batch_of([b"/slow", b"/wait", b"/go"]), None).results
        assert [r.posix_errno for r in results] == [0, 0, 0]
        # The kind now counts as dear: the next batch has helpers at once.
        fs.go.clear()
        start = time.monotonic()
        results = servicer.Execute(_batch_of([b"/wait", b"/go"]), None).results
        assert [r.posix_errno for r in results] == [0, 0]
        assert time.monotonic() - start < 5
    finally:
        servicer.shutdown()


def test_a_lone_op_runs_on_the_receiving_thread_without_a_job_and_is_timed(
        monkeypatch):
    def no_job(*args):
        raise AssertionError("a batch of one op made a job")

    monkeypatch.setattr(_batch, "_BatchJob", no_job)
    fs = Threads(slow=3 * _batch.SLOW)
    servicer = _servicer(fs)
    try:
        results = servicer.Execute(_batch_of([b"/slow"]), None).results
        assert [(r.id, r.posix_errno) for r in results] == [(1, 0)]
        assert results[0].getattr.attr.mode == _FILE["st_mode"]
        assert [t for _, t in fs.threads] == [threading.get_ident()]
        # Its time counts: the kind is dear now.
        assert not servicer._batches.costs.start_alone({"getattr"})
        # And the turn it held is free again.
        assert servicer._batches.turns.acquire(timeout=1)
        servicer._batches.turns.release()
    finally:
        servicer.shutdown()


def test_init_reply_asks_for_many_ops_together_and_a_big_batch_is_whole():
    fs = Threads()
    servicer = _servicer(fs)
    try:
        reply = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert reply.posix_errno == 0
        assert reply.ops_together == 256
        results = servicer.Execute(
            _batch_of([b"/f%d" % i for i in range(256)]), None).results
        assert [(r.id, r.posix_errno) for r in results] == \
            [(i, 0) for i in range(1, 257)]
        assert all(r.getattr.attr.mode == _FILE["st_mode"] for r in results)
    finally:
        servicer.shutdown()


def test_a_kind_never_timed_starts_alone_and_is_timed():
    fs = Threads()
    servicer = _servicer(fs)
    try:
        servicer.Execute(_batch_of([b"/f%d" % i for i in range(20)]), None)
        assert {t for _, t in fs.threads} == {threading.get_ident()}
        assert servicer._batches.costs.start_alone({"getattr"})
    finally:
        servicer.shutdown()


def test_a_batch_waiting_for_its_turn_runs_beside_one_that_makes_no_progress(
        monkeypatch):
    # No watchdog: only giving up the wait for the turn lets `/go` run.
    monkeypatch.setattr(_batch, "PATIENCE", 60.0)
    fs = Threads()
    servicer = _servicer(fs)
    try:
        _learn_cheap(servicer, fs)
        waited = {}
        holder = threading.Thread(target=lambda: waited.update(
            r=servicer.Execute(_batch_of([b"/wait"]), None).results))
        holder.start()
        while not any(p == "/wait" for p, _ in list(fs.threads)):
            time.sleep(0.001)
        start = time.monotonic()
        results = servicer.Execute(_batch_of([b"/go"]), None).results
        holder.join()
        # TURN_WAIT, not the 10 s `/wait` would block alone.
        assert time.monotonic() - start < 5
        assert [r.posix_errno for r in results] == [0]
        assert [r.posix_errno for r in waited["r"]] == [0]
    finally:
        servicer.shutdown()


def test_the_watchdog_sleeps_while_no_batch_runs_and_wakes_for_the_next(
        monkeypatch):
    monkeypatch.setattr(_batch, "PATIENCE", 0.01)
    monkeypatch.setattr(_batch._Watchdog, "IDLE_LOOKS", 5)
    fs = Threads()
    servicer = _servicer(fs)
    try:
        _learn_cheap(servicer, fs)
        watchdog = servicer._batches.watchdog
        deadline = time.monotonic() + 5
        while not watchdog._asleep and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog._asleep
        looks = watchdog.looks
        time.sleep(0.2)  # 20 looks, were it awake
        assert watchdog.looks == looks
        # A batch whose op waits for another of it is still rescued.
        fs.threads.clear()
        start = time.monotonic()
        results = servicer.Execute(_batch_of([b"/wait", b"/go"]), None).results
        assert time.monotonic() - start < 5
        assert [r.posix_errno for r in results] == [0, 0]
        assert watchdog.looks > looks
    finally:
        servicer.shutdown()
