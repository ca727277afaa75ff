"""Runs the ops of one Batch, concurrently, into one BatchResult.

The protocol lets a backend run a batch's ops in any order (the daemon only
batches ops whose order does not matter). The thread that received the
batch runs ops itself, together with helper threads that claim ops one at a
time, so one slow op (a network call) does not hold up the rest, and cheap
ops never wait for a thread switch. Results keep the ops' order, each in a
slot made before any thread writes one.

A batch with `in_order` (changes the daemon answered early and sends after
their answer, which must reach the filesystem as they were made) runs on
the receiving thread alone, one op after the other in the order given, each
whatever the previous one's result (InitReply.runs_batches_in_order says
this SDK does so).

Threads: BatchRunner.execute may be called from any number of threads at
once (gRPC's handler threads); helpers come from one shared pool of
`threads`. With `nothreads` (mfusepy's nothreads=True) everything runs on
the calling thread, one op at a time.
"""

import itertools
import threading
from concurrent import futures

from ._proto import pb


class _BatchJob:
    """The ops of one batch, claimed one at a time by the receiving thread
    and helpers; `wait` returns when every op has finished (whoever ran it),
    never waiting for a helper that has not started."""

    def __init__(self, run, ops, slots, mount_id):
        self._run = run
        self._ops = ops
        self._slots = slots
        self._mount_id = mount_id
        self._n = len(slots)
        self._next = itertools.count().__next__
        self._left = self._n
        self._lock = threading.Lock()
        self._done = threading.Event()

    def drain(self):
        n = self._n
        while True:
            i = self._next()
            if i >= n:
                return
            self._run(self._ops[i], self._slots[i], self._mount_id)
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._done.set()

    def wait(self):
        self._done.wait()


class BatchRunner:
    """Runs batches with Dispatcher `dispatcher` (its run(op, result,
    mount_id) answers one op)."""

    def __init__(self, dispatcher, threads, serial):
        self._run = dispatcher.run
        self._instance = dispatcher.instance
        self._serial = serial
        self._helper_count = 0 if serial else threads
        self._helpers = None if serial else futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="fusehost-helper")

    def execute(self, batch):
        """The BatchResult of `batch`: one result per op (matched by id),
        and the backend instance."""
        reply = pb.BatchResult(instance=self._instance)
        results = reply.results
        run = self._run
        mount_id = batch.mount_id
        ops = batch.ops
        if self._serial or batch.in_order:
            # nothreads, or ops that must run one after the other in the
            # order given (a failed op does not stop the rest: run()
            # answers every op, whatever it raises).
            for op in ops:
                run(op, results.add(), mount_id)
            return reply
        if len(ops) > 1:
            ops = self._detach_releases(ops, results, mount_id)
        n = len(ops)
        if n <= 1:
            # No hand-off for a lone op.
            for op in ops:
                run(op, results.add(), mount_id)
            return reply
        # Every slot exists before any thread writes one.
        slots = [results.add() for _ in range(n)]
        job = _BatchJob(run, ops, slots, mount_id)
        for _ in range(min(n - 1, self._helper_count)):
            self._helpers.submit(job.drain)
        job.drain()
        job.wait()
        return reply

    def _detach_releases(self, ops, results, mount_id):
        """Answers the releases among `ops` at once and runs them on a
        helper after (InitReply.releases_after_reply): the daemon sends
        releases, which nothing waits for, with later ops, whose reply must
        not wait for them. Returns the other ops."""
        rest = []
        instance = self._instance
        for op in ops:
            kind = op.WhichOneof("op")
            # One with another instance's handle is answered EBADF as usual.
            if (kind == "release" or kind == "releasedir") and (
                    not op.handle_instance or op.handle_instance == instance):
                results.add().id = op.id
                self._helpers.submit(self._run, op, pb.OpResult(), mount_id)
            else:
                rest.append(op)
        return rest

    def shutdown(self):
        """Lets the helper threads go (batches still running finish)."""
        if self._helpers is not None:
            self._helpers.shutdown(wait=False)
