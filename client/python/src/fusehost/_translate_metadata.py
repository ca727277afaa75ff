"""Translations of the operations on names and their metadata: each takes
the protocol's request, calls the author's method the mfusepy way, and fills
the OpResult.

Ops here: getattr, readlink, mknod, mkdir, unlink, rmdir, symlink, rename,
link, chmod, chown, truncate, utimens, the four xattr operations, statfs and
access; and the protocol's rule of which of them carry the attributes of the
directory that changed (OpResult.parent_attr).

Every translation is `fn(b, req, result) -> errno`, with `b` the
BoundOperations: 0 after filling `result`, an errno to fail the op (the
caller then clears the reply). Exceptions of the author's method propagate
to the dispatcher, which maps them (see _dispatch.py). After a successful
mknod/mkdir/symlink/link/chmod/chown/truncate/utimens the entry reply carries
the file's attributes (from getattr), which saves the daemon a round trip.

Threads: no state of their own; they run concurrently on any thread.
"""

import errno
import os
import time

from . import _convert
from ._bound_ops import status
from ._proto import pb

_OMIT, _NOW = pb.TimeSet.OMIT, pb.TimeSet.NOW
_DEFAULT_STATFS = {"f_bsize": 512, "f_namemax": 255}

# Operations that add or remove a name: their request's field naming the
# (new) path, and the old path's for a rename.
NAME_CHANGES = {
    "mknod": ("path", None), "mkdir": ("path", None),
    "symlink": ("path", None), "link": ("new_path", None),
    "create": ("path", None), "unlink": ("path", None),
    "rmdir": ("path", None), "rename": ("new_path", "old_path"),
}


def parent_of(path):
    """'/a/b' -> '/a', '/a' -> '/'."""
    slash = path.rfind("/")
    return "/" if slash <= 0 else path[:slash]


def fill_parent_attrs(b, kind, req, result):
    """After `kind` (one of NAME_CHANGES) added or removed a name: the
    attributes of the directory holding it (and for a rename across
    directories, the old one's), which the kernel asks for before its next
    change there."""
    new, old = NAME_CHANGES[kind]
    path = b.path(getattr(req, new))
    b.attr_into(parent_of(path), result.parent_attr, result, "parent_attr")
    if old is not None:
        old_parent = parent_of(b.path(getattr(req, old)))
        if old_parent != parent_of(path):
            b.attr_into(old_parent, result.old_parent_attr, result,
                        "old_parent_attr")


def _entry(b, path, fh, result):
    """Sets the entry reply, with the attributes of `path` when getattr
    gives them. Set either way: the protocol sets the reply matching the op
    on every success, and an entry without attr tells the daemon to ask."""
    reply = result.entry
    reply.SetInParent()
    b.attrs_into(path, fh, reply)


def getattr_op(b, req, result):
    st = b.getattr_of(b.path(req.path), b.opt_fh(req))
    attr = result.getattr.attr
    attr.SetInParent()
    b.fill_attr(st, attr)
    return 0


def readlink(b, req, result):
    if b.f_readlink is None:
        return errno.ENOSYS
    target = b.f_readlink(b.path(req.path))
    if type(target) is str:
        target = target.encode(b.enc, b.errors)
    result.readlink.target = bytes(target)
    return 0


def mknod(b, req, result):
    if b.f_mknod is None:
        return errno.ENOSYS
    path = b.path(req.path)
    err = status(b.f_mknod(path, req.mode, req.rdev))
    if not err:
        _entry(b, path, None, result)
    return err


def mkdir(b, req, result):
    if b.f_mkdir is None:
        return errno.ENOSYS
    path = b.path(req.path)
    err = status(b.f_mkdir(path, req.mode))
    if not err:
        _entry(b, path, None, result)
    return err


def unlink(b, req, result):
    if b.f_unlink is None:
        return errno.ENOSYS
    return status(b.f_unlink(b.path(req.path)))


def rmdir(b, req, result):
    if b.f_rmdir is None:
        return errno.ENOSYS
    return status(b.f_rmdir(b.path(req.path)))


def symlink(b, req, result):
    if b.f_symlink is None:
        return errno.ENOSYS
    # mfusepy's order: symlink(target=new name, source=link contents).
    path = b.path(req.path)
    err = status(b.f_symlink(path, req.target.decode(b.enc, b.errors)))
    if not err:
        _entry(b, path, None, result)
    return err


def rename(b, req, result):
    if b.f_rename is None:
        return errno.ENOSYS
    old, new = b.path(req.old_path), b.path(req.new_path)
    if b.rename_flags:
        return status(b.f_rename(old, new, req.flags))
    if req.flags:
        return errno.EINVAL  # the protocol's answer to unknown flags
    return status(b.f_rename(old, new))


def link(b, req, result):
    if b.f_link is None:
        return errno.ENOSYS
    # mfusepy's order: link(target=new name, source=existing file).
    new = b.path(req.new_path)
    err = status(b.f_link(new, b.path(req.old_path)))
    if not err:
        _entry(b, new, None, result)
    return err


