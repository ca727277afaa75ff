"""Runs one Op of a Batch against the author's Operations object and fills
its OpResult: the protocol's rules that hold for every operation, around the
op-by-op translations (_translate_metadata.py, _translate_files.py). They
mirror the C++ SDK's client/op_dispatcher.cc:

* the result echoes the op's id; an unset op, or one newer than this SDK,
  answers ENOSYS;
* an op carrying a handle issued by another backend instance (its
  handle_instance neither 0 nor the dispatcher's `instance`) answers EBADF
  without reaching the operations: the number may name another file now;
* errors: an OSError becomes its errno (a negative return value of a status
  operation too); any other exception becomes EINVAL, with its traceback
  logged, as mfusepy does; errnos above the protocol's largest become EIO.
  A failed result carries nothing but its id and errno, and one op's failure
  never touches the others of its batch;
* the operation runs with fuse_get_context() telling its caller;
* after an op that added or removed a name, when the filesystem says
  getattr is cheap, the result carries the directory's attributes.

Threads: Dispatcher.run may be called from any number of threads at once
(the operations are then called concurrently, as mfusepy's are), except with
`nothreads`, where a lock lets one operation run at a time.
"""

import errno
import logging
import threading

from . import _context
from . import _translate_files
from . import _translate_ioctl
from . import _translate_metadata
from ._bound_ops import BoundOperations
from ._proto import pb

log = logging.getLogger("fuse")

# Errnos above it become EIO (see proto/filesystem.proto).
MAX_ERRNO = pb.LIMIT_MAX_ERRNO

# Every translation, by the Op field that carries its request.
_TRANSLATIONS = dict(_translate_metadata.TRANSLATIONS)
_TRANSLATIONS.update(_translate_files.TRANSLATIONS)
_TRANSLATIONS.update(_translate_ioctl.TRANSLATIONS)
_NAME_CHANGES = _translate_metadata.NAME_CHANGES

# Ops that carry a handle the backend issued (fh, fh_in, fh_out): those on
# open files always, the attribute ops only when the kernel asked through
# an open file (their optional fh is set).
_HANDLE_OPS = frozenset((
    "read", "write", "flush", "release", "fsync", "readdir", "releasedir",
    "fsyncdir", "lock", "flock", "fallocate", "copy_file_range", "lseek"))
_OPTIONAL_HANDLE_OPS = frozenset((
    "getattr", "chmod", "chown", "truncate", "utimens", "ioctl"))


class Dispatcher:
    """Runs Ops against one Operations object, as backend instance
    `instance` (nonzero; see _handshake.new_instance). `on_critical(exc)` is
    told of a BaseException (SystemExit) that escaped an operation."""

    def __init__(self, ops, options, instance, on_critical=None):
        self.ops = ops
        self.options = options
        self.instance = instance
        self.bound = BoundOperations(ops, options)
        self._on_critical = on_critical
        self._lock = threading.Lock() if options.nothreads else None
        self._debug = options.debug
        self.use_ns = self.bound.use_ns
        self.default_ttl_ms = self.bound.default_ttl_ms
        self.posix_locks = self.bound.posix_locks
        self.flock_locks = self.bound.flock_locks
        self.ioctl = self.bound.ioctl
        self.wire_path = self.bound.wire_path

    def run(self, op, result, mount_id):
        """Runs `op`, filling `result` (a fresh OpResult)."""
        result.id = op.id
        kind = op.WhichOneof("op")
        translate = _TRANSLATIONS.get(kind)
        if translate is None:
            # Unset, or an operation newer than this SDK.
            result.posix_errno = errno.ENOSYS
            return
        req = getattr(op, kind)
        foreign = op.handle_instance
        # Or a handle an earlier op was to bring (fh_from_op), outside a
        # batch run in order (_batch._run_in_order fills those in).
        if op.fh_from_op or foreign and foreign != self.instance and (
                kind in _HANDLE_OPS or
                (kind in _OPTIONAL_HANDLE_OPS and req.HasField("fh"))):
            result.posix_errno = errno.EBADF
            return
        if self._debug:
            log.debug("op %d %s %s caller=%d/%d/%d", op.id, kind,
                      _short(req), op.caller.uid, op.caller.gid,
                      op.caller.pid)
        b = self.bound
        _context.set_current(op.caller, mount_id)
        try:
            if self._lock is None:
                err = translate(b, req, result)
            else:
                with self._lock:
                    err = translate(b, req, result)
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
        elif b.cheap_getattr and kind in _NAME_CHANGES:
            # As the same caller: getattr may look at fuse_get_context().
            _context.set_current(op.caller, mount_id)
            try:
                _translate_metadata.fill_parent_attrs(b, kind, req, result)
            finally:
                _context.clear_current()


def _short(req):
    text = str(req).replace("\n", " ")
    return text if len(text) <= 200 else text[:200] + "..."
