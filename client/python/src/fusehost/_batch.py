"""Runs the ops of one Batch, concurrently, into one BatchResult.

The protocol lets a backend run a batch's ops in any order (the daemon only
batches ops whose order does not matter). The thread that received the
batch runs ops itself, together with helper threads that claim ops one at a
time, so one slow op (a network call) does not hold up the rest. Results
keep the ops' order, each in a slot made before any thread writes one. A
batch of one op, as every change, open and lookup is sent, needs none of
that: it runs on the receiving thread, in its turn (below).

Helpers cost where ops are cheap: each thread that wakes takes its turn at
the GIL, and a hand-over of the GIL between threads costs tens of
microseconds, more than an lstat. A batch of 200 getattrs of a loopback
took 30 us per op with helpers, 14 without. So a batch starts on the
receiving thread alone, and helpers join as soon as one of its ops takes
longer than SLOW, or a watchdog finds it blocked; only a batch with a kind
of op found dear gets helpers from its start (OpCosts). Batches received
at once by several threads take turns (BatchRunner.turns): two threads
running Python side by side hand the GIL over at every system call of
either.

A batch with `in_order` (changes the daemon answered early and sends after
their answer, which must reach the filesystem as they were made) runs on
the receiving thread alone, one op after the other in the order given, each
whatever the previous one's result (InitReply.runs_batches_in_order says
this SDK does so); an op may name the handle an earlier one returned
(Op.fh_from_op, InitReply.takes_handles_from_earlier_ops).

Threads: BatchRunner.execute may be called from any number of threads at
once (gRPC's handler threads); helpers come from one shared pool of
`threads`. With `nothreads` (mfusepy's nothreads=True) everything runs on
the calling thread, one op at a time.
"""

import errno
import itertools
import threading
import time
from concurrent import futures

from ._proto import pb

# A kind of op that takes less than this on average is cheap: not worth a
# thread hand-over.
CHEAP = 0.0001
# One op that takes longer than this blocks the batch it runs alone in:
# helpers take the rest.
SLOW = 0.001
# How often the watchdog looks at the batches running alone.
PATIENCE = 0.05
# How long a batch of cheap ops waits for another one running alone to
# finish an op, before it runs beside it anyway (that op may be waiting for
# this batch).
TURN_WAIT = 0.01


def _run_in_order(run, ops, results, mount_id):
    """Runs `ops` one after the other. An op with fh_from_op acts on the
    handle the earlier op it names (a create or an open) returned: the
    daemon sends a create it answered early with the writes and release of
    the new file (InitReply.takes_handles_from_earlier_ops). It fails with
    EBADF if that op failed or is not before it, or if it has no `fh`."""
    handles = {}
    for op in ops:
        slot = results.add()
        if op.fh_from_op:
            fh = handles.get(op.fh_from_op)
            kind = op.WhichOneof("op")
            req = getattr(op, kind) if kind else None
            if fh is None or req is None or \
                    "fh" not in req.DESCRIPTOR.fields_by_name:
                slot.id = op.id
                slot.posix_errno = errno.EBADF
                continue
            op.fh_from_op = 0
            req.fh = fh
        run(op, slot, mount_id)
        if not slot.posix_errno:
            made = slot.WhichOneof("result")
            if made == "create":
                handles[op.id] = slot.create.open.fh
            elif made == "open":
                handles[op.id] = slot.open.fh


class OpCosts:
    """What each kind of op costs: a moving average of its times, taken only
    when its batch runs on one thread (with helpers, an op's time is mostly
    its wait for the GIL). One op that blocks (SLOW) sets it at once. A
    batch with a kind dearer than CHEAP gets helpers from its start; every
    PROBE-th such batch starts alone, to time that kind again. A kind never
    timed starts alone: if it blocks, helpers come after SLOW, or from the
    watchdog."""

    PROBE = 16

    def __init__(self):
        self._seconds = {}
        # Kind not known cheap -> batches with it since it was last timed.
        self._since = {}

    def record(self, kind, seconds):
        last = self._seconds.get(kind)
        if last is None or seconds > SLOW:
            self._seconds[kind] = seconds
        else:
            self._seconds[kind] = last + (seconds - last) / 8

    def start_alone(self, kinds):
        alone = True
        for kind in kinds:
            seconds = self._seconds.get(kind)
            if seconds is not None and seconds > CHEAP:
                since = self._since.get(kind, 0) + 1
                self._since[kind] = since
                if since % self.PROBE:
                    alone = False
        return alone


