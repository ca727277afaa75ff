"""FUSE(): mount an Operations object through the running fuse-hostd.

The flow (mfusepy's FUSE() does the same with libfuse in-process):
  1. check that the daemon answers on its control socket;
  2. (foreground=False) fork: the parent waits until the child has mounted,
     then exits, as libfuse's daemonizing does;
  3. serve the operations on a private Unix socket (a fresh 0700 directory
     under $XDG_RUNTIME_DIR or the temp dir);
  4. Control.Mount(that socket, mountpoint, options);
  5. block until the mount goes away: unmounted by someone (the daemon's
     Destroy arrives, or its List stops showing the mount) or the daemon
     went away; on SIGINT/SIGTERM/SIGHUP or fuse_exit(), unmount first
     (lazily if busy);
  6. call destroy if the daemon did not, stop serving, remove the socket.
"""

import errno
import os
import shutil
import sys
import tempfile
import threading
import warnings

import grpc

from . import _context
from ._proto import control, control_grpc
from ._server import (FuseHostError, _enable_debug_logging,
                      _install_stop_handlers, _restore_handlers,
                      backend_options, log, make_backend, start_server,
                      stop_server)

DEFAULT_CONTROL_SOCKET = "/run/fuse-hostd/control.sock"
CONTROL_SOCKET_ENV = "FUSE_HOSTD_CONTROL_SOCKET"
# FUSE() options in -o form ("write_behind,default_permissions") added by
# whoever runs the program, over those its FUSE() call passes: a ported
# filesystem gets the daemon's options without an edit, as a libfuse
# program gets them from its command line.
MOUNT_OPTIONS_ENV = "FUSE_HOSTD_MOUNT_OPTIONS"

# Mount options the daemon understands (proto/control.proto), passed on.
_DAEMON_OPTIONS = {
    "ro", "rw", "allow_other", "default_permissions", "fsname", "subtype",
    "attr_timeout", "entry_timeout", "negative_timeout", "timeout",
    "max_write", "noexec", "nosuid", "nodev", "exec", "suid", "dev",
    "noatime", "atime", "relatime", "passthrough", "daemon_opens",
    "daemon_changes", "session", "no_session", "cache_entries",
    "prefetch_listings", "prefetch_contents", "read_ahead_kb",
    "write_behind", "no_write_behind", "uring", "no_uring",
    "writeback_cache", "no_writeback_cache",
}
# libfuse behaviours that are always the case with fuse-hostd.
_ALWAYS = {"hard_remove", "nonempty", "auto_unmount"}
# How often FUSE() asks the daemon whether the mount still exists (Destroy
# normally says so at once).
_POLL_SECONDS = 1.0
_RPC_TIMEOUT = 10.0
_MOUNT_TIMEOUT = 60.0


def _control_socket(explicit):
    return explicit or os.environ.get(CONTROL_SOCKET_ENV) or \
        DEFAULT_CONTROL_SOCKET


def split_options(kwargs, fsname_default):
    """Splits FUSE() keyword options into (daemon option string, backend
    options, ignored names). Booleans are flags (False: left out), other
    values key=value, as mfusepy passes them to libfuse."""
    kwargs = dict(kwargs)
    backend = backend_options(kwargs)
    daemon = []
    ignored = []
    kwargs.setdefault("fsname", fsname_default)
    if not kwargs.pop("default_permissions", False):
        # libfuse leaves permission checks to the filesystem unless asked;
        # so does fuse-hostd then (it sends access()).
        daemon.append("no_default_permissions")
    else:
        daemon.append("default_permissions")
    for key, value in kwargs.items():
        if value is False or value is None:
            continue
        if key in _DAEMON_OPTIONS:
            daemon.append(key if value is True else "%s=%s" % (key, value))
        elif key not in _ALWAYS:
            ignored.append(key)
    return ",".join(daemon), backend, ignored


def parse_options(text):
    """FUSE() keyword options from a -o string: "allow_other,fsname=x" ->
    {"allow_other": True, "fsname": "x"} (a helper for command lines)."""
    options = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        options[key] = value if sep else True
    return options


def with_environment_options(kwargs):
    """FUSE()'s keyword options with those of $FUSE_HOSTD_MOUNT_OPTIONS
    added over them."""
    return dict(kwargs, **parse_options(os.environ.get(MOUNT_OPTIONS_ENV)))


class _Session:
    """One FUSE() call: the mount it made and how it ends."""

    def __init__(self):
        self.wake = threading.Event()
        self.stop_requested = False
        self.destroyed = threading.Event()
        self.mount_id = None
        self.critical = []

    def request_stop(self):
        self.stop_requested = True
        self.wake.set()


