"""Batches the daemon asks to run in order (Batch.in_order in
proto/filesystem.proto): the Python SDK runs their ops one after the other,
in the order given, each whatever the previous one's result, and says so in
its InitReply (runs_batches_in_order). Other batches still run their ops
concurrently, on the SDK's helper threads.

Each batch goes through the servicer's Execute, as the daemon's batches do
(nothing is mounted). Needs `bazel build //...`; runs as any user.
"""

import errno
import threading
import time

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb

_SET = pb.TimeSet.SET
_FILE = {"st_mode": 0o100644, "st_nlink": 1, "st_mtime": 5, "st_atime": 5,
         "st_ctime": 5}
# How long each recorded change takes: long enough that ops run
# concurrently would overlap.
_SLOW = 0.05


class Recording(fusehost.Operations):
    """Records when each change starts and ends; each takes _SLOW seconds.
    `failing` names the operations that fail with EPERM (after their
    time)."""

    use_ns = True

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.events = []
        self._lock = threading.Lock()
        self._running = 0
        self.overlapped = False

    def getattr(self, path, fh=None):
        return dict(_FILE)

    def _change(self, name, path):
        with self._lock:
            self._running += 1
            self.overlapped |= self._running > 1
            self.events.append(("start", name, path))
        time.sleep(_SLOW)
        with self._lock:
            self._running -= 1
            self.events.append(("end", name, path))
        if name in self.failing:
            raise fusehost.FuseOSError(errno.EPERM)
        return 0

    def chmod(self, path, mode):
        return self._change("chmod", path)

    def chown(self, path, uid, gid):
        return self._change("chown", path)

    def utimens(self, path, times=None):
        return self._change("utimens", path)


def _chmod(op, path):
    op.chmod.path = path
    op.chmod.mode = 0o600


def _chown(op, path):
    op.chown.path = path
    op.chown.uid = 1000


def _utimens(op, path):
    op.utimens.path = path
    op.utimens.atime.kind = op.utimens.mtime.kind = _SET
    op.utimens.atime.time.sec = op.utimens.mtime.time.sec = 7


_FILL = {"chmod": _chmod, "chown": _chown, "utimens": _utimens}


def _execute(ops, names, in_order, path=b"/f", threads=8):
    """The results of one batch of `names` ops on `path` (ids 1, 2, ...),
    sent to a fresh servicer of `ops` with `threads` helpers."""
    servicer = _server.make_backend(
        ops, options=_server.backend_options({"threads": threads}),
        instance=5)
    try:
        batch = pb.Batch(mount_id=1, in_order=in_order)
        for i, name in enumerate(names, 1):
            _FILL[name](batch.ops.add(id=i), path)
        return list(servicer.Execute(batch, None).results)
    finally:
        servicer.shutdown()


def _sequential(names, path="/f"):
    events = []
    for name in names:
        events += [("start", name, path), ("end", name, path)]
    return events


def test_in_order_ops_run_one_after_the_other_in_the_order_given():
    for names in (["chmod", "chown", "utimens"],
                  ["utimens", "chown", "chmod"]):
        fs = Recording()
        results = _execute(fs, names, in_order=True)
        assert fs.events == _sequential(names)
        assert not fs.overlapped
        assert [r.id for r in results] == [1, 2, 3]
        assert [r.posix_errno for r in results] == [0, 0, 0]
        assert all(r.HasField("entry") for r in results)


def test_a_failed_op_does_not_stop_the_rest_of_an_in_order_batch():
    fs = Recording(failing={"chown"})
    names = ["chmod", "chown", "utimens"]
    results = _execute(fs, names, in_order=True)
    assert fs.events == _sequential(names)
    assert not fs.overlapped
    assert [(r.id, r.posix_errno) for r in results] == [
        (1, 0), (2, errno.EPERM), (3, 0)]
    assert results[0].HasField("entry") and results[2].HasField("entry")
    assert results[1].WhichOneof("result") is None


def test_the_first_and_last_op_failing_do_not_stop_an_in_order_batch():
    fs = Recording(failing={"chmod", "utimens"})
    names = ["chmod", "chown", "utimens"]
    results = _execute(fs, names, in_order=True)
    assert fs.events == _sequential(names)
    assert [r.posix_errno for r in results] == [errno.EPERM, 0, errno.EPERM]


def test_in_order_holds_with_a_single_helper_thread_too():
    fs = Recording(failing={"chown"})
    names = ["chmod", "chown", "utimens", "chmod"]
    results = _execute(fs, names, in_order=True, threads=1)
    assert fs.events == _sequential(names)
    assert [r.posix_errno for r in results] == [0, errno.EPERM, 0, 0]