class _Watchdog:
    """Calls helpers into a batch running alone whose op has blocked: no op
    of it finished between two looks, PATIENCE apart (that op may even
    wait for another of the same batch). One thread per runner, which looks
    every PATIENCE whether or not batches run: waking it at each batch, or
    looking often, cost more than the ops it watched (a thread that wakes
    makes the running one hand over the GIL at each system call). After
    IDLE_LOOKS looks that found no batch it sleeps until the next batch
    wakes it, so that an idle filesystem costs no wake-ups."""

    IDLE_LOOKS = 20

    def __init__(self):
        self._lock = threading.Lock()
        # Batch -> ops it had finished at the last look (-1: not looked at).
        self._jobs = {}
        self._thread = None
        self._stopped = False
        # Set to wake the thread: it stops, or sleeps and a batch came.
        self._wake = threading.Event()
        self._asleep = False
        self.looks = 0  # for tests: how often it looked

    def watch(self, job):
        with self._lock:
            self._jobs[job] = -1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="fusehost-batch-watchdog",
                    daemon=True)
                self._thread.start()
            elif self._asleep:
                self._asleep = False
                self._wake.set()

    def unwatch(self, job):
        with self._lock:
            self._jobs.pop(job, None)

    def stop(self):
        with self._lock:
            self._stopped = True
        self._wake.set()

    def _loop(self):
        idle = 0
        while True:
            self._wake.wait(PATIENCE)
            with self._lock:
                if self._stopped:
                    return
                self._wake.clear()
                self.looks += 1
                looked = list(self._jobs.items())
                idle = 0 if looked else idle + 1
                if idle >= self.IDLE_LOOKS:
                    self._asleep = True
                asleep = self._asleep
            if asleep:
                # Until watch() or stop() sets it (set under the lock after
                # this cleared it, so none is missed).
                self._wake.wait()
                idle = 0
                continue
            stuck = []
            for job, seen in looked:
                if job.stuck_since(seen):
                    stuck.append(job)
                else:
                    finished = job.finished
                    with self._lock:
                        if job in self._jobs:
                            self._jobs[job] = finished
            for job in stuck:
                job.call_helpers()


class _BatchJob:
    """The ops of one batch, claimed one at a time by the receiving thread
    and helpers; `wait` returns when every op has finished (whoever ran it),
    never waiting for a helper that has not started."""

    def __init__(self, runner, ops, kinds, slots, mount_id):
        self._runner = runner
        self._ops = ops
        self._kinds = kinds
        self._slots = slots
        self._mount_id = mount_id
        self._n = len(slots)
        self._next = itertools.count().__next__
        self._left = self._n
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._helped = False
        # The first op not claimed yet (a hint, for the watchdog).
        self._next_unclaimed = 0
        # The BatchRunner whose turn this batch holds, while it does.
        self.turn = None

    @property
    def finished(self):
        return self._n - self._left

    def stuck_since(self, finished):
        """Whether no op finished since `finished` while some wait to be
        claimed."""
        return (not self._helped and self._n - self._left == finished and
                self._next_unclaimed < self._n)

    def end_turn(self):
        with self._lock:
            runner, self.turn = self.turn, None
        if runner is not None:
            runner.end_turn()

    def call_helpers(self):
        """Has helpers claim ops too (once; from any thread)."""
        with self._lock:
            if self._helped:
                return
            self._helped = True
        # Other batches need not wait for one that is not cheap.
        self.end_turn()
        runner = self._runner
        for _ in range(min(self._n - 1, runner.helper_count)):
            runner.helpers.submit(self.drain)

    def drain(self):
        n = self._n
        run = self._runner.run
        costs = self._runner.costs
        clock = time.perf_counter
        while True:
            i = self._next()
            if i >= n:
                return
            self._next_unclaimed = i + 1
            if self._helped:
                run(self._ops[i], self._slots[i], self._mount_id)
            else:
                start = clock()
                run(self._ops[i], self._slots[i], self._mount_id)
                seconds = clock() - start
                costs.record(self._kinds[i], seconds)
                if seconds > SLOW:
                    self.call_helpers()
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._done.set()

    def wait(self):
        self._done.wait()


class _LoneOp:
    """What _take_turn needs of the batch holding the turn, for a batch of
    one op (BatchRunner._run_lone): whether it finished its op."""

    __slots__ = ("finished", "turn")

    def __init__(self):
        self.finished = 0
        self.turn = None


