"""Translations of the operations on open files and directories: each takes
the protocol's request, calls the author's method the mfusepy way, and fills
the OpResult.

Ops here: open, create, read, write, flush, release, fsync, opendir,
readdir, releasedir, fsyncdir, lock, flock, fallocate, copy_file_range and
lseek. Handles go to the methods as ints, or as FileInfo objects with
raw_fi (directories always get ints, as in mfusepy).

Every translation is `fn(b, req, result) -> errno`, with `b` the
BoundOperations, as in _translate_metadata.py. Replies never claim more than
was asked or sent: reads longer than asked are cut, and write and
copy_file_range counts are capped at the request's length. After create the
reply carries the new file's attributes, and after a write too when the
filesystem says getattr is cheap.

Threads: no state of their own; they run concurrently on any thread.
"""

import errno
import logging
import os

from . import _context
from . import _convert
from ._bound_ops import status
from ._passthrough import Passthrough
from ._proto import pb

log = logging.getLogger("fuse")

# Items per reply of a resumable (readdir_with_offset) listing.
READDIR_PAGE = 1024
_U64 = (1 << 64) - 1
_F_GETLK = 5


def _handle(fh):
    """The handle of an open's answer, and its Passthrough if it is one."""
    if isinstance(fh, Passthrough):
        return fh.fh, fh
    return fh, None


def _offer(b, reply, passthrough, tag):
    """Sends the descriptor before the reply it goes with."""
    sender = b.descriptors
    if passthrough is not None and sender is not None and sender.send(
            _context.current_mount_id(), tag, passthrough.fd):
        reply.passthrough = True


def _fill_open(b, reply, fh, fi):
    reply.SetInParent()
    reply.fh = fh & _U64
    reply.noflush = b.flush_does_nothing
    options = b.options
    if fi is not None:
        reply.direct_io = bool(fi.direct_io) or options.direct_io
        reply.keep_cache = bool(fi.keep_cache) or options.kernel_cache
        reply.nonseekable = bool(fi.nonseekable)
    else:
        if options.direct_io:
            reply.direct_io = True
        if options.kernel_cache:
            reply.keep_cache = True


def open_op(b, req, result):
    path = b.path(req.path)
    if b.f_open is None:
        fh, fi = 0, None
    elif b.raw_fi:
        fi = _convert.FileInfo(0, req.flags)
        err = status(b.f_open(path, fi))
        if err:
            return err
        fh = fi.fh
    else:
        fh, fi = b.f_open(path, req.flags) or 0, None
    fh, passthrough = _handle(fh)
    if fi is not None:
        fi.fh = fh
    _fill_open(b, result.open, fh, fi)
    _offer(b, result.open, passthrough, req.passthrough_tag)
    if (req.contents_up_to and passthrough is None and
            not result.open.direct_io and
            (req.flags & os.O_ACCMODE) == os.O_RDONLY):
        _read_whole(b, req, fh, result.open)
    return 0


def _read_whole(b, req, fh, reply):
    """Puts the file into the open's reply when it is at most
    req.contents_up_to bytes (the daemon's cached size says it should be):
    the kernel's first read, which follows at once, then costs no round
    trip. One byte more is asked for, so a file that grew is seen and left
    to the reads. Nothing is sent if the read fails: the kernel's own read
    will tell."""
    want = req.contents_up_to
    scratch = pb.OpResult()
    try:
        err = read(b, pb.ReadRequest(path=req.path, fh=fh, offset=0,
                                     size=want + 1), scratch)
    except Exception:
        log.debug("reading %r whole at open failed", req.path, exc_info=True)
        return
    if not err and len(scratch.read.data) <= want:
        reply.contents = scratch.read.data


def create(b, req, result):
    if b.f_create is None:
        # The kernel then makes the file with mknod and opens it.
        return errno.ENOSYS
    path = b.path(req.path)
    fi = None
    if b.raw_fi:
        fi = _convert.FileInfo(0, req.flags)
        err = status(b.f_create(path, req.mode, fi))
        if err:
            return err
        fh = fi.fh
    elif b.create_two_args:
        fh = b.f_create(path, req.mode) or 0
    else:
        fh = b.f_create(path, req.mode, req.flags) or 0
    fh, passthrough = _handle(fh)
    if fi is not None:
        fi.fh = fh
    reply = result.create
    _fill_open(b, reply.open, fh, fi)
    b.attrs_into(path, fi if fi is not None else fh, reply)
    _offer(b, reply.open, passthrough, req.passthrough_tag)
    return 0


def read(b, req, result):
    if b.f_read is None:
        return errno.ENOSYS
    size = req.size
    data = b.f_read(b.path(req.path), size, req.offset, b.fh(req.fh))
    reply = result.read
    reply.SetInParent()
    if data:
        if type(data) is not bytes:
            data = data.encode(b.enc) if type(data) is str else bytes(data)
        # More than asked is cut anyway; not sending it saves the copy.
        reply.data = data if len(data) <= size else data[:size]
    return 0


