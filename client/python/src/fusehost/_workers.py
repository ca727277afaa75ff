"""The thread pool that runs the gRPC server's handlers.

gRPC's synchronous server runs each call on one pool thread from start to
end, and an Invalidations stream lasts as long as its mount. With a fixed
pool (concurrent.futures.ThreadPoolExecutor cannot grow) every open stream
would take a thread away from operations for good, and as many mounts as
threads would starve them. Here a handler that is going to stay declares so
(`long_call`), which raises the pool's limit by one for as long as it runs:
ordinary calls always have the configured number of threads.

Threads start when work is waiting and none is idle, and stay (as in
ThreadPoolExecutor), except those above the limit when a long call ends.
They are daemon threads: a stream blocked on a silent peer must not keep the
process from exiting.
"""

import collections
import contextlib
import itertools
import threading
from concurrent import futures


class Workers(futures.Executor):
    """At most `max_workers` threads, plus one per running long_call()."""

    def __init__(self, max_workers, thread_name_prefix="fusehost"):
        self._limit = max(int(max_workers), 1)
        self._prefix = thread_name_prefix
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._queue = collections.deque()
        self._threads = 0
        self._idle = 0
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        future = futures.Future()
        with self._changed:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            self._queue.append((future, fn, args, kwargs))
            self._start_if_needed()
            self._changed.notify()
        return future

    @contextlib.contextmanager
    def long_call(self):
        """Around the part of a handler that may run indefinitely: the pool
        may start one more thread meanwhile."""
        with self._changed:
            self._limit += 1
            self._start_if_needed()
        try:
            yield
        finally:
            with self._changed:
                self._limit -= 1
                # Idle threads above the limit exit when they wake.
                self._changed.notify_all()

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._changed:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            self._changed.notify_all()
            if wait:
                while self._threads:
                    self._changed.wait()

    def _start_if_needed(self):
        # With the lock held. More work waiting than idle threads to take
        # it (an idle thread that was notified but has not woken yet still
        # counts as idle, so a burst of submits starts enough threads).
        if (len(self._queue) > self._idle and self._threads < self._limit
                and not self._shutdown):
            self._threads += 1
            threading.Thread(
                target=self._work, daemon=True,
                name="%s_%d" % (self._prefix, next(self._numbers))).start()

    def _next(self):
        """The next work item, or None when this thread should end."""
        with self._changed:
            while not self._queue:
                if self._shutdown or self._threads > self._limit:
                    self._threads -= 1
                    self._changed.notify_all()  # for shutdown(wait=True)
                    return None
                self._idle += 1
                self._changed.wait()
                self._idle -= 1
            return self._queue.popleft()

    def _work(self):
        while True:
            item = self._next()
            if item is None:
                return
            _run(*item)
            # Not kept alive while this thread waits for the next one.
            del item


def _run(future, fn, args, kwargs):
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        future.set_exception(e)
    else:
        future.set_result(result)
