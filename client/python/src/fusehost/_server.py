"""Serves an Operations object as a fuse-hostd backend: the gRPC
FileSystem servicer, the server it runs on, and serve().

The servicer hands each call to the module that owns its concern: Execute
to _batch.py (a batch's ops, run concurrently, or one after the other when
the batch asks) and through it to _dispatch.py (one op), Init and Destroy
to _handshake.py, and the Invalidations stream takes the filesystem's
notices from _invalidations.py.

Threads: on gRPC's C++ server (_native.py) each call runs on the gRPC
thread that received it; on grpcio's, on a thread of `Servicer.workers`
(see _workers.py). An Invalidations stream holds its thread for as long as
its mount lasts; grpcio's pool grows by one thread per open stream, so
streams never take threads from operations. end_streams(), shutdown() and stop_server()
may be called from any thread. serve() must run on the main thread to catch
signals.
"""

import logging
import os
import signal
import threading
import warnings

import grpc

from . import _handshake
from . import _passthrough
from . import _invalidations
from . import _native
from . import _payload_heap
from . import _tls
from . import _workers
from ._batch import BatchRunner
from ._dispatch import Dispatcher
from ._proto import pb, pb_grpc

log = logging.getLogger("fuse")

_MESSAGE_LIMIT = 256 << 20
# How often an idle Invalidations stream checks that its client is still
# there. Only a safety net: the end of the call wakes it at once.
_STREAM_POLL_SECONDS = 1.0
_SHUTTING_DOWN = "backend is shutting down"


class FuseHostError(RuntimeError):
    """Serving or mounting failed (the message says why)."""


class BackendOptions:
    """How the SDK calls the operations. See FUSE() and serve()."""

    def __init__(self, raw_fi=False, encoding="utf-8", errors="surrogateescape",
                 use_ino=False, nothreads=False, direct_io=False,
                 kernel_cache=False, debug=False, threads=None):
        self.raw_fi = raw_fi
        self.encoding = encoding
        self.errors = errors
        self.use_ino = use_ino
        self.nothreads = nothreads
        self.direct_io = direct_io
        self.kernel_cache = kernel_cache
        self.debug = debug
        self.threads = threads or 8


