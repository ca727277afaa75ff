"""Fan-out of a filesystem's invalidation notices (Operations.notify_*) to
the open Invalidations streams, as the C++ SDK's InvalidationHub does
(client/invalidation_hub.h): each stream has its own bounded queue, filled by
whichever thread notifies and drained by the gRPC handler thread that writes
the stream.

Why a queue per stream rather than writing from the notifying thread: a
notice may be sent from inside an operation, and a gRPC write can block on
flow control for as long as the daemon does not read. Queues keep notifying
cheap and never blocking; their bound keeps a stalled daemon from costing
unbounded memory.

Thread use: everything here may be called from any thread.
"""

import os
import threading

from ._proto import pb

CHANGED = pb.Invalidation.CHANGED
REMOVED = pb.Invalidation.REMOVED
SUBTREE = pb.Invalidation.SUBTREE

# How many notices a stream may have waiting before its queue is replaced by
# a single SUBTREE("/") notice (the protocol's bound, as in the C++ SDK).
DEFAULT_MAX_QUEUED = pb.LIMIT_MAX_QUEUED_INVALIDATIONS

# Where an Operations object keeps its hub (created on first use, so that
# subclasses need not call Operations.__init__, which mfusepy's lack).
_ATTRIBUTE = "_fusehost_invalidation_hub"


class InvalidationHub:
    """The open subscriptions of one filesystem object."""

    def __init__(self):
        # One lock for the hub and all its queues: publishing touches every
        # queue anyway, and critical sections are a few list appends.
        self._lock = threading.Lock()
        self._subscriptions = set()

    def publish(self, kind, path, except_mount=None):
        """Queues the notice on every open subscription, but for those of
        mount `except_mount` when it is not None; with none open it is
        dropped (the daemon drops all it cached whenever it opens a stream,
        so nothing is lost)."""
        with self._lock:
            for subscription in self._subscriptions:
                if except_mount is None or \
                        subscription.mount_id != except_mount:
                    subscription._push(kind, path)

    def subscribe(self, max_queued=DEFAULT_MAX_QUEUED, mount_id=0):
        """Starts receiving, for the stream of mount `mount_id`, every
        notice published from now on that is not meant for other mounts
        only, until the subscription is closed. At most `max_queued` (at
        least 1) notices wait in its queue."""
        subscription = Subscription(self, max(int(max_queued), 1), mount_id)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def subscription_count(self):
        with self._lock:
            return len(self._subscriptions)


class Subscription:
    """One stream's queue: `take` from one thread at a time (the stream's
    writer), `close` from any."""

    def __init__(self, hub, max_queued, mount_id):
        self._hub = hub
        self._max_queued = max_queued
        self.mount_id = mount_id
        self._ready = threading.Condition(hub._lock)
        self._queue = []
        # The queue holds nothing but SUBTREE("/") after an overflow: later
        # notices are covered by it until the writer takes it.
        self._collapsed = False
        self._closed = False

    def _push(self, kind, path):
        # Called by the hub with its lock held.
        if self._closed or self._collapsed:
            return
        if len(self._queue) >= self._max_queued:
            # The daemon is not keeping up (or not reading): one notice that
            # drops everything is both smaller and correct, since a cache
            # the daemon rebuilds later sees the changes made meanwhile.
            self._queue = [(SUBTREE, "/")]
            self._collapsed = True
        else:
            self._queue.append((kind, path))
        self._ready.notify()

    def take(self, timeout):
        """Waits at most `timeout` seconds until notices are queued or the
        subscription is closed. Returns the queued (kind, path) notices,
        oldest first (empty on timeout), or None once closed: nothing more
        will come."""
        with self._ready:
            if not self._closed and not self._queue:
                self._ready.wait(timeout)
            if self._closed:
                return None
            notices, self._queue = self._queue, []
            self._collapsed = False
            return notices

    def close(self):
        """Ends the subscription: `take` returns None from now on, at once,
        also when it is waiting already. Queued notices are dropped."""
        with self._ready:
            self._closed = True
            self._queue = []
            self._hub._subscriptions.discard(self)
            self._ready.notify_all()


def hub_of(ops):
    """The hub of a filesystem object, created on first use. An object that
    cannot hold one (no __dict__; it is no Operations subclass, so it has no
    notify_* methods either) gets a fresh hub nobody publishes to."""
    attributes = getattr(ops, "__dict__", None)
    if attributes is None:
        return InvalidationHub()
    hub = attributes.get(_ATTRIBUTE)
    if hub is None:
        # setdefault is atomic: of two threads creating one at once, both
        # get the first.
        hub = attributes.setdefault(_ATTRIBUTE, InvalidationHub())
    return hub


def checked_path(path):
    """`path` (str, bytes or os.PathLike) as str or bytes, if it is what a
    notice may name: absolute, without NUL. Raises TypeError or ValueError
    otherwise, in the notifying thread, where the mistake is."""
    if isinstance(path, bytearray):
        path = bytes(path)
    elif not isinstance(path, (str, bytes)):
        path = os.fspath(path)
    if isinstance(path, bytes):
        slash, nul = b"/", b"\0"
    else:
        slash, nul = "/", "\0"
    if not path.startswith(slash):
        raise ValueError("fusehost: a notice needs an absolute path inside "
                         "the filesystem (\"/\" for the root), not %r" % path)
    if nul in path:
        raise ValueError("fusehost: a notice's path contains NUL: %r" % path)
    return path


def publish(ops, kind, path, except_mount=None):
    hub_of(ops).publish(kind, checked_path(path), except_mount)