def write(b, req, result):
    if b.f_write is None:
        return errno.ENOSYS
    data = req.data
    n = b.f_write(b.path(req.path), data, req.offset,
                  b.fh(req.fh, req.flags))
    if n is None:
        n = 0
    elif n < 0:
        return -n
    # Claiming more than was sent would make the kernel believe in data
    # that never existed.
    result.write.size = min(n, len(data))
    if b.cheap_getattr:
        b.attrs_into(b.path(req.path), b.fh(req.fh), result.write)
    return 0


def flush(b, req, result):
    if b.f_flush is None:
        return errno.ENOSYS  # the kernel stops sending flush
    return status(b.f_flush(b.path(req.path),
                            b.fh(req.fh, 0, req.lock_owner)))


def release(b, req, result):
    if b.f_release is None:
        return 0
    return status(b.f_release(b.path(req.path), b.fh(req.fh, req.flags)))


def fsync(b, req, result):
    if b.f_fsync is None:
        return errno.ENOSYS  # the kernel stops sending fsync
    return status(b.f_fsync(b.path(req.path), int(req.datasync),
                            b.fh(req.fh)))


def opendir(b, req, result):
    # As in mfusepy, directories always get plain int handles (no raw_fi).
    fh = 0
    if b.f_opendir is not None:
        fh = b.f_opendir(b.path(req.path)) or 0
    reply = result.opendir
    reply.SetInParent()
    reply.fh = fh & _U64
    return 0


def readdir(b, req, result):
    path = b.path(req.path)
    reply = result.readdir
    reply.SetInParent()
    if b.f_readdir_with_offset is not None:
        items = b.f_readdir_with_offset(path, req.offset, req.fh)
        resumable = True
    elif b.f_readdir is not None:
        if req.offset:
            # The whole listing went out with the first reply.
            reply.eof = True
            return 0
        items = b.f_readdir(path, req.fh)
        resumable = False
    else:
        return errno.ENOSYS
    if items is None:
        reply.eof = True
        return 0
    _taken, exhausted = b.add_entries(items, reply, resumable, READDIR_PAGE)
    if not exhausted:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    reply.eof = exhausted
    return 0


def releasedir(b, req, result):
    if b.f_releasedir is None:
        return 0
    return status(b.f_releasedir(b.path(req.path), req.fh))


def fsyncdir(b, req, result):
    if b.f_fsyncdir is None:
        return errno.ENOSYS
    return status(b.f_fsyncdir(b.path(req.path), int(req.datasync), req.fh))


def lock(b, req, result):
    if b.f_lock is None:
        return errno.ENOSYS
    lk = req.lock
    flock_arg = _convert.Flock(lk.type, lk.start, lk.len, lk.pid)
    err = status(b.f_lock(b.path(req.path), b.fh(req.fh, 0, req.lock_owner),
                          req.cmd, flock_arg))
    if not err and req.cmd == _F_GETLK:
        out = result.lock.lock
        out.SetInParent()
        out.type = flock_arg.l_type
        out.start = max(flock_arg.l_start, 0)
        out.len = max(flock_arg.l_len, 0)
        out.pid = max(flock_arg.l_pid, 0)
    return err


def flock(b, req, result):
    if b.f_flock is None:
        return errno.ENOSYS
    return status(b.f_flock(b.path(req.path),
                            b.fh(req.fh, 0, req.lock_owner), req.operation))


def fallocate(b, req, result):
    if b.f_fallocate is None:
        return errno.ENOSYS
    return status(b.f_fallocate(b.path(req.path), req.mode, req.offset,
                                req.length, b.fh(req.fh)))


def copy_file_range(b, req, result):
    if b.f_copy_file_range is None:
        return errno.ENOSYS  # the kernel copies through read and write
    n = b.f_copy_file_range(
        b.path(req.path_in), b.fh(req.fh_in), req.offset_in,
        b.path(req.path_out), b.fh(req.fh_out), req.offset_out,
        req.length, req.flags)
    if n is None:
        n = 0
    elif n < 0:
        return -n
    reply = result.copy_file_range
    reply.SetInParent()
    reply.size = min(n, req.length)
    return 0


def lseek(b, req, result):
    if b.f_lseek is None:
        return errno.ENOSYS  # the kernel's generic answer applies
    at = b.f_lseek(b.path(req.path), req.offset, req.whence, b.fh(req.fh))
    if at is None or at < 0:
        return -at if at else errno.EINVAL
    reply = result.lseek
    reply.SetInParent()
    reply.offset = at
    return 0


# The translations of this module, by the Op field that carries each.
TRANSLATIONS = {
    "open": open_op, "create": create, "read": read, "write": write,
    "flush": flush, "release": release, "fsync": fsync, "opendir": opendir,
    "readdir": readdir, "releasedir": releasedir, "fsyncdir": fsyncdir,
    "lock": lock, "flock": flock, "fallocate": fallocate,
    "copy_file_range": copy_file_range, "lseek": lseek,
}