class Meeting(Recording):
    """Each change waits until all of a batch's three changes run at once:
    a batch passes only if its ops run concurrently."""

    def __init__(self):
        super().__init__()
        self.barrier = threading.Barrier(3, timeout=10)

    def _change(self, name, path):
        self.barrier.wait()
        return super()._change(name, path)


def test_a_batch_without_in_order_still_runs_its_ops_concurrently():
    fs = Meeting()
    results = _execute(fs, ["chmod", "chown", "utimens"], in_order=False)
    assert [(r.id, r.posix_errno) for r in results] == [(1, 0), (2, 0), (3, 0)]
    assert fs.overlapped
    assert not fs.barrier.broken


def test_init_reply_says_batches_run_in_order():
    servicer = _server.make_backend(
        Recording(), options=_server.backend_options({}), instance=5)
    try:
        reply = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert reply.posix_errno == 0
        assert reply.runs_batches_in_order
    finally:
        servicer.shutdown()


class Files(fusehost.Operations):
    """Files in memory by handle: create hands out the next handle, write
    and release act on the one they are given."""

    use_ns = True

    def __init__(self, refuse_create=False):
        self.refuse_create = refuse_create
        self.data = {}       # path -> bytes
        self.open = {}       # fh -> path
        self.calls = []
        self._next = 40

    def getattr(self, path, fh=None):
        return dict(_FILE)

    def create(self, path, mode, fi=None):
        if self.refuse_create:
            raise fusehost.FuseOSError(errno.EEXIST)
        self._next += 1
        self.open[self._next] = path
        self.data[path] = b""
        self.calls.append(("create", path, self._next))
        return self._next

    def write(self, path, data, offset, fh):
        self.calls.append(("write", path, fh))
        target = self.open[fh]
        self.data[target] = self.data[target][:offset] + data
        return len(data)

    def release(self, path, fh):
        self.calls.append(("release", path, fh))
        del self.open[fh]
        return 0


def _file_batch(servicer, names, in_order=True):
    """Creates, writes and releases each of `names` in one batch, the writes
    and releases naming their create (fh_from_op)."""
    batch = pb.Batch(mount_id=1, in_order=in_order)
    for name in names:
        path = b"/" + name
        create = batch.ops.add(id=len(batch.ops) + 1)
        create.create.path = path
        create.create.flags = 0o101  # O_WRONLY | O_CREAT
        create.create.mode = 0o100644
        write = batch.ops.add(id=len(batch.ops) + 1, fh_from_op=create.id)
        write.write.path = path
        write.write.data = b"data of " + name
        release = batch.ops.add(id=len(batch.ops) + 1, fh_from_op=create.id)
        release.release.path = path
    return list(servicer.Execute(batch, None).results)


def test_ops_act_on_the_handle_of_the_earlier_create_they_name():
    fs = Files()
    servicer = _server.make_backend(
        fs, options=_server.backend_options({}), instance=5)
    try:
        reply = servicer.Init(pb.InitRequest(mount_id=1), None)
        assert reply.takes_handles_from_earlier_ops
        results = _file_batch(servicer, [b"a", b"b"])
        assert [(r.id, r.posix_errno) for r in results] == [
            (i, 0) for i in range(1, 7)]
        assert results[0].create.open.fh == 41
        assert fs.data == {"/a": b"data of a", "/b": b"data of b"}
        assert fs.calls == [("create", "/a", 41), ("write", "/a", 41),
                            ("release", "/a", 41), ("create", "/b", 42),
                            ("write", "/b", 42), ("release", "/b", 42)]
        assert fs.open == {}
    finally:
        servicer.shutdown()


def test_ops_naming_a_failed_create_or_outside_in_order_fail_ebadf():
    fs = Files(refuse_create=True)
    servicer = _server.make_backend(
        fs, options=_server.backend_options({}), instance=5)
    try:
        results = _file_batch(servicer, [b"a"])
        assert [r.posix_errno for r in results] == [
            errno.EEXIST, errno.EBADF, errno.EBADF]
        assert fs.calls == []
        # Without in_order nothing says the create ran first.
        fs.refuse_create = False
        # (The release is answered at once and runs after: its EBADF is
        # not reported, as no release's is.)
        results = _file_batch(servicer, [b"b"], in_order=False)
        errnos = {r.id: r.posix_errno for r in results}
        assert errnos[1] == 0 and errnos[2] == errno.EBADF
        servicer.shutdown()  # waits for the release
        assert [call[0] for call in fs.calls] == ["create"]
    finally:
        servicer.shutdown()