_sessions = []
_sessions_lock = threading.Lock()


def fuse_exit():
    """Unmounts and makes the running FUSE() call return (as mfusepy's
    fuse_exit). From inside an operation it ends that operation's mount."""
    mount_id = _context.current_mount_id()
    with _sessions_lock:
        chosen = [s for s in _sessions if s.mount_id == mount_id] or \
            _sessions[-1:]
    for s in chosen:
        s.request_stop()


class FUSE:
    """Mounts `operations` at `mountpoint` through fuse-hostd and serves it
    until the mount goes away, like mfusepy's FUSE.

    Keyword options:
      foreground  False (default): detach once mounted (the calling process
                  exits; a child serves) as libfuse does. True: block here.
      debug       log every operation (logger "fuse"); implies foreground.
      nothreads   run one operation at a time.
      raw_fi      pass FileInfo objects instead of int handles.
      encoding    of paths (default utf-8; undecodable bytes as surrogates).
      control_socket  the daemon's control socket (default
                  $FUSE_HOSTD_CONTROL_SOCKET or /run/fuse-hostd/control.sock).
      threads     threads serving operations (default 8).
      use_ino, direct_io, kernel_cache: as libfuse's options.
      ro, allow_other, default_permissions, fsname, subtype, attr_timeout,
      entry_timeout, negative_timeout, max_write, noexec, nosuid, nodev,
      noatime, timeout, passthrough, daemon_opens, daemon_changes, session,
      cache_entries, prefetch_listings, prefetch_contents, read_ahead_kb,
      write_behind, writeback_cache, uring (and their no_ forms): mount
      options, passed to the daemon (the README's table says what each
      does).
    Other libfuse options are ignored with a warning naming them. Options
    in $FUSE_HOSTD_MOUNT_OPTIONS (-o form: "write_behind,allow_other")
    are added and take precedence.

    Raises FuseHostError (a RuntimeError) when the daemon is unreachable or
    the mount fails; re-raises a SystemExit raised inside an operation after
    unmounting.
    """

    def __init__(self, operations, mountpoint, raw_fi=False,
                 encoding="utf-8", **kwargs):
        self.operations = operations
        kwargs = with_environment_options(kwargs)
        foreground = bool(kwargs.pop("foreground", False))
        socket_path = _control_socket(kwargs.pop("control_socket", None))
        debug = bool(kwargs.get("debug", False))
        mountpoint = os.path.abspath(os.fspath(mountpoint))
        options, backend, ignored = split_options(
            kwargs, type(operations).__name__)
        if ignored:
            warnings.warn("fusehost.FUSE: options not supported by fuse-hostd"
                          " and ignored: %s" % ", ".join(sorted(ignored)),
                          stacklevel=2)
        if debug:
            _enable_debug_logging()
            foreground = True
        _check_mountpoint(mountpoint)
        notify = None
        if foreground:
            _check_daemon(socket_path)
        else:
            # gRPC must not be used before fork(): the child checks.
            _check_socket_file(socket_path)
            notify = _daemonize(debug)
        try:
            if notify is not None:
                _check_daemon(socket_path)
            self._run(operations, mountpoint, raw_fi, encoding, socket_path,
                      options, backend, notify)
        except BaseException as e:
            if notify is not None:
                _notify(notify, "fusehost.FUSE: %s" % e)
                os._exit(1)
            raise

    def _run(self, operations, mountpoint, raw_fi, encoding, socket_path,
             options, backend, notify):
        session = _Session()

        def on_destroy(mount_id):
            if session.mount_id in (None, mount_id):
                session.destroyed.set()
                session.wake.set()

        def on_critical(exc):
            session.critical.append(exc)
            session.request_stop()

        servicer = make_backend(operations, raw_fi, encoding, backend,
                                on_critical=on_critical, on_destroy=on_destroy)
        sock_dir = _private_dir()
        server = None
        channel = grpc.insecure_channel("unix:" + socket_path)
        stub = control_grpc.ControlStub(channel)
        previous = {}
        try:
            address = "unix:" + os.path.join(sock_dir, "backend.sock")
            server = start_server(servicer, address)
            previous = _install_stop_handlers(session.wake)
            try:
                reply = stub.Mount(control.MountRequest(
                    backend=address, mountpoint=os.fsencode(mountpoint),
                    options=options), timeout=_MOUNT_TIMEOUT)
            except grpc.RpcError as e:
                raise FuseHostError("mounting %s failed: %s" % (
                    mountpoint, _rpc_message(e))) from None
            session.mount_id = reply.mount_id
            with _sessions_lock:
                _sessions.append(session)
            log.info("mounted %s (mount %d) through fuse-hostd", mountpoint,
                     reply.mount_id)
            if notify is not None:
                _notify(notify, "ok")
                _detach_stdio()
            self._wait(session, stub)
            if not session.destroyed.is_set():
                _unmount(stub, mountpoint)
                # Destroy follows the unmount (after the last close when it
                # had to be lazy); wait a little for it.
                session.destroyed.wait(5)
        finally:
            # Nothing connects to the socket any more: its directory goes
            # first, so that a process killed while the server winds down
            # (up to its grace) leaves nothing behind in /tmp.
            shutil.rmtree(sock_dir, ignore_errors=True)
            with _sessions_lock:
                if session in _sessions:
                    _sessions.remove(session)
            _restore_handlers(previous)
            if session.mount_id is not None:
                servicer.destroy_once(session.mount_id)
            if server is not None:
                stop_server(server, servicer, grace=1)
            else:
                servicer.shutdown()
            channel.close()
            del self.operations
        if session.critical:
            raise session.critical[0]

    @staticmethod
    def _wait(session, stub):
        """Returns when the mount is gone or a stop was requested."""
        unreachable = 0
        while True:
            session.wake.wait(_POLL_SECONDS)
            if session.destroyed.is_set():
                return
            if session.wake.is_set():
                # A signal (its handler only sets the event) or fuse_exit().
                return
            try:
                listing = stub.List(control.ListRequest(), timeout=_RPC_TIMEOUT)
                unreachable = 0
            except grpc.RpcError as e:
                unreachable += 1
                if unreachable >= 3:
                    log.warning("fuse-hostd is gone (%s); the mount went with "
                                "it", _rpc_message(e))
                    session.destroyed.set()
                    return
                continue
            if not any(m.mount_id == session.mount_id
                       for m in listing.mounts):
                session.destroyed.set()
                return


