"""The author's Operations object, bound once for the translations to call.

Looks up, when a backend is made, which operations the object implements
(mfusepy's `libfuse_ignore` marks the defaults left alone) and how each must
be called (fusepy's __call__ hook, signatures that change the calling
convention), and holds the conversions every translation shares: wire paths
to str, handles to ints or FileInfo objects, getattr results into Attr
messages.

Threads: read-only after construction, so any number of threads may use one
BoundOperations at once; the operations themselves must cope with that, as
under mfusepy.
"""

import functools
import inspect
import logging

from . import _convert
from ._does_nothing import does_nothing
from ._operations import Operations, is_implemented

log = logging.getLogger("fuse")

# Every operation the protocol carries, by the Operations method that
# implements it (readdir_with_offset is readdir's resumable form).
OPERATION_NAMES = (
    "getattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
    "rename", "link", "chmod", "chown", "truncate", "utimens", "open",
    "create", "read", "write", "statfs", "flush", "release", "fsync",
    "setxattr", "getxattr", "listxattr", "removexattr", "opendir", "readdir",
    "readdir_with_offset", "releasedir", "fsyncdir", "access", "lock",
    "flock", "fallocate", "copy_file_range", "lseek", "ioctl",
)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY,
               inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
               inspect.Parameter.KEYWORD_ONLY)


def _parameters(fn):
    """The parameters of a bound method (self left out), or None when its
    signature cannot be read (some builtins)."""
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _param_count(fn):
    params = _parameters(fn)
    return -1 if params is None else len(params)


def declares_positional(fn, n):
    """Whether `fn` names at least `n` positional parameters. A decorator's
    `*args` names none: it says nothing about what the method beneath
    takes, so optional arguments beyond mfusepy's are never passed
    through one."""
    params = _parameters(fn)
    return params is not None and sum(
        p.kind in _POSITIONAL for p in params) >= n


def accepts_positional(fn, n):
    """Whether `fn` can be called with `n` positional arguments: it names
    them or takes `*args` (a decorator passing on what mfusepy passes)."""
    params = _parameters(fn)
    if params is None:
        return True
    return declares_positional(fn, n) or any(
        p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)


def declares_keyword(fn, name):
    """Whether `fn` names a parameter `name` that a keyword can set."""
    params = _parameters(fn)
    return params is not None and any(
        p.name == name and p.kind in _BY_KEYWORD for p in params)


def status(ret):
    """The errno of a status-returning operation's result (0, None, or a
    negative errno as in libfuse)."""
    if type(ret) is int and ret < 0:
        return -ret
    return 0


