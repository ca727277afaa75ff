"""The class filesystem authors subclass, with mfusepy's names and conventions.

Every method has mfusepy's name, arguments, defaults and return convention,
so a filesystem written for mfusepy (or fusepy) runs unchanged. Methods a
subclass does not override are marked "not implemented" (`libfuse_ignore`,
as in mfusepy) and are answered the way libfuse answers a missing callback:
mostly ENOSYS, which the kernel turns into a sensible default (no xattrs,
access always allowed, create falls back to mknod + open, ...); open,
opendir, release and releasedir succeed; statfs reports an empty filesystem.
"""

import errno
import functools
import logging
import os
from stat import S_IFDIR

from . import _invalidations

# Linux values (mfusepy exports these names).
ENOTSUP = errno.ENOTSUP
ENOATTR = errno.ENODATA

log = logging.getLogger("fuse")


class FuseOSError(OSError):
    """Raise it with an errno value; the operation then fails with it."""

    def __init__(self, errno_value):
        super().__init__(errno_value, os.strerror(errno_value))


def _not_implemented(method):
    """Marks a default method: the SDK treats it as a missing callback."""
    method.libfuse_ignore = True
    return method


def is_implemented(ops, name):
    """Whether `ops` provides operation `name` (overrides the default)."""
    method = getattr(ops, name, None)
    # Not callable: fusepy's `lock = None`, or an attribute that happens to
    # have an operation's name.
    return callable(method) and not getattr(method, "libfuse_ignore", False)