def _rpc_message(e):
    details = e.details() if hasattr(e, "details") else None
    return details or str(e)


def _unmount(stub, mountpoint):
    for lazy in (False, True):
        try:
            stub.Unmount(control.UnmountRequest(
                mountpoint=os.fsencode(mountpoint), lazy=lazy),
                timeout=_RPC_TIMEOUT)
            return
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.NOT_FOUND:
                return  # already gone
            if code == grpc.StatusCode.FAILED_PRECONDITION and not lazy:
                continue  # busy: detach it lazily
            log.warning("unmounting %s failed: %s", mountpoint,
                        _rpc_message(e))
            return


def _check_mountpoint(mountpoint):
    if not os.path.isdir(mountpoint):
        raise FuseHostError("mountpoint %s is not a directory" % mountpoint)


_HINT = ("is fuse-hostd running, and may this user use its control socket "
         "(root only for now)? Point $%s or control_socket= at another "
         "socket" % CONTROL_SOCKET_ENV)


def _check_socket_file(socket_path):
    if not os.path.exists(socket_path):
        raise FuseHostError("fuse-hostd is not reachable: %s does not exist;"
                            " %s" % (socket_path, _HINT))
    if not os.access(socket_path, os.R_OK | os.W_OK):
        raise FuseHostError("fuse-hostd is not reachable: no permission to "
                            "use %s; %s" % (socket_path, _HINT))


def _check_daemon(socket_path):
    """Fails with a clear message unless fuse-hostd answers."""
    _check_socket_file(socket_path)
    channel = grpc.insecure_channel("unix:" + socket_path)
    try:
        control_grpc.ControlStub(channel).List(control.ListRequest(),
                                               timeout=_RPC_TIMEOUT)
    except grpc.RpcError as e:
        raise FuseHostError("fuse-hostd is not reachable at %s (%s); %s" % (
            socket_path, _rpc_message(e), _HINT)) from None
    finally:
        channel.close()


def _private_dir():
    """A fresh directory only this user can enter (the daemon, root, can)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.access(base, os.W_OK | os.X_OK):
        base = None
    return tempfile.mkdtemp(prefix="fusehost-", dir=base)


def _daemonize(debug):
    """Forks. The parent waits for the child to report the mount and exits
    (0 if mounted) or raises its error; returns the child's report pipe."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        chunks = []
        while True:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_end)
        report = b"".join(chunks).decode("utf-8", "replace")
        if report == "ok":
            os._exit(0)
        os.waitpid(pid, 0)
        raise FuseHostError(report or "the background process died before "
                            "mounting")
    os.close(read_end)
    os.setsid()
    os.chdir("/")
    return write_end


def _notify(fd, message):
    try:
        os.write(fd, message.encode("utf-8", "replace"))
        os.close(fd)
    except OSError:
        pass


def _detach_stdio():
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        try:
            os.dup2(null, fd)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise
    os.close(null)
