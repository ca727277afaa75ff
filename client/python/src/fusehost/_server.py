"""Serves an Operations object as a fuse-hostd backend.

The gRPC side of the SDK: the FileSystem servicer, and the dispatcher that
turns each Op of a Batch into one call of the author's method, mirroring the
C++ SDK (client/op_dispatcher.cc) and mfusepy's calling conventions:

* errors: an OSError becomes its errno (a negative return value of a status
  operation too); any other exception becomes EINVAL, with its traceback
  logged, as mfusepy does. Errnos outside 1..4095 become EIO. One op's
  failure never touches the others of its batch.
* after a successful mknod/mkdir/symlink/link/chmod/chown/truncate/utimens
  the reply carries the file's attributes (from getattr), and after create
  the new file's, which saves the daemon a round trip.
* readdir entries with attributes go out whole, in the one reply.

Threads: gRPC runs each Execute on a pool thread. A batch of several ops is
run by that thread together with helper threads that claim ops one at a
time, so one slow op (a network call) does not hold up the rest, and cheap
ops never wait for a thread switch. `nothreads` runs everything one at a
time (mfusepy's nothreads=True). An Invalidations stream holds its pool
thread for as long as its mount lasts; the pool grows by one thread per open
stream (see _workers.py), so streams never take threads from operations.
"""

import errno
import functools
import inspect
import itertools
import logging
import os
import signal
import threading
import time
import warnings
from concurrent import futures

import grpc

from . import _context
from . import _convert
from . import _invalidations
from . import _workers
from ._operations import Operations, is_implemented
from ._proto import pb, pb_grpc

log = logging.getLogger("fuse")

PROTOCOL_VERSION = 1
MAX_ERRNO = 4095
# Items per reply of a resumable (readdir_with_offset) listing.
READDIR_PAGE = 1024
_U64 = (1 << 64) - 1
_DEFAULT_STATFS = {"f_bsize": 512, "f_namemax": 255}
_OMIT, _NOW = pb.TimeSet.OMIT, pb.TimeSet.NOW
_F_GETLK = 5
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


def _param_count(fn):
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return -1