class BatchRunner:
    """Runs batches with Dispatcher `dispatcher` (its run(op, result,
    mount_id) answers one op)."""

    def __init__(self, dispatcher, threads, serial):
        self.run = dispatcher.run
        self._instance = dispatcher.instance
        self._serial = serial
        self.helper_count = 0 if serial else threads
        self.helpers = None if serial else futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="fusehost-helper")
        self.costs = OpCosts()
        self.watchdog = _Watchdog()
        # Held by a batch running alone (see TURN_WAIT), and which one.
        self.turns = threading.Lock()
        self.turn_holder = None

    def execute(self, batch):
        """The BatchResult of `batch`: one result per op (matched by id),
        and the backend instance."""
        reply = pb.BatchResult(instance=self._instance)
        results = reply.results
        run = self.run
        mount_id = batch.mount_id
        ops = batch.ops
        if batch.in_order:
            # Ops that must run one after the other in the order given (a
            # failed op does not stop the rest: run() answers every op,
            # whatever it raises).
            _run_in_order(run, ops, results, mount_id)
            return reply
        if self._serial:
            for op in ops:
                run(op, results.add(), mount_id)
            return reply
        if len(ops) > 1:
            ops = self._detach_releases(ops, results, mount_id)
        n = len(ops)
        if n == 0:
            return reply
        if n == 1:
            self._run_lone(ops[0], results.add(), mount_id)
            return reply
        # Every slot exists before any thread writes one.
        slots = [results.add() for _ in range(n)]
        kinds = [op.WhichOneof("op") for op in ops]
        job = _BatchJob(self, ops, kinds, slots, mount_id)
        watched = False
        if n > 1 and not self.costs.start_alone(set(kinds)):
            job.call_helpers()
        else:
            # A lone op runs alone whatever it costs.
            self._take_turn(job)
            if n > 1:
                watched = True
                self.watchdog.watch(job)
        try:
            job.drain()
            job.wait()
        finally:
            if watched:
                self.watchdog.unwatch(job)
            job.end_turn()
        return reply

    def _run_lone(self, op, slot, mount_id):
        """Runs the one op of a batch on this thread, in its turn: the
        batch machinery (a job others could claim ops of, its event) cost a
        lone op as much as a loopback's getattr, and most messages carry
        one op (every change, open and lookup)."""
        lone = _LoneOp()
        self._take_turn(lone)
        try:
            start = time.perf_counter()
            self.run(op, slot, mount_id)
            self.costs.record(op.WhichOneof("op"),
                              time.perf_counter() - start)
        finally:
            lone.finished = 1
            if lone.turn is not None:  # else it ran beside the holder
                self.end_turn()

    def _take_turn(self, job):
        """Waits until `job` holds `turns`, or until the batch holding it
        has gone TURN_WAIT without finishing an op (it may be waiting for
        this one): then `job` runs beside it."""
        seen = None
        while not self.turns.acquire(timeout=TURN_WAIT):
            holder = self.turn_holder
            progress = None if holder is None else (holder, holder.finished)
            if progress == seen:
                return
            seen = progress
        self.turn_holder = job
        job.turn = self

    def end_turn(self):
        self.turn_holder = None
        self.turns.release()

    def _detach_releases(self, ops, results, mount_id):
        """Answers the releases among `ops` at once and runs them on a
        helper after (InitReply.releases_after_reply): the daemon sends
        releases, which nothing waits for, with later ops, whose reply must
        not wait for them. They run one after the other on one helper: a
        thread each would take turns at the GIL with everything else.
        Returns the other ops."""
        rest = []
        detached = []
        instance = self._instance
        for op in ops:
            kind = op.WhichOneof("op")
            # One with another instance's handle is answered EBADF as usual.
            if (kind == "release" or kind == "releasedir") and (
                    not op.handle_instance or op.handle_instance == instance):
                results.add().id = op.id
                detached.append(op)
            else:
                rest.append(op)
        if detached:
            self.helpers.submit(self._run_detached, detached, mount_id)
        return rest

    def _run_detached(self, ops, mount_id):
        for op in ops:
            self.run(op, pb.OpResult(), mount_id)

    def shutdown(self):
        """Lets the helper threads go (batches still running finish)."""
        self.watchdog.stop()
        if self.helpers is not None:
            self.helpers.shutdown(wait=False)