class Operations:
    """Subclass this and override the operations your filesystem supports.

    Paths are absolute str ("/dir/file"; bytes that are not valid in the
    encoding come as lone surrogates, `os.fsencode` turns them back). Raise
    `FuseOSError(errno.ENOENT)` (or any OSError) to fail an operation;
    methods that return a status may also return a negative errno.

    release and releasedir, whose results reach nobody (the kernel has
    answered the close already), may run after later operations started:
    one sent with other operations runs on a helper thread after the SDK
    replied for them (unless nothreads).

    Handles (what open, create and opendir return) belong to one backend
    instance: each serve() or FUSE() call picks a random instance number
    and tells the daemon, which says with every operation which instance
    issued its handle. Operations carrying the handles of an earlier run
    (the backend restarted while files were open) fail with EBADF before
    any method here is called; nothing is needed from the filesystem for
    that. Within one process, prefer handles that are never reused (a
    counter into a dict) to raw descriptor numbers, and raise EBADF for a
    handle you do not know.

    Class attributes the SDK reads, as mfusepy does:
      use_ns           True: times are int nanoseconds (getattr's st_*time,
                       utimens' times); False: float seconds (deprecated).
      flag_nullpath_ok True: the filesystem copes with path None for
                       operations on open files whose name is gone.
      wanted_features  FUSE_CAP_* flags to ask for; fuse-hostd offers
                       FUSE_CAP_POSIX_ACL: the kernel enforces the ACLs
                       getxattr returns for system.posix_acl_access and
                       system.posix_acl_default (pack_posix_acl makes
                       them), and checks permissions itself.
    fusehost extensions: getattr may return an os.stat_result, and
    readdir's attrs may be one (cheaper than a dict); readdir's tuples may
    carry a fourth item, the file's xattr names as os.listxattr gives them
    (the daemon then answers getxattr of other names, e.g. the ACL `ls -l`
    asks every file for, and listxattr itself); chmod, chown and
    utimens get the open file's handle when they name an `fh` parameter;
    rename gets renameat2's flags when it names a third parameter (a
    decorator's *args names none: such methods are called as mfusepy calls
    them). And one more class attribute:
      readdir_attrs_are_full  (default True) attrs dicts that readdir returns
                       with more than st_mode are complete stat results, so
                       the daemon may cache them as getattr answers. Set it
                       False if your readdir's dicts are partial.
      getattr_is_cheap (default False) True: replies carry the attributes
                       the kernel asks for next, got with getattr (the
                       file's after a write, the directory's after a name
                       was added or removed in it), each sparing a later
                       round trip. For filesystems whose getattr is a
                       local stat.
      default_ttl      (default None: the daemon's, 1 s) seconds for which
                       the daemon and the kernel may keep attributes,
                       listings and absent names; mount options
                       (attr_timeout, negative_timeout) override it.
      passthrough      True: open and create may return
                       fusehost.Passthrough(fd), the descriptor of the local
                       file they opened; the kernel then reads and writes it
                       directly (see _passthrough.py).
      passthrough_root (with passthrough) a descriptor of the directory
                       whose files are this filesystem's, path for path (a
                       loopback), for a filesystem whose open for reading
                       only opens: fuse-hostd then opens files for reading
                       beneath it itself, and open is called only when an
                       operation needs the filesystem's handle. It stays
                       the filesystem's (O_PATH will do).
      passthrough_root_as_caller  True: those files are opened as the
                       caller of each open (a filesystem that acts as its
                       callers); else as this process's user.
      passthrough_root_changes_attributes  True: chmod, chown and utimens
                       are nothing but those system calls on the file
                       beneath passthrough_root (as the user above), and
                       this filesystem need not see them: fuse-hostd then
                       makes them itself, without calling chmod, chown or
                       utimens, unless it cannot (any error), when the
                       method is called and its answer stands. getattr
                       of a path is then the file's own lstat there,
                       too: fuse-hostd answers lookups its cache cannot
                       itself (a missing name's ENOENT too), and calls
                       getattr for the root and for what it cannot
                       answer.
      passthrough_root_removes_names  True: unlink and rmdir are nothing
                       but unlinkat(2) of the name beneath passthrough_root,
                       likewise: fuse-hostd then removes names itself.
      passthrough_root_creates_files  True: create is nothing but open(2)
                       with O_CREAT of the name beneath passthrough_root,
                       likewise (mode as given: the caller's umask is
                       already applied), and a later call on the file may
                       as well get a handle open() makes by path: fuse-hostd
                       then creates new files itself and calls open only if
                       an operation ever needs this filesystem's handle.
      unsupported_xattr_prefixes  (default ()) extended attribute names
                       the filesystem does not keep, by prefix (str), e.g.
                       ("security.selinux",): the daemon answers them
                       EOPNOTSUPP without calling getxattr, setxattr or
                       removexattr and leaves them out of listxattr, so
                       that ls -l learns at the first file that the mount
                       has none. At most 16.
    When files change other than through the mount, call notify_changed,
    notify_removed or notify_subtree_changed (see there).
    """

    # --- invalidations (fusehost extension) ---------------------------------
    #
    # The daemon caches attributes, listings, symlink targets and absent
    # names (for default_ttl, or the mount's timeouts), and so does the
    # kernel. A filesystem whose files also change another way (another
    # client of the backing store, a directory changed on the host) calls
    # these so that the daemon drops what it cached about `path` and tells
    # the kernel, instead of serving stale results until a lifetime runs
    # out. `path` is absolute, as in operations ("/" for the root), str or
    # bytes. Changes made by the filesystem's own operations need no notice
    # to the mount that made them; with several mounts, the others need one:
    # pass `except_mount`, the mount_id of fuse_get_caller() in the
    # operation that made the change, and every mount but that one gets the
    # notice (its daemon knows what its own operations did).
    #
    # Any thread may call them, at any time, also from inside an operation
    # and while nothing is mounted: they only queue (never wait for the
    # network), and notices are delivered in call order to every mount the
    # daemon made with this object. With none mounted a notice is dropped,
    # which loses nothing: the daemon drops all it cached whenever it
    # (re)connects. A mount more than 10,000 notices behind has its queue
    # replaced by one notify_subtree_changed("/").

    def notify_changed(self, path, except_mount=None):
        """The file at `path` changed (contents or attributes) or appeared.
        A name that appeared or vanished also changed its parent directory
        (listing, mtime): notify the parent too."""
        _invalidations.publish(self, _invalidations.CHANGED, path,
                               except_mount)

    def notify_removed(self, path, except_mount=None):
        """The name `path` no longer exists (unlinked, renamed away)."""
        _invalidations.publish(self, _invalidations.REMOVED, path,
                               except_mount)

    def notify_subtree_changed(self, path, except_mount=None):
        """Anything at or below `path` may have changed, e.g. a directory
        was renamed or replaced, or the filesystem lost track."""
        _invalidations.publish(self, _invalidations.SUBTREE, path,
                               except_mount)

    def __call__(self, op, *args):
        # fusepy's dispatch hook: the SDK calls operations through it when a
        # subclass (e.g. LoggingMixIn) overrides it.
        if not hasattr(self, op):
            raise FuseOSError(errno.EFAULT)
        return getattr(self, op)(*args)

    @_not_implemented
    def access(self, path, amode):
        return 0

    # Never called: bmap only exists for block-device mounts.
    bmap = None

    @_not_implemented
    def chmod(self, path, mode):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def chown(self, path, uid, gid):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def create(self, path, mode, fi=None):
        """Creates and opens a file; returns a numeric file handle.

        Called as create(path, mode, flags), or create(path, mode) when the
        method takes only two arguments; with raw_fi, as create(path, mode,
        fi): set fi.fh and return 0.
        """
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def destroy(self, path):
        """Called when the mount goes away. Path is always '/'."""

    @_not_implemented
    def flush(self, path, fh):
        return 0

    @_not_implemented
    def fsync(self, path, datasync, fh):
        return 0

    @_not_implemented
    def fsyncdir(self, path, datasync, fh):
        return 0

    def getattr(self, path, fh=None):
        """Returns a dict with the keys of struct stat (st_mode, st_size...).

        st_atime, st_mtime and st_ctime are int nanoseconds with use_ns,
        float seconds otherwise.
        """
        if path != "/":
            raise FuseOSError(errno.ENOENT)
        return {"st_mode": (S_IFDIR | 0o755), "st_nlink": 2}

    @_not_implemented
    def getxattr(self, path, name, position=0):
        """Returns the value (bytes) of extended attribute `name`."""
        raise FuseOSError(ENOTSUP)

    @_not_implemented
    def init(self, path):
        """Called when the filesystem is mounted, before any other operation.
        Path is always '/'. Start threads here rather than in __init__."""

    @_not_implemented
    def init_with_config(self, conn_info, config_3):
        """Like init, with objects standing in for libfuse's fuse_conn_info
        and fuse_config (their settings are informational here, except the
        features conn_info.set_feature_flag asks for)."""

    @_not_implemented
    def ioctl(self, path, cmd, arg, fh, flags, data):
        """ioctl(2) of an open file or directory, for commands whose number
        says what they pass (_IOC direction and size). `data` is the
        address of a buffer (ctypes.memmove, ctypes.string_at) holding what
        the command passes in, large enough for what it passes back, or
        None when it passes nothing; `arg` is the caller's argument as a
        number (None for 0); `flags` has FUSE_IOCTL_DIR (16) on a
        directory. Returns ioctl(2)'s value (0 or more). Unknown commands:
        raise FuseOSError(errno.ENOTTY), as this default does."""
        raise FuseOSError(errno.ENOTTY)

    @_not_implemented
    def link(self, target, source):
        """Creates a hard link `target` to the existing `source` (ln source
        target)."""
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def listxattr(self, path):
        """Returns the names (str) of the extended attributes."""
        return []

    @_not_implemented
    def lock(self, path, fh, cmd, lock):
        """POSIX record locks (fcntl F_GETLK/F_SETLK/F_SETLKW). `lock` has
        l_type, l_whence, l_start, l_len, l_pid; update it for F_GETLK.
        When not overridden the kernel keeps locks itself."""
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def mkdir(self, path, mode):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def mknod(self, path, mode, dev):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def open(self, path, flags):
        """Returns a numeric file handle (with raw_fi: open(path, fi), set
        fi.fh and return 0)."""
        return 0

    @_not_implemented
    def opendir(self, path):
        """Returns a numeric file handle."""
        return 0

    @_not_implemented
    def read(self, path, size, offset, fh):
        """Returns at most `size` bytes at `offset`; fewer means end of file."""
        raise FuseOSError(errno.EIO)

    @_not_implemented
    def readdir(self, path, fh):
        """Returns (or yields) names, or (name, attrs, offset) tuples where
        attrs is a getattr dict, an int st_mode, or None. Offsets are
        ignored: the whole listing is sent at once (override
        readdir_with_offset for resumable listings)."""
        return [".", ".."]

    @_not_implemented
    def readdir_with_offset(self, path, offset, fh):
        """Like readdir, but resumable: yields (name, attrs, offset) with
        increasing non-zero offsets, starting after `offset` (0: from the
        start). Used instead of readdir when overridden."""
        return self.readdir(path, fh)

    @_not_implemented
    def readlink(self, path):
        """Returns the target of symlink `path` (str)."""
        raise FuseOSError(errno.ENOENT)

    @_not_implemented
    def release(self, path, fh):
        return 0

    @_not_implemented
    def releasedir(self, path, fh):
        return 0

    @_not_implemented
    def removexattr(self, path, name):
        raise FuseOSError(ENOTSUP)

    @_not_implemented
    def rename(self, old, new):
        """Renames `old` to `new`. A method that names a third parameter
        also gets renameat2's flags (RENAME_NOREPLACE, RENAME_EXCHANGE);
        without one (a decorator's *args does not count), renames with
        flags fail with EINVAL."""
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def rmdir(self, path):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def setxattr(self, path, name, value, options, position=0):
        raise FuseOSError(ENOTSUP)

    @_not_implemented
    def statfs(self, path):
        """Returns a dict with the keys of struct statvfs (f_bsize, ...)."""
        return {}

    @_not_implemented
    def symlink(self, target, source):
        """Creates symlink `target` pointing to `source` (ln -s source
        target)."""
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def truncate(self, path, length, fh=None):
        """Sets the size. A method that names a third parameter gets the
        open file's handle there when the kernel truncates through one
        (ftruncate, O_TRUNC), else None."""
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def unlink(self, path):
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def utimens(self, path, times=None):
        """Sets (atime, mtime); None means both to the current time."""
        return 0

    @_not_implemented
    def write(self, path, data, offset, fh):
        """Writes bytes `data` at `offset`; returns the number written."""
        raise FuseOSError(errno.EROFS)

    @_not_implemented
    def poll(self, path, fh, ph, reventsp):
        # Never called (see the proto); kept for mfusepy's API.
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def write_buf(self, path, buf, offset, fh):
        # Never called: write() receives the data.
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def read_buf(self, path, bufpp, size, offset, fh):
        # Never called: read() returns the data.
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def flock(self, path, fh, op):
        """flock(2): op is LOCK_SH, LOCK_EX or LOCK_UN, maybe | LOCK_NB.
        When not overridden the kernel emulates flock itself."""
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def fallocate(self, path, mode, offset, size, fh):
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def copy_file_range(self, path_in, fh_in, offset_in, path_out, fh_out,
                        offset_out, length, flags):
        """Copies up to `length` bytes between two open files; returns the
        number copied. Not overridden: the kernel copies through read and
        write."""
        raise FuseOSError(errno.ENOSYS)

    @_not_implemented
    def lseek(self, path, offset, whence, fh):
        """lseek(2) with SEEK_DATA or SEEK_HOLE; returns the new offset."""
        raise FuseOSError(errno.ENOSYS)