def _takes_param(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _status(ret):
    """The errno of a status-returning operation's result (0, None, or a
    negative errno as in libfuse)."""
    if type(ret) is int and ret < 0:
        return -ret
    return 0


# Operations that add or remove a name: their request's field naming the
# (new) path, and the old path's for a rename.
_NAME_CHANGES = {
    "mknod": ("path", None), "mkdir": ("path", None),
    "symlink": ("path", None), "link": ("new_path", None),
    "create": ("path", None), "unlink": ("path", None),
    "rmdir": ("path", None), "rename": ("new_path", "old_path"),
}


def _parent_of(path):
    """'/a/b' -> '/a', '/a' -> '/'."""
    slash = path.rfind("/")
    return "/" if slash <= 0 else path[:slash]


class Dispatcher:
    """Runs Ops against one Operations object. Thread-safe as far as the
    operations are (mfusepy filesystems are called concurrently too)."""

    def __init__(self, ops, options, on_critical=None):
        self.ops = ops
        self.options = options
        self._on_critical = on_critical
        self._enc = options.encoding
        self._err = options.errors
        self._raw_fi = options.raw_fi
        self._lock = threading.Lock() if options.nothreads else None
        self._debug = options.debug
        self.use_ns = bool(getattr(ops, "use_ns", False))
        # Replies then carry the attributes the kernel asks for next.
        self._cheap_getattr = bool(getattr(ops, "getattr_is_cheap", False))
        # Checked here so that a bad value fails FUSE() / serve() at once
        # rather than every mount.
        self.default_ttl_ms = _convert.ttl_ms(getattr(ops, "default_ttl",
                                                      None))
        self._fill_attr = _convert.make_attr_filler(self.use_ns,
                                                    options.use_ino)
        self._add_entries = _convert.make_entries_filler(
            self._fill_attr, self._enc, self._err,
            getattr(ops, "readdir_attrs_are_full", True))
        # fusepy routes every call through Operations.__call__; honour a
        # subclass that overrides it (its LoggingMixIn does).
        cls_call = getattr(type(ops), "__call__", None)
        self._via_call = (cls_call is not None and
                          cls_call is not Operations.__call__)
        f = self._fn
        self.f_getattr = f("getattr")
        self.f_readlink = f("readlink")
        self.f_mknod = f("mknod")
        self.f_mkdir = f("mkdir")
        self.f_unlink = f("unlink")
        self.f_rmdir = f("rmdir")
        self.f_symlink = f("symlink")
        self.f_rename = f("rename")
        self.f_link = f("link")
        self.f_chmod = f("chmod")
        self.f_chown = f("chown")
        self.f_truncate = f("truncate")
        self.f_utimens = f("utimens")
        self.f_open = f("open")
        self.f_create = f("create")
        self.f_read = f("read")
        self.f_write = f("write")
        self.f_statfs = f("statfs")
        self.f_flush = f("flush")
        self.f_release = f("release")
        self.f_fsync = f("fsync")
        self.f_setxattr = f("setxattr")
        self.f_getxattr = f("getxattr")
        self.f_listxattr = f("listxattr")
        self.f_removexattr = f("removexattr")
        self.f_opendir = f("opendir")
        self.f_readdir = f("readdir")
        self.f_readdir_offset = f("readdir_with_offset")
        self.f_releasedir = f("releasedir")
        self.f_fsyncdir = f("fsyncdir")
        self.f_access = f("access")
        self.f_lock = f("lock")
        self.f_flock = f("flock")
        self.f_fallocate = f("fallocate")
        self.f_copy_file_range = f("copy_file_range")
        self.f_lseek = f("lseek")
        # Signatures that change how a method is called (as mfusepy does for
        # create; the others are fusehost extensions).
        self._create_two_args = self.f_create is not None and _param_count(
            getattr(ops, "create")) == 2
        self._rename_flags = self.f_rename is not None and _param_count(
            getattr(ops, "rename")) >= 3
        self._fh_kw = {name: is_implemented(ops, name) and
                       _takes_param(getattr(ops, name), "fh")
                       for name in ("chmod", "chown", "utimens")}
        self.posix_locks = self.f_lock is not None
        self.flock_locks = self.f_flock is not None
        self._handlers = {
            "getattr": self._getattr, "readlink": self._readlink,
            "mknod": self._mknod, "mkdir": self._mkdir,
            "unlink": self._unlink, "rmdir": self._rmdir,
            "symlink": self._symlink, "rename": self._rename,
            "link": self._link, "chmod": self._chmod, "chown": self._chown,
            "truncate": self._truncate, "open": self._open,
            "read": self._read, "write": self._write,
            "statfs": self._statfs, "flush": self._flush,
            "release": self._release, "fsync": self._fsync,
            "setxattr": self._setxattr, "getxattr": self._getxattr,
            "listxattr": self._listxattr, "removexattr": self._removexattr,
            "opendir": self._opendir, "readdir": self._readdir,
            "releasedir": self._releasedir, "fsyncdir": self._fsyncdir,
            "access": self._access, "create": self._create,
            "lock": self._lock_op, "flock": self._flock,
            "utimens": self._utimens, "fallocate": self._fallocate,
            "copy_file_range": self._copy_file_range, "lseek": self._lseek,
        }

    def _fn(self, name):
        """The callable for operation `name`, or None if not implemented."""
        if not is_implemented(self.ops, name):
            return None
        if self._via_call:
            return functools.partial(self.ops, name)
        return getattr(self.ops, name)

    # --- running one op -------------------------------------------------

    def run(self, op, result, mount_id):
        """Runs `op`, filling `result` (a fresh OpResult)."""
        result.id = op.id
        kind = op.WhichOneof("op")
        handler = self._handlers.get(kind)
        if handler is None:
            # Unset, or an operation newer than this SDK.
            result.posix_errno = errno.ENOSYS
            return
        req = getattr(op, kind)
        if self._debug:
            log.debug("op %d %s %s caller=%d/%d/%d", op.id, kind,
                      _short(req), op.caller.uid, op.caller.gid,
                      op.caller.pid)
        _context.set_current(op.caller, mount_id)
        try:
            if self._lock is None:
                err = handler(req, result)
            else:
                with self._lock:
                    err = handler(req, result)
        except OSError as e:
            err = e.errno
            if type(err) is int and err > 0:
                if self._debug or log.isEnabledFor(logging.DEBUG):
                    log.debug("FUSE operation %s raised %s, returning errno "
                              "%d.", kind, type(e).__name__, err)
            else:
                log.exception("FUSE operation %s raised an OSError with errno "
                              "%r, returning errno.EINVAL.", kind, err)
                err = errno.EINVAL
        except Exception:
            log.exception("Uncaught exception from FUSE operation %s, "
                          "returning errno.EINVAL.", kind)
            err = errno.EINVAL
        except BaseException as e:  # SystemExit from an operation
            log.critical("Uncaught critical exception from FUSE operation "
                         "%s, aborting.", kind, exc_info=True)
            err = errno.EFAULT
            if self._on_critical is not None:
                self._on_critical(e)
        finally:
            _context.clear_current()
        if err:
            if err > MAX_ERRNO:
                err = errno.EIO
            result.ClearField("result")
            result.posix_errno = err
        elif self._cheap_getattr and kind in _NAME_CHANGES:
            # As the same caller: getattr may look at fuse_get_context().
            _context.set_current(op.caller, mount_id)
            try:
                self._parent_attrs(kind, req, result)
            finally:
                _context.clear_current()

    # --- argument helpers -------------------------------------------------

    def _path(self, raw):
        # Empty: the file has no name any more (flag_nullpath_ok's None).
        return raw.decode(self._enc, self._err) if raw else None

    def wire_path(self, path):
        """A path of a notice (str or bytes) as the protocol's bytes, in
        the encoding operations get their paths in."""
        if type(path) is bytes:
            return path
        return path.encode(self._enc, self._err)

    def _fh(self, fh, flags=0, lock_owner=0):
        if self._raw_fi:
            return _convert.FileInfo(fh, flags, lock_owner)
        return fh

    def _opt_fh(self, req):
        return self._fh(req.fh) if req.HasField("fh") else None

    def _entry(self, path, fh, result):
        """Puts the attributes of `path` into the entry reply."""
        self._attrs_into(path, fh, result.entry)

    def _parent_attrs(self, kind, req, result):
        """After an op that added or removed a name: the attributes of the
        directory holding it (and for a rename across directories, the old
        one's), which the kernel asks for before its next change there."""
        new, old = _NAME_CHANGES[kind]
        path = self._path(getattr(req, new))
        self._attr_into(_parent_of(path), result.parent_attr, result,
                        "parent_attr")
        if old is not None:
            old_parent = _parent_of(self._path(getattr(req, old)))
            if old_parent != _parent_of(path):
                self._attr_into(old_parent, result.old_parent_attr, result,
                                "old_parent_attr")

    def _attr_into(self, path, attr, holder, field):
        try:
            st = self.f_getattr(path)
            attr.SetInParent()
            self._fill_attr(st, attr)
        except Exception:
            log.debug("getattr of %r after an operation failed", path,
                      exc_info=True)
            holder.ClearField(field)

    def _attrs_into(self, path, fh, reply):
        """Fills reply.attr from getattr. A failing getattr leaves it unset:
        the operation itself succeeded, and the daemon then asks on its
        own."""
        try:
            st = self.f_getattr(path, fh) if fh is not None else \
                self.f_getattr(path)
        except Exception:
            log.debug("getattr after an operation failed", exc_info=True)
            return
        attr = reply.attr
        attr.SetInParent()
        try:
            self._fill_attr(st, attr)
        except Exception:
            log.debug("bad getattr result %r", st, exc_info=True)
            reply.ClearField("attr")

    # --- operations -----------------------------------------------------------

    def _getattr(self, req, result):
        fh = self._opt_fh(req)
        path = self._path(req.path)
        st = self.f_getattr(path, fh) if fh is not None else \
            self.f_getattr(path)
        attr = result.getattr.attr
        attr.SetInParent()
        self._fill_attr(st, attr)
        return 0

    def _readlink(self, req, result):
        if self.f_readlink is None:
            return errno.ENOSYS
        target = self.f_readlink(self._path(req.path))
        if type(target) is str:
            target = target.encode(self._enc, self._err)
        result.readlink.target = bytes(target)
        return 0

    def _mknod(self, req, result):
        if self.f_mknod is None:
            return errno.ENOSYS
        path = self._path(req.path)
        err = _status(self.f_mknod(path, req.mode, req.rdev))
        if not err:
            self._entry(path, None, result)
        return err

    def _mkdir(self, req, result):
        if self.f_mkdir is None:
            return errno.ENOSYS
        path = self._path(req.path)
        err = _status(self.f_mkdir(path, req.mode))
        if not err:
            self._entry(path, None, result)
        return err

    def _unlink(self, req, result):
        if self.f_unlink is None:
            return errno.ENOSYS
        return _status(self.f_unlink(self._path(req.path)))

    def _rmdir(self, req, result):
        if self.f_rmdir is None:
            return errno.ENOSYS
        return _status(self.f_rmdir(self._path(req.path)))

    def _symlink(self, req, result):
        if self.f_symlink is None:
            return errno.ENOSYS
        # mfusepy's order: symlink(target=new name, source=link contents).
        path = self._path(req.path)
        err = _status(self.f_symlink(
            path, req.target.decode(self._enc, self._err)))
        if not err:
            self._entry(path, None, result)
        return err

    def _rename(self, req, result):
        if self.f_rename is None:
            return errno.ENOSYS
        old, new = self._path(req.old_path), self._path(req.new_path)
        if self._rename_flags:
            return _status(self.f_rename(old, new, req.flags))
        if req.flags:
            return errno.EINVAL  # the protocol's answer to unknown flags
        return _status(self.f_rename(old, new))

    def _link(self, req, result):
        if self.f_link is None:
            return errno.ENOSYS
        # mfusepy's order: link(target=new name, source=existing file).
        new = self._path(req.new_path)
        err = _status(self.f_link(new, self._path(req.old_path)))
        if not err:
            self._entry(new, None, result)
        return err

    def _chmod(self, req, result):
        if self.f_chmod is None:
            return errno.ENOSYS
        path, fh = self._path(req.path), self._opt_fh(req)
        if fh is not None and self._fh_kw["chmod"]:
            err = _status(self.f_chmod(path, req.mode, fh=fh))
        else:
            err = _status(self.f_chmod(path, req.mode))
        if not err:
            self._entry(path, fh, result)
        return err

    def _chown(self, req, result):
        if self.f_chown is None:
            return errno.ENOSYS
        path, fh = self._path(req.path), self._opt_fh(req)
        # An unset id is chown(2)'s -1: leave it unchanged.
        uid = req.uid if req.HasField("uid") else -1
        gid = req.gid if req.HasField("gid") else -1
        if fh is not None and self._fh_kw["chown"]:
            err = _status(self.f_chown(path, uid, gid, fh=fh))
        else:
            err = _status(self.f_chown(path, uid, gid))
        if not err:
            self._entry(path, fh, result)
        return err

    def _truncate(self, req, result):
        if self.f_truncate is None:
            return errno.ENOSYS
        path, fh = self._path(req.path), self._opt_fh(req)
        if fh is not None:
            err = _status(self.f_truncate(path, req.size, fh))
        else:
            err = _status(self.f_truncate(path, req.size))
        if not err:
            self._entry(path, fh, result)
        return err

    def _time_arg(self, ts, current, now_ns):
        """One utimens time in the filesystem's unit."""
        kind = ts.kind
        if kind == _OMIT:
            return current
        if kind == _NOW:
            ns = now_ns
        else:
            t = ts.time
            ns = t.sec * 1000000000 + min(t.nsec, 999999999)
        return ns if self.use_ns else ns / 1e9

    def _times_of(self, st):
        """(atime, mtime) of a getattr result, in the filesystem's unit."""
        if type(st) is os.stat_result:
            if self.use_ns:
                return st.st_atime_ns, st.st_mtime_ns
            return st.st_atime, st.st_mtime
        return st.get("st_atime", 0), st.get("st_mtime", 0)

    def _utimens(self, req, result):
        if self.f_utimens is None:
            return errno.ENOSYS
        path, fh = self._path(req.path), self._opt_fh(req)
        a, m = req.atime, req.mtime
        if a.kind == _NOW and m.kind == _NOW:
            times = None  # mfusepy's "set both to the current time"
        else:
            old_a = old_m = 0
            if a.kind == _OMIT or m.kind == _OMIT:
                # mfusepy's utimens has no "leave unchanged": pass the
                # current value, as libfuse does without utime_omit_ok.
                st = self.f_getattr(path, fh) if fh is not None else \
                    self.f_getattr(path)
                old_a, old_m = self._times_of(st)
            now = time.time_ns()
            times = (self._time_arg(a, old_a, now),
                     self._time_arg(m, old_m, now))
        if fh is not None and self._fh_kw["utimens"]:
            err = _status(self.f_utimens(path, times, fh=fh))
        else:
            err = _status(self.f_utimens(path, times))
        if not err:
            self._entry(path, fh, result)
        return err

    def _fill_open(self, reply, fh, fi):
        reply.SetInParent()
        reply.fh = fh & _U64
        if fi is not None:
            reply.direct_io = bool(fi.direct_io) or self.options.direct_io
            reply.keep_cache = bool(fi.keep_cache) or \
                self.options.kernel_cache
            reply.nonseekable = bool(fi.nonseekable)
        else:
            if self.options.direct_io:
                reply.direct_io = True
            if self.options.kernel_cache:
                reply.keep_cache = True

    def _open(self, req, result):
        path = self._path(req.path)
        if self.f_open is None:
            fh, fi = 0, None
        elif self._raw_fi:
            fi = _convert.FileInfo(0, req.flags)
            err = _status(self.f_open(path, fi))
            if err:
                return err
            fh = fi.fh
        else:
            fh, fi = self.f_open(path, req.flags) or 0, None
        self._fill_open(result.open, fh, fi)
        return 0

    def _create(self, req, result):
        if self.f_create is None:
            # The kernel then makes the file with mknod and opens it.
            return errno.ENOSYS
        path = self._path(req.path)
        fi = None
        if self._raw_fi:
            fi = _convert.FileInfo(0, req.flags)
            err = _status(self.f_create(path, req.mode, fi))
            if err:
                return err
            fh = fi.fh
        elif self._create_two_args:
            fh = self.f_create(path, req.mode) or 0
        else:
            fh = self.f_create(path, req.mode, req.flags) or 0
        reply = result.create
        self._fill_open(reply.open, fh, fi)
        self._attrs_into(path, fi if fi is not None else fh, reply)
        return 0

    def _read(self, req, result):
        if self.f_read is None:
            return errno.ENOSYS
        size = req.size
        data = self.f_read(self._path(req.path), size, req.offset,
                           self._fh(req.fh))
        reply = result.read
        reply.SetInParent()
        if data:
            if type(data) is not bytes:
                data = data.encode(self._enc) if type(data) is str \
                    else bytes(data)
            # More than asked is cut anyway; not sending it saves the copy.
            reply.data = data if len(data) <= size else data[:size]
        return 0

    def _write(self, req, result):
        if self.f_write is None:
            return errno.ENOSYS
        data = req.data
        n = self.f_write(self._path(req.path), data, req.offset,
                         self._fh(req.fh, req.flags))
        if n is None:
            n = 0
        elif n < 0:
            return -n
        # Claiming more than was sent would make the kernel believe in data
        # that never existed.
        result.write.size = min(n, len(data))
        if self._cheap_getattr:
            self._attrs_into(self._path(req.path), self._fh(req.fh),
                             result.write)
        return 0

    def _statfs(self, req, result):
        if self.f_statfs is None:
            st = _DEFAULT_STATFS
        else:
            st = self.f_statfs(self._path(req.path))
        reply = result.statfs
        reply.SetInParent()
        _convert.fill_statfs(st, reply)
        return 0

    def _flush(self, req, result):
        if self.f_flush is None:
            return errno.ENOSYS  # the kernel stops sending flush
        return _status(self.f_flush(
            self._path(req.path), self._fh(req.fh, 0, req.lock_owner)))

    def _release(self, req, result):
        if self.f_release is None:
            return 0
        return _status(self.f_release(self._path(req.path),
                                      self._fh(req.fh, req.flags)))

    def _fsync(self, req, result):
        if self.f_fsync is None:
            return errno.ENOSYS  # the kernel stops sending fsync
        return _status(self.f_fsync(self._path(req.path), int(req.datasync),
                                    self._fh(req.fh)))

    def _xattr_name(self, raw):
        return raw.decode(self._enc, self._err)

    def _setxattr(self, req, result):
        if self.f_setxattr is None:
            return errno.ENOSYS  # the kernel then answers EOPNOTSUPP
        return _status(self.f_setxattr(
            self._path(req.path), self._xattr_name(req.name), req.value,
            req.flags))

    def _getxattr(self, req, result):
        if self.f_getxattr is None:
            return errno.ENOSYS
        value = self.f_getxattr(self._path(req.path),
                                self._xattr_name(req.name))
        if type(value) is str:
            value = value.encode(self._enc, self._err)
        reply = result.xattr
        reply.SetInParent()
        if value:
            reply.data = bytes(value)
        return 0

    def _listxattr(self, req, result):
        if self.f_listxattr is None:
            return errno.ENOSYS
        names = self.f_listxattr(self._path(req.path)) or ()
        enc, errs = self._enc, self._err
        data = b"".join((n.encode(enc, errs) if type(n) is str else bytes(n))
                        + b"\0" for n in names)
        reply = result.xattr
        reply.SetInParent()
        if data:
            reply.data = data
        return 0

    def _removexattr(self, req, result):
        if self.f_removexattr is None:
            return errno.ENOSYS
        return _status(self.f_removexattr(self._path(req.path),
                                          self._xattr_name(req.name)))

    def _opendir(self, req, result):
        # As in mfusepy, directories always get plain int handles (no raw_fi).
        fh = 0
        if self.f_opendir is not None:
            fh = self.f_opendir(self._path(req.path)) or 0
        reply = result.opendir
        reply.SetInParent()
        reply.fh = fh & _U64
        return 0

    def _readdir(self, req, result):
        path = self._path(req.path)
        reply = result.readdir
        reply.SetInParent()
        if self.f_readdir_offset is not None:
            items = self.f_readdir_offset(path, req.offset, req.fh)
            resumable = True
        elif self.f_readdir is not None:
            if req.offset:
                # The whole listing went out with the first reply.
                reply.eof = True
                return 0
            items = self.f_readdir(path, req.fh)
            resumable = False
        else:
            return errno.ENOSYS
        if items is None:
            reply.eof = True
            return 0
        _taken, exhausted = self._add_entries(items, reply, resumable,
                                              READDIR_PAGE)
        if not exhausted:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        reply.eof = exhausted
        return 0

    def _releasedir(self, req, result):
        if self.f_releasedir is None:
            return 0
        return _status(self.f_releasedir(self._path(req.path), req.fh))

    def _fsyncdir(self, req, result):
        if self.f_fsyncdir is None:
            return errno.ENOSYS
        return _status(self.f_fsyncdir(self._path(req.path),
                                       int(req.datasync), req.fh))

    def _access(self, req, result):
        if self.f_access is None:
            return errno.ENOSYS  # the kernel then allows every access
        return _status(self.f_access(self._path(req.path), req.mask))

    def _lock_op(self, req, result):
        if self.f_lock is None:
            return errno.ENOSYS
        lk = req.lock
        flock = _convert.Flock(lk.type, lk.start, lk.len, lk.pid)
        err = _status(self.f_lock(self._path(req.path),
                                  self._fh(req.fh, 0, req.lock_owner),
                                  req.cmd, flock))
        if not err and req.cmd == _F_GETLK:
            out = result.lock.lock
            out.SetInParent()
            out.type = flock.l_type
            out.start = max(flock.l_start, 0)
            out.len = max(flock.l_len, 0)
            out.pid = max(flock.l_pid, 0)
        return err

    def _flock(self, req, result):
        if self.f_flock is None:
            return errno.ENOSYS
        return _status(self.f_flock(self._path(req.path),
                                    self._fh(req.fh, 0, req.lock_owner),
                                    req.operation))

    def _fallocate(self, req, result):
        if self.f_fallocate is None:
            return errno.ENOSYS
        return _status(self.f_fallocate(self._path(req.path), req.mode,
                                        req.offset, req.length,
                                        self._fh(req.fh)))

    def _copy_file_range(self, req, result):
        if self.f_copy_file_range is None:
            return errno.ENOSYS  # the kernel copies through read and write
        n = self.f_copy_file_range(
            self._path(req.path_in), self._fh(req.fh_in), req.offset_in,
            self._path(req.path_out), self._fh(req.fh_out), req.offset_out,
            req.length, req.flags)
        if n is None:
            n = 0
        elif n < 0:
            return -n
        reply = result.copy_file_range
        reply.SetInParent()
        reply.size = min(n, req.length)
        return 0

    def _lseek(self, req, result):
        if self.f_lseek is None:
            return errno.ENOSYS  # the kernel's generic answer applies
        at = self.f_lseek(self._path(req.path), req.offset, req.whence,
                          self._fh(req.fh))
        if at is None or at < 0:
            return -at if at else errno.EINVAL
        reply = result.lseek
        reply.SetInParent()
        reply.offset = at
        return 0

    # --- init / destroy ---------------------------------------------------

    def init(self, request):
        """Calls init / init_with_config; returns an errno refusing the
        mount, or 0."""
        ops = self.ops
        try:
            if is_implemented(ops, "init_with_config"):
                conn = _convert.Settings(
                    proto_major=7, proto_minor=31, capable=0, want=0,
                    max_write=0, max_readahead=0, max_background=0,
                    congestion_threshold=0, time_gran=1)
                config = _convert.Settings(
                    set_gid=0, gid=0, set_uid=0, uid=0, set_mode=0, umask=0,
                    entry_timeout=1.0, negative_timeout=0.0,
                    attr_timeout=1.0, intr=0, intr_signal=0, remember=0,
                    hard_remove=1, use_ino=int(self.options.use_ino),
                    readdir_ino=0, direct_io=int(self.options.direct_io),
                    kernel_cache=int(self.options.kernel_cache),
                    auto_cache=0, ac_attr_timeout_set=0, ac_attr_timeout=0.0,
                    nullpath_ok=1, mount_options=list(request.options))
                ops.init_with_config(conn, config)
            elif is_implemented(ops, "init"):
                if self._via_call:
                    ops("init", "/")
                else:
                    ops.init("/")
            return 0
        except OSError as e:
            log.exception("init failed; refusing the mount")
            err = e.errno
            return err if type(err) is int and 0 < err <= MAX_ERRNO \
                else errno.EIO
        except Exception:
            log.exception("init failed; refusing the mount")
            return errno.EIO

    def destroy(self):
        ops = self.ops
        if not is_implemented(ops, "destroy"):
            return
        try:
            if self._via_call:
                ops("destroy", "/")
            else:
                ops.destroy("/")
        except Exception:
            log.exception("destroy raised")


def _short(req):
    text = str(req).replace("\n", " ")
    return text if len(text) <= 200 else text[:200] + "..."


class _BatchJob:
    """The ops of one Execute, claimed one at a time by the handler thread
    and helpers; `wait` returns when every op has finished (whoever ran it),
    never waiting for a helper that has not started."""

    def __init__(self, dispatcher, ops, slots, mount_id):
        self._run = dispatcher.run
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


class Servicer(pb_grpc.FileSystemServicer):
    """The FileSystem service for one Operations object (any number of
    mounts). `on_init(mount_id)` / `on_destroy(mount_id)` let FUSE() follow
    its mount."""

    # Notices an Invalidations stream may have waiting (see
    # _invalidations.py).
    max_queued_invalidations = _invalidations.DEFAULT_MAX_QUEUED

    def __init__(self, dispatcher, on_init=None, on_destroy=None):
        self.dispatcher = dispatcher
        self._on_init = on_init
        self._on_destroy = on_destroy
        self._serial = dispatcher.options.nothreads
        threads = dispatcher.options.threads
        self._helper_count = 0 if self._serial else threads
        self._helpers = None if self._serial else futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="fusehost-helper")
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
        err = self.dispatcher.init(request)
        reply = pb.InitReply(
            posix_errno=err, protocol_version=PROTOCOL_VERSION,
            posix_locks=self.dispatcher.posix_locks,
            flock_locks=self.dispatcher.flock_locks, name=self.name,
            default_ttl_ms=self.dispatcher.default_ttl_ms)
        if not err and self._on_init is not None:
            self._on_init(request.mount_id)
        return reply

    def Destroy(self, request, context):
        with self._mounts_lock:
            first = request.mount_id not in self._destroyed
            self._destroyed.add(request.mount_id)
        if first:
            self.dispatcher.destroy()
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
        # Notices are the backend's, not one mount's: every stream gets all
        # of them, so the request's mount_id needs no look-up.
        subscription = self._invalidations.subscribe(
            self.max_queued_invalidations)
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
        reply = pb.BatchResult()
        ops = batch.ops
        n = len(ops)
        results = reply.results
        run = self.dispatcher.run
        mount_id = batch.mount_id
        if n <= 1 or self._serial:
            for op in ops:
                run(op, results.add(), mount_id)
            return reply
        # Every slot exists before any thread writes one.
        slots = [results.add() for _ in range(n)]
        job = _BatchJob(self.dispatcher, ops, slots, mount_id)
        for _ in range(min(n - 1, self._helper_count)):
            self._helpers.submit(job.drain)
        job.drain()
        job.wait()
        return reply

    def shutdown(self):
        """After the server stopped: lets the threads go."""
        self.end_streams()
        if self._helpers is not None:
            self._helpers.shutdown(wait=False)
        self.workers.shutdown(wait=False)