class Servicer(pb_grpc.FileSystemServicer):
    """The FileSystem service for one Operations object (any number of
    mounts). `on_init(mount_id)` / `on_destroy(mount_id)` let FUSE() follow
    its mount."""

    # Notices an Invalidations stream may have waiting (see
    # _invalidations.py).
    max_queued_invalidations = _invalidations.DEFAULT_MAX_QUEUED
    # Whether the server serves Session (InitReply.serves_session): set by
    # start_server, for gRPC's C++ server only; grpcio's answers it
    # UNIMPLEMENTED.
    serves_session = False

    def __init__(self, dispatcher, on_init=None, on_destroy=None):
        self.dispatcher = dispatcher
        self._on_init = on_init
        self._on_destroy = on_destroy
        if dispatcher.bound.passthrough:
            dispatcher.bound.descriptors = _passthrough.DescriptorSender()
        threads = dispatcher.options.threads
        self._batches = BatchRunner(dispatcher, threads,
                                    dispatcher.options.nothreads)
        # The gRPC server's threads (start_server): the handlers of
        # Execute, Init, Destroy and the Invalidations streams.
        self.workers = _workers.Workers(threads + 2, "fusehost")
        self._mounts_lock = threading.Lock()
        self._destroyed = set()
        ops = dispatcher.ops
        self.name = "fusehost-python:%s" % type(ops).__name__
        self._invalidations = _invalidations.hub_of(ops)
        self._streams_lock = threading.Lock()
        self._streams = set()
        self._streams_ended = False

    def Init(self, request, context):
        reply = _handshake.init_reply(self.dispatcher, request, self.name,
                                      self.serves_session)
        if not reply.posix_errno and self._on_init is not None:
            self._on_init(request.mount_id)
        return reply

    def Destroy(self, request, context):
        with self._mounts_lock:
            first = request.mount_id not in self._destroyed
            self._destroyed.add(request.mount_id)
        if first:
            if self.dispatcher.bound.descriptors is not None:
                self.dispatcher.bound.descriptors.forget(request.mount_id)
            _handshake.call_destroy(self.dispatcher.bound)
            if self._on_destroy is not None:
                self._on_destroy(request.mount_id)
        return pb.DestroyReply()

    def destroy_once(self, mount_id):
        """Calls destroy for `mount_id` unless the daemon already did."""
        self.Destroy(pb.DestroyRequest(mount_id=mount_id), None)

    def Invalidations(self, request, context):
        """Streams the filesystem's notices (Operations.notify_*) until the
        daemon closes the stream or end_streams() runs. A generator: gRPC
        runs all of it, from the first next() on, on one pool thread."""
        # Notices are the backend's, not one mount's: every stream gets
        # them, but for those the filesystem addressed to the other mounts
        # only (notify_*(..., except_mount=)), hence the request's mount.
        subscription = self._invalidations.subscribe(
            self.max_queued_invalidations, request.mount_id)
        with self._streams_lock:
            ended = self._streams_ended
            if not ended:
                self._streams.add(subscription)
        if ended:
            subscription.close()
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details(_SHUTTING_DOWN)
            return
        try:
            # However the call ends (the daemon cancels it, the server
            # stops), a waiting take() wakes at once.
            if not context.add_callback(subscription.close):
                return  # over already
            try:
                # gRPC would otherwise send the headers with the first
                # notice; the daemon waits for them to know that from now on
                # no change is missed, and drops what it cached before.
                context.send_initial_metadata(())
            except grpc.RpcError:
                return  # the daemon gave up already
            with self.workers.long_call():
                encode = self.dispatcher.wire_path
                while context.is_active():
                    notices = subscription.take(_STREAM_POLL_SECONDS)
                    if notices is None:
                        break
                    for kind, path in notices:
                        try:
                            wire = encode(path)
                        except UnicodeError:
                            log.warning("notice for %r: not encodable as "
                                        "%s; dropping everything instead",
                                        path, self.dispatcher.options.encoding)
                            kind, wire = _invalidations.SUBTREE, b"/"
                        yield pb.Invalidation(kind=kind, path=wire)
        finally:
            subscription.close()
            with self._streams_lock:
                self._streams.discard(subscription)
                ended = self._streams_ended
        if ended:
            # Ended by end_streams(): the daemon reopens the stream after a
            # backoff, and finds the server gone or back. (Had the daemon
            # ended it, no status would be left to deliver.)
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details(_SHUTTING_DOWN)

    def end_streams(self):
        """Ends every open Invalidations stream (UNAVAILABLE) and refuses new
        ones. Call it before stopping the server: a stream only ends when
        asked, so the server's grace period would wait for it in vain."""
        with self._streams_lock:
            self._streams_ended = True
            streams = list(self._streams)
        for subscription in streams:
            subscription.close()

    def Execute(self, batch, context):
        return self._batches.execute(batch)

    def shutdown(self):
        """After the server stopped: lets the threads go."""
        self.end_streams()
        self._batches.shutdown()
        self.workers.shutdown(wait=False)


def start_server(servicer, address, tls=None):
    """Starts a gRPC server for `servicer` on `address` ("unix:/path" or
    "host:port"): gRPC's C++ server (_native.py) unless the environment
    says otherwise, else grpcio's, running its handlers on
    `servicer.workers`; with TLS if `tls` (_tls.tls_files). A Unix socket
    is made owner-only (0600): whoever can connect can send operations in
    any caller's name. Stop it with stop_server()."""
    _payload_heap.keep_payloads_in_heap()
    native = _native.available()
    # Before the server starts: Init may come at once.
    servicer.serves_session = native
    server = None if native else grpc.server(
        servicer.workers,
        options=[("grpc.max_receive_message_length", _MESSAGE_LIMIT),
                 ("grpc.max_send_message_length", _MESSAGE_LIMIT),
                 ("grpc.so_reuseport", 0),
                 # The daemon pings TCP connections every few seconds, idle
                 # or not (mount option keepalive=); gRPC's default server
                 # policy would answer such pings with GOAWAY.
                 ("grpc.keepalive_permit_without_calls", 1),
                 ("grpc.http2.max_ping_strikes", 0)])
    if server is not None:
        pb_grpc.add_FileSystemServicer_to_server(servicer, server)
    sock = address[len("unix:"):] if address.startswith("unix:") else None
    if sock is not None and sock.startswith("//"):
        sock = sock[2:]
    if sock is not None:
        try:
            st = os.lstat(sock)
            if (st.st_mode & 0o170000) == 0o140000:
                os.unlink(sock)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
    old_umask = os.umask(0o177) if sock is not None else None
    try:
        if native:
            try:
                # The same threads as grpcio's server would have.
                return _native.NativeServer(
                    servicer, address, servicer.dispatcher.options.threads + 2,
                    _MESSAGE_LIMIT, tls)
            except RuntimeError as e:
                raise FuseHostError("cannot listen on %s: %s" % (address, e))
            except ValueError as e:
                raise FuseHostError("cannot serve on %s: %s" % (address, e))
        try:
            if tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(
                    address, _tls.grpcio_credentials(tls))
        except RuntimeError as e:
            raise FuseHostError("cannot listen on %s: %s" % (address, e))
        if not port:
            raise FuseHostError("cannot listen on %s" % address)
        server.start()
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    return server