class LoggingMixIn:
    """Logs every operation with its arguments and result (logger
    'fuse.log-mixin', level DEBUG). Put it before Operations in the bases."""

    log = logging.getLogger("fuse.log-mixin")

    def __call__(self, op, path, *args):
        self.log.debug("-> %s %s %s", op, path, repr(args))
        ret = "[Unhandled Exception]"
        try:
            ret = getattr(self, op)(path, *args)
            return ret
        except OSError as e:
            ret = str(e)
            raise
        finally:
            self.log.debug("<- %s %s", op, repr(ret))


_callback_log = logging.getLogger("fuse.log-mixin")


def log_callback(method):
    """Decorator: logs calls of one operation (as LoggingMixIn does for all)."""

    @functools.wraps(method)
    def logged(*args):
        # args[0] is self.
        _callback_log.debug("-> %s %s", method.__name__, repr(args[1:]))
        ret = "[Unhandled Exception]"
        try:
            ret = method(*args)
            return ret
        except OSError as e:
            ret = str(e)
            raise
        finally:
            _callback_log.debug("<- %s %s", method.__name__, repr(ret))

    return logged


def overrides(parent_class):
    """Decorator checking that the method overrides one of `parent_class`."""

    def check(method):
        if method.__name__ not in dir(parent_class):
            raise AssertionError("%s does not override a method of %s" %
                                 (method.__name__, parent_class.__name__))
        return method

    return check