class BoundOperations:
    """One Operations object and the options it is served with.

    `f_NAME` is the callable of operation NAME, or None when the object
    leaves it out (the translation then answers as libfuse answers a
    missing callback)."""

    def __init__(self, ops, options):
        self.ops = ops
        self.options = options
        self.enc = options.encoding
        self.errors = options.errors
        self.raw_fi = options.raw_fi
        self.use_ns = bool(getattr(ops, "use_ns", False))
        # open/create may answer Passthrough(fd) (see _passthrough.py);
        # the server sets the sender when the filesystem asks for it.
        self.passthrough = bool(getattr(ops, "passthrough", False))
        self.descriptors = None
        # The directory fuse-hostd may open files beneath (a loopback's).
        root = getattr(ops, "passthrough_root", None)
        if root is not None and (type(root) is not int or root < 0):
            raise TypeError("passthrough_root must be a file descriptor")
        self.passthrough_root = root
        self.root_as_caller = bool(
            getattr(ops, "passthrough_root_as_caller", False))
        self.root_changes_attributes = bool(
            getattr(ops, "passthrough_root_changes_attributes", False))
        self.root_removes_names = bool(
            getattr(ops, "passthrough_root_removes_names", False))
        self.root_creates_files = bool(
            getattr(ops, "passthrough_root_creates_files", False))
        # Replies then carry the attributes the kernel asks for next.
        self.cheap_getattr = bool(getattr(ops, "getattr_is_cheap", False))
        # Checked here so that a bad value fails FUSE() / serve() at once
        # rather than every mount.
        self.default_ttl_ms = _convert.ttl_ms(getattr(ops, "default_ttl",
                                                      None))
        self.unsupported_xattr_prefixes = _convert.xattr_prefixes(
            getattr(ops, "unsupported_xattr_prefixes", ()), self.enc,
            self.errors)
        self.fill_attr = _convert.make_attr_filler(self.use_ns,
                                                   options.use_ino)
        self.add_entries = _convert.make_entries_filler(
            self.fill_attr, self.enc, self.errors,
            getattr(ops, "readdir_attrs_are_full", True))
        # fusepy routes every call through Operations.__call__; honour a
        # subclass that overrides it (its LoggingMixIn does).
        cls_call = getattr(type(ops), "__call__", None)
        self.via_call = (cls_call is not None and
                         cls_call is not Operations.__call__)
        for name in OPERATION_NAMES:
            setattr(self, "f_" + name, self._fn(name))
        # How each method is called where libfuse 2 and 3 differ, decided
        # by the parameters it names (never by a decorator's *args):
        # * create(path, mode) when it takes two parameters, else with the
        #   open flags too (mfusepy's rule, which counts them all);
        # * getattr(path, fh), fh None without a handle, as mfusepy calls
        #   it; getattr(path) when it takes only the path;
        # * rename gets renameat2's flags as a third argument, and truncate
        #   the handle as one, only when the method names a third
        #   parameter (mfusepy passes neither: libfuse 2 has no such
        #   arguments, its libfuse 3 wrapper drops them);
        # * chmod, chown and utimens get the handle as the keyword `fh`
        #   only when they name that parameter.
        self.create_two_args = self.f_create is not None and _param_count(
            getattr(ops, "create")) == 2
        self.getattr_fh = accepts_positional(getattr(ops, "getattr"), 2)
        self.rename_flags = self.f_rename is not None and \
            declares_positional(getattr(ops, "rename"), 3)
        self.truncate_fh = self.f_truncate is not None and \
            declares_positional(getattr(ops, "truncate"), 3)
        self.fh_kw = {name: is_implemented(ops, name) and
                      declares_keyword(getattr(ops, name), "fh")
                      for name in ("chmod", "chown", "utimens")}
        self.posix_locks = self.f_lock is not None
        self.flock_locks = self.f_flock is not None
        # Opens then say so (OpenReply.noflush) and the kernel sends no
        # FLUSH on close. A FLUSH also releases the closer's POSIX locks,
        # which only matters when the filesystem keeps them itself.
        self.flush_does_nothing = not self.posix_locks and (
            self.f_flush is None or does_nothing(getattr(ops, "flush")))
        self.ioctl = self.f_ioctl is not None
        self.no_xattrs = all(getattr(self, "f_" + name) is None for name in (
            "getxattr", "listxattr", "setxattr", "removexattr"))
        # Without opendir and releasedir, readdir gets handle 0 anyway: the
        # daemon may list a directory with readdir alone
        # (InitReply.lists_by_path).
        self.lists_by_path = self.f_opendir is None and \
            self.f_releasedir is None

    def _fn(self, name):
        """The callable for operation `name`, or None if not implemented."""
        if not is_implemented(self.ops, name):
            return None
        if self.via_call:
            return functools.partial(self.ops, name)
        return getattr(self.ops, name)

    def call_hook(self, name):
        """Calls init or destroy ("/" as path, as mfusepy does), through
        __call__ when the object routes calls there."""
        if self.via_call:
            self.ops(name, "/")
        else:
            getattr(self.ops, name)("/")

    # --- arguments --------------------------------------------------------

    def path(self, raw):
        # Empty: the file has no name any more (flag_nullpath_ok's None).
        return raw.decode(self.enc, self.errors) if raw else None

    def wire_path(self, path):
        """A path of a notice (str or bytes) as the protocol's bytes, in
        the encoding operations get their paths in."""
        if type(path) is bytes:
            return path
        return path.encode(self.enc, self.errors)

    def fh(self, fh, flags=0, lock_owner=0):
        if self.raw_fi:
            return _convert.FileInfo(fh, flags, lock_owner)
        return fh

    def opt_fh(self, req):
        return self.fh(req.fh) if req.HasField("fh") else None

    # --- attributes -------------------------------------------------------

    def getattr_of(self, path, fh):
        """getattr of `path`, through the open file `fh` when not None."""
        if self.getattr_fh:
            return self.f_getattr(path, fh)
        return self.f_getattr(path)

    def attrs_into(self, path, fh, reply):
        """Fills reply.attr from getattr. A failing getattr leaves it unset:
        the operation itself succeeded, and the daemon then asks on its
        own."""
        try:
            st = self.getattr_of(path, fh)
        except Exception:
            log.debug("getattr after an operation failed", exc_info=True)
            return
        attr = reply.attr
        attr.SetInParent()
        try:
            self.fill_attr(st, attr)
        except Exception:
            log.debug("bad getattr result %r", st, exc_info=True)
            reply.ClearField("attr")

    def attr_into(self, path, attr, holder, field):
        """Fills `attr` (holder's `field`) from getattr of `path`; clears
        the field when that fails."""
        try:
            st = self.getattr_of(path, None)
            attr.SetInParent()
            self.fill_attr(st, attr)
        except Exception:
            log.debug("getattr of %r after an operation failed", path,
                      exc_info=True)
            holder.ClearField(field)