def start_server(servicer, address):
    """Starts a gRPC server for `servicer` on `address` ("unix:/path" or
    "host:port"), running its handlers on `servicer.workers`. A Unix socket
    is made owner-only (0600): whoever can connect can send operations in
    any caller's name. Stop it with stop_server()."""
    server = grpc.server(
        servicer.workers,
        options=[("grpc.max_receive_message_length", _MESSAGE_LIMIT),
                 ("grpc.max_send_message_length", _MESSAGE_LIMIT),
                 ("grpc.so_reuseport", 0)])
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
        try:
            port = server.add_insecure_port(address)
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
                 on_critical=None, on_init=None, on_destroy=None):
    options = options or BackendOptions()
    options.raw_fi = raw_fi
    options.encoding = encoding
    if not getattr(operations, "use_ns", False):
        warnings.warn(
            "Time as floating point seconds for utimens is deprecated!\n"
            "To enable time as nanoseconds set the property \"use_ns\" to "
            "True in your operations class.", DeprecationWarning,
            stacklevel=3)
    dispatcher = Dispatcher(operations, options, on_critical)
    return Servicer(dispatcher, on_init, on_destroy)


_SERVE_OPTIONS = {"use_ino", "nothreads", "direct_io", "kernel_cache",
                  "debug", "threads", "errors"}


def backend_options(kwargs):
    """BackendOptions from keyword options; removes the ones it takes."""
    opts = BackendOptions()
    for key in list(kwargs):
        if key in _SERVE_OPTIONS:
            setattr(opts, key, kwargs.pop(key))
    opts.threads = opts.threads or 8
    return opts


def serve(operations, address, raw_fi=False, encoding="utf-8", **options):
    """Serves `operations` as a backend on `address` ("unix:/path/to.sock"
    or "host:port") until SIGINT or SIGTERM, for the daemon to mount with
    `fuse-hostctl mount ADDRESS MOUNTPOINT`.

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

    servicer = make_backend(operations, raw_fi, encoding, opts, on_critical)
    server = start_server(servicer, address)
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
