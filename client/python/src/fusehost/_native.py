"""Serves a Servicer on gRPC's C++ server (the _native_server extension,
built from client/python/native/) instead of grpcio's Python one.

A call's round trip through grpcio's server crosses threads several times
(its polling thread hands the call to a pool thread, which waits for the
polling thread to receive the request); the C++ server runs the handler on
the thread that received the call, which takes the GIL only for the
servicer's code. The servicer is the same either way: messages cross as
bytes and are parsed and built here.

Used for Unix sockets, plain TCP and TLS (given the files' paths, watched
for renewals as the C++ SDK watches them). FUSEHOST_NATIVE_SERVER=0 in the
environment, or an extension that cannot be loaded, means grpcio's.

It also serves Session, the stream the daemon sends a connection's batches
on (InitReply.serves_session): each batch goes to unary() as an Execute
call's does, and the extension echoes its sequence in the result.

Threads: the extension calls unary() and stream() from gRPC's threads (and
the Session streams' threads of its own), with the GIL held;
NativeServer.stop() may be called from any Python thread.
"""

import atexit
import logging
import os
import threading
import weakref

import grpc

from ._proto import pb

log = logging.getLogger("fuse")

try:
    from . import _native_server
except ImportError as e:  # pragma: no cover - depends on the build
    _native_server = None
    _IMPORT_ERROR = e

_ENV = "FUSEHOST_NATIVE_SERVER"
# The extension's method numbers.
_INIT, _DESTROY, _EXECUTE = 0, 1, 2


def available():
    """Whether servers may run on the C++ server."""
    if os.environ.get(_ENV, "1") == "0":
        return False
    if _native_server is None:
        log.debug("grpcio's server: %s", _IMPORT_ERROR)
        return False
    return True


class _StreamContext:
    """What Servicer.Invalidations uses of a grpc.ServicerContext."""

    def __init__(self, alive, send_headers):
        self._alive = alive
        self._send_headers = send_headers
        self._callbacks = []
        self.code = grpc.StatusCode.OK
        self.details = ""

    def is_active(self):
        return self._alive()

    def add_callback(self, callback):
        # Run when the stream's loop ends. A cancelled call is seen by
        # is_active(), which the stream checks between waits.
        self._callbacks.append(callback)
        return True

    def send_initial_metadata(self, _metadata):
        if not self._send_headers():
            raise grpc.RpcError("the call is over")

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details

    def run_callbacks(self):
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception("stream callback failed")


def _handlers(servicer):
    parse = {_INIT: pb.InitRequest.FromString,
             _DESTROY: pb.DestroyRequest.FromString,
             _EXECUTE: pb.Batch.FromString}
    call = {_INIT: servicer.Init, _DESTROY: servicer.Destroy,
            _EXECUTE: servicer.Execute}

    def unary(method, request):
        return call[method](parse[method](request), None).SerializeToString()

    def stream(request, alive, send_headers):
        context = _StreamContext(alive, send_headers)
        try:
            for notice in servicer.Invalidations(
                    pb.InvalidationsRequest.FromString(request), context):
                yield notice.SerializeToString()
        finally:
            context.run_callbacks()
        yield (context.code.value[0], context.details or "")

    return unary, stream


_running = weakref.WeakSet()


class NativeServer:
    """A started server; the part of grpc.Server that start_server's
    callers use."""

    def __init__(self, servicer, address, threads, max_message, tls=None):
        """`tls`: _tls.TlsFiles, or None for plain serving. Raises
        RuntimeError when it cannot listen, ValueError for a TLS file."""
        unary, stream = _handlers(servicer)
        tls_args = () if tls is None else (tls.cert, tls.key,
                                           tls.client_ca or "")
        try:
            self._handle = _native_server.start(address, unary, stream,
                                                threads, max_message,
                                                *tls_args)
        except OSError as e:
            raise RuntimeError(str(e)) from e
        self._lock = threading.Lock()
        _running.add(self)

    def stop(self, grace=None):
        """Stops serving; calls in progress get `grace` seconds. Returns an
        event that is set (it has finished)."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            _native_server.stop(handle, float(grace or 0))
        done = threading.Event()
        done.set()
        return done


@atexit.register
def _stop_all():
    # gRPC's threads must not call into an interpreter that is going away.
    for server in list(_running):
        server.stop(0)