def stop_server(server, servicer, grace):
    """Stops a server of start_server(): open Invalidations streams end at
    once, calls in progress get `grace` seconds."""
    servicer.end_streams()
    server.stop(grace=grace).wait(grace + 3)
    servicer.shutdown()


def make_backend(operations, raw_fi=False, encoding="utf-8", options=None,
                 on_critical=None, on_init=None, on_destroy=None,
                 instance=None):
    """The Servicer serving `operations`. Each call is a new backend
    instance (InitReply.instance): serve() and FUSE() call it once each, so
    handles never outlive the call that issued them. `instance` is for
    tests only: a fixed instance (nonzero) instead of a random one, for
    comparing replies with fixed expectations (the conformance runner)."""
    options = options or BackendOptions()
    options.raw_fi = raw_fi
    options.encoding = encoding
    if not getattr(operations, "use_ns", False):
        warnings.warn(
            "Time as floating point seconds for utimens is deprecated!\n"
            "To enable time as nanoseconds set the property \"use_ns\" to "
            "True in your operations class.", DeprecationWarning,
            stacklevel=3)
    dispatcher = Dispatcher(operations, options,
                            instance or _handshake.new_instance(),
                            on_critical)
    return Servicer(dispatcher, on_init, on_destroy)


_SERVE_OPTIONS = {"use_ino", "nothreads", "direct_io", "kernel_cache",
                  "debug", "threads", "errors"}


def backend_options(kwargs):
    """BackendOptions from keyword options; removes the ones it takes."""
    opts = BackendOptions()
    for key in list(kwargs):
        if key in _SERVE_OPTIONS:
            setattr(opts, key, kwargs.pop(key))
    # int(): from a -o string it is text.
    opts.threads = int(opts.threads or 8)
    return opts


def serve(operations, address, raw_fi=False, encoding="utf-8",
          tls_cert=None, tls_key=None, tls_client_ca=None, **options):
    """Serves `operations` as a backend on `address` ("unix:/path/to.sock"
    or "host:port") until SIGINT or SIGTERM, for the daemon to mount with
    `fuse-hostctl mount ADDRESS MOUNTPOINT`.

    TLS on a TCP address: `tls_cert` and `tls_key` name PEM files of the
    certificate and its private key (readable by its owner only); with
    `tls_client_ca`, clients must present a certificate signed by that CA
    (mutual TLS). Changed files are used from the next connection on.

    Options: threads (8), nothreads, use_ino, direct_io, kernel_cache,
    debug, errors (path decoding, "surrogateescape"). Others are refused
    with a warning. Must be called from the main thread to catch signals;
    elsewhere it serves until the process ends.
    """
    opts = backend_options(options)
    for key in options:
        warnings.warn("fusehost.serve: option %r ignored" % key, stacklevel=2)
    if opts.debug:
        _enable_debug_logging()
    critical = []
    stop = threading.Event()

    def on_critical(exc):
        critical.append(exc)
        stop.set()

    try:
        tls = _tls.tls_files(address, tls_cert, tls_key, tls_client_ca)
    except ValueError as e:
        raise FuseHostError("cannot serve on %s: %s" % (address, e))
    servicer = make_backend(operations, raw_fi, encoding, opts, on_critical)
    server = start_server(servicer, address, tls)
    log.info("serving %s on %s", type(operations).__name__, address)
    previous = _install_stop_handlers(stop)
    try:
        stop.wait()
    finally:
        _restore_handlers(previous)
        stop_server(server, servicer, grace=2)
    if critical:
        raise critical[0]


def _enable_debug_logging():
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG,
                            format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("fuse").setLevel(logging.DEBUG)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _install_stop_handlers(event):
    """Makes SIGINT/SIGTERM/SIGHUP set `event`; returns the old handlers
    (empty when not on the main thread, where signals cannot be caught)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in _STOP_SIGNALS:
        previous[sig] = signal.signal(sig, lambda *_: event.set())
    return previous


def _restore_handlers(previous):
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