def chmod(b, req, result):
    if b.f_chmod is None:
        return errno.ENOSYS
    path, fh = b.path(req.path), b.opt_fh(req)
    if fh is not None and b.fh_kw["chmod"]:
        err = status(b.f_chmod(path, req.mode, fh=fh))
    else:
        err = status(b.f_chmod(path, req.mode))
    if not err:
        _entry(b, path, fh, result)
    return err


def chown(b, req, result):
    if b.f_chown is None:
        return errno.ENOSYS
    path, fh = b.path(req.path), b.opt_fh(req)
    # An unset id is chown(2)'s -1: leave it unchanged.
    uid = req.uid if req.HasField("uid") else -1
    gid = req.gid if req.HasField("gid") else -1
    if fh is not None and b.fh_kw["chown"]:
        err = status(b.f_chown(path, uid, gid, fh=fh))
    else:
        err = status(b.f_chown(path, uid, gid))
    if not err:
        _entry(b, path, fh, result)
    return err


def truncate(b, req, result):
    if b.f_truncate is None:
        return errno.ENOSYS
    path, fh = b.path(req.path), b.opt_fh(req)
    if fh is not None and b.truncate_fh:
        err = status(b.f_truncate(path, req.size, fh))
    else:
        err = status(b.f_truncate(path, req.size))
    if not err:
        _entry(b, path, fh, result)
    return err


def _time_arg(b, ts, current, now_ns):
    """One utimens time in the filesystem's unit."""
    kind = ts.kind
    if kind == _OMIT:
        return current
    if kind == _NOW:
        ns = now_ns
    else:
        t = ts.time
        ns = t.sec * 1000000000 + min(t.nsec, 999999999)
    return ns if b.use_ns else ns / 1e9


def _times_of(b, st):
    """(atime, mtime) of a getattr result, in the filesystem's unit."""
    if type(st) is os.stat_result:
        if b.use_ns:
            return st.st_atime_ns, st.st_mtime_ns
        return st.st_atime, st.st_mtime
    return st.get("st_atime", 0), st.get("st_mtime", 0)


def utimens(b, req, result):
    if b.f_utimens is None:
        return errno.ENOSYS
    path, fh = b.path(req.path), b.opt_fh(req)
    a, m = req.atime, req.mtime
    if a.kind == _NOW and m.kind == _NOW:
        times = None  # mfusepy's "set both to the current time"
    else:
        old_a = old_m = 0
        if a.kind == _OMIT or m.kind == _OMIT:
            # mfusepy's utimens has no "leave unchanged": pass the
            # current value, as libfuse does without utime_omit_ok.
            old_a, old_m = _times_of(b, b.getattr_of(path, fh))
        now = time.time_ns()
        times = (_time_arg(b, a, old_a, now), _time_arg(b, m, old_m, now))
    if fh is not None and b.fh_kw["utimens"]:
        err = status(b.f_utimens(path, times, fh=fh))
    else:
        err = status(b.f_utimens(path, times))
    if not err:
        _entry(b, path, fh, result)
    return err


def _xattr_name(b, raw):
    return raw.decode(b.enc, b.errors)


def setxattr(b, req, result):
    if b.f_setxattr is None:
        return errno.ENOSYS  # the kernel then answers EOPNOTSUPP
    return status(b.f_setxattr(b.path(req.path), _xattr_name(b, req.name),
                               req.value, req.flags))


def getxattr(b, req, result):
    if b.f_getxattr is None:
        return errno.ENOSYS
    value = b.f_getxattr(b.path(req.path), _xattr_name(b, req.name))
    if type(value) is str:
        value = value.encode(b.enc, b.errors)
    reply = result.xattr
    reply.SetInParent()
    if value:
        reply.data = bytes(value)
    return 0


def listxattr(b, req, result):
    if b.f_listxattr is None:
        return errno.ENOSYS
    names = b.f_listxattr(b.path(req.path)) or ()
    enc, errs = b.enc, b.errors
    data = b"".join((n.encode(enc, errs) if type(n) is str else bytes(n))
                    + b"\0" for n in names)
    reply = result.xattr
    reply.SetInParent()
    if data:
        reply.data = data
    return 0


def removexattr(b, req, result):
    if b.f_removexattr is None:
        return errno.ENOSYS
    return status(b.f_removexattr(b.path(req.path),
                                  _xattr_name(b, req.name)))


def statfs(b, req, result):
    if b.f_statfs is None:
        st = _DEFAULT_STATFS
    else:
        st = b.f_statfs(b.path(req.path))
    reply = result.statfs
    reply.SetInParent()
    _convert.fill_statfs(st, reply)
    return 0


def access(b, req, result):
    if b.f_access is None:
        return errno.ENOSYS  # the kernel then allows every access
    return status(b.f_access(b.path(req.path), req.mask))


# The translations of this module, by the Op field that carries each.
TRANSLATIONS = {
    "getattr": getattr_op, "readlink": readlink, "mknod": mknod,
    "mkdir": mkdir, "unlink": unlink, "rmdir": rmdir, "symlink": symlink,
    "rename": rename, "link": link, "chmod": chmod, "chown": chown,
    "truncate": truncate, "utimens": utimens, "setxattr": setxattr,
    "getxattr": getxattr, "listxattr": listxattr,
    "removexattr": removexattr, "statfs": statfs, "access": access,
}
