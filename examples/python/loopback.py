#!/usr/bin/python3
"""A loopback filesystem: mirrors one host directory through fuse-hostd.

The Python counterpart of examples/loopback (loopback_fs), on the mfusepy
API. Like it:
* every operation runs as the user who asked (the thread's fsuid, fsgid and
  supplementary groups are switched for the length of the operation, when
  this process runs as root), so permissions, ACLs and ownership of new
  files are exactly what that user gets on the directory itself;
* paths are resolved below an O_PATH descriptor of the root with the *at()
  calls, intermediate directories with openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS), so no path leaves the root even if someone swaps a
  directory for a symlink on the host;
* open files and directories are real descriptors, so unlinked open files
  keep working; fh is a number from a handle table (_Handles), never the
  descriptor number, and unknown handles answer EBADF;
* a write, truncate, fallocate or O_TRUNC open by a caller other than root
  clears the file's set-user-ID bit, and its set-group-ID bit when it is
  group-executable, as on the host (see Loopback.chmod for the kernel's
  part in it);
* it watches the directory with inotify (tree_watch.py) and tells the
  daemon what changed there other than through the mount, so the daemon and
  the kernel may cache for a minute and changes on the host still show at
  once; its own changes are recognised (own_changes.py) and announced only
  to the other mounts of the same object, if any, so that with two mounts
  of one directory a change through one shows through the other at once.
  `--no-watch` turns that off: then everything is cached for 1 s.

For speed it uses fusehost extensions mfusepy does not have: getattr and
readdir hand back os.stat_result objects (no dict per file), readdir entries
carry each file's xattr names (the daemon then answers `ls -l`'s getxattr of
ACLs itself), and chmod, chown and utimens take the file handle (fh=) of
fchmod & co.

Build the package once (`bazel build //...`), then, as root with fuse-hostd
running:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/loopback.py /srv/data /mnt/data -o allow_other

or serve it for `fuse-hostctl mount unix:/tmp/loop.sock /mnt/data`:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/loopback.py /srv/data --listen unix:/tmp/loop.sock
"""

import contextlib
import ctypes
import errno
import fcntl
import functools
import itertools
import logging
import os
import platform
import stat
import threading

import example_cli
import fusehost as fuse
import own_changes
import tree_watch

log = logging.getLogger("loopback")

# How long the daemon and the kernel may cache while the tree is watched.
WATCHED_TTL = 60
# What _changing gives when nothing is watched (reusable).
_NOT_WATCHED = contextlib.nullcontext()

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                            ctypes.c_int64]
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_uint]

# Raw syscall numbers: glibc's setgroups() changes every thread of the
# process; the syscall changes only the calling one.
_SYSCALLS = {
    "x86_64": {"setgroups": 116, "openat2": 437},
    "aarch64": {"setgroups": 159, "openat2": 437},
}.get(platform.machine(), {})

RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


# openat2(2) as a ctypes function with fixed argument types, and one
# immutable open_how: converting arguments is most of a ctypes call's cost.
_HOW = _OpenHow(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0,
                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
_HOW_REF = ctypes.byref(_HOW)
_HOW_SIZE = ctypes.sizeof(_HOW)
_OPENAT2_NR = _SYSCALLS.get("openat2", -1)
_openat2 = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                            use_errno=True)(("syscall", _libc))


def _check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def _set_thread_groups(groups):
    array = (ctypes.c_uint * len(groups))(*groups)
    _check(_libc.syscall(_SYSCALLS["setgroups"], ctypes.c_size_t(len(groups)),
                         array))


class CallerCredentials:
    """Switches the calling thread's fsuid, fsgid and groups to the caller's
    for one operation. While fsuid is not 0 the kernel also drops the
    thread's filesystem capabilities, so a root backend really gets the
    caller's rights."""

    @staticmethod
    def process_can_switch():
        if os.geteuid() != 0 or "setgroups" not in _SYSCALLS:
            return False
        try:
            with CallerCredentials(65534, 65534, ()):
                pass
            return True
        except OSError:
            return False

    def __init__(self, uid, gid, groups):
        self.uid, self.gid, self.groups = uid, gid, groups

    def __enter__(self):
        self.saved_groups = os.getgroups()
        _set_thread_groups(self.groups)
        self.saved_gid = _libc.setfsgid(self.gid)
        self.saved_uid = _libc.setfsuid(self.uid)
        if _libc.setfsuid(-1) != self.uid or _libc.setfsgid(-1) != self.gid:
            self.__exit__()
            raise OSError(errno.EPERM, "cannot act as uid %d" % self.uid)
        return self

    def __exit__(self, *exc):
        _libc.setfsuid(self.saved_uid)
        _libc.setfsgid(self.saved_gid)
        _set_thread_groups(self.saved_groups)
        if _libc.setfsuid(-1) != self.saved_uid:
            # Going on would run later operations as a stranger.
            os.abort()


class _Handles:
    """Open files and directories by handle: numbers from a counter, never
    twice in a process, each mapped to the descriptor it owns. The
    descriptor number itself is no handle: the kernel gives a closed
    descriptor's number to the next open, so a handle that outlived its file
    (held by the kernel across a backend restart, or simply wrong) would
    reach whatever file got the number since, another user's included.

    Thread-safe without a lock of its own: taking the next number and each
    dict operation are atomic in CPython. A descriptor is closed at release,
    which the kernel sends only when no operation on that open file is
    under way."""

    def __init__(self):
        self._fds = {}
        self._next = itertools.count(1).__next__

    def add(self, fd):
        """Takes ownership of descriptor `fd`; returns its new handle."""
        fh = self._next()
        self._fds[fh] = fd
        return fh

    def fd(self, fh):
        """The descriptor of handle `fh`; EBADF when there is none."""
        fd = self._fds.get(fh)
        if fd is None:
            raise fuse.FuseOSError(errno.EBADF)
        return fd

    def close(self, fh):
        """Forgets handle `fh` and closes its descriptor."""
        fd = self._fds.pop(fh, None)
        if fd is None:
            raise fuse.FuseOSError(errno.EBADF)
        os.close(fd)


def as_caller(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        caller = fuse.fuse_get_caller() if self.switch else None
        if caller is None or (caller.uid == 0 and caller.gid == self.gid):
            return method(self, *args, **kwargs)
        with CallerCredentials(caller.uid, caller.gid, caller.groups):
            return method(self, *args, **kwargs)

    return run


class Loopback(fuse.Operations):
    use_ns = True
    flag_nullpath_ok = True
    getattr_is_cheap = True  # an fstatat

    def __init__(self, root, act_as_caller=True, watch=True):
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.switch = act_as_caller and CallerCredentials.process_can_switch()
        self.gid = os.getegid()
        self.have_openat2 = "openat2" in _SYSCALLS and self._probe_openat2()
        self.handles = _Handles()
        # getdents moves a directory descriptor's shared offset.
        self.dir_locks = [threading.Lock() for _ in range(16)]
        self.own = self.watcher = None
        if watch:
            try:
                self.own = own_changes.OwnChanges(self.root_fd)
                self.watcher = tree_watch.TreeWatcher(self._open_beneath,
                                                      self._announce)
                # Read by the SDK when serving starts: long lifetimes are
                # safe only while changes on the host are announced.
                self.default_ttl = WATCHED_TTL
            except OSError as e:
                log.warning("cannot watch %s for changes (%s): caching for "
                            "1 s only", root, e)
                self.own = None

    def _probe_openat2(self):
        try:
            os.close(self._openat2("."))
            return True
        except OSError:
            return False

    def _openat2(self, rel):
        while True:
            fd = _openat2(_OPENAT2_NR, self.root_fd, os.fsencode(rel),
                          _HOW_REF, _HOW_SIZE)
            if fd >= 0:
                return fd
            if ctypes.get_errno() != errno.EAGAIN:  # EAGAIN: a rename raced
                _check(fd)

    def _at(self, path, op):
        """Runs op(dir_fd, name) for the last component of `path`."""
        if not path:
            raise fuse.FuseOSError(errno.ENOENT)  # unlinked: no name left
        head, _, name = path.rpartition("/")
        if not head:
            return op(self.root_fd, name or ".")
        if self.have_openat2:
            parent = self._openat2(head[1:])
        else:
            parent = os.open(head[1:], os.O_PATH | os.O_DIRECTORY |
                             os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.root_fd)
        try:
            return op(parent, name)
        finally:
            os.close(parent)

    def _open_beneath(self, rel):
        """O_PATH descriptor of directory `rel` (bytes, b"" for the root),
        resolved as operations resolve paths: never leaving the root."""
        if self.have_openat2:
            return self._openat2(rel or b".")
        return os.open(rel or b".", os.O_PATH | os.O_DIRECTORY |
                       os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.root_fd)

    # --- changes on the host -----------------------------------------------

    def init(self, path):
        # Here rather than in __init__: FUSE() may fork before serving, and
        # threads do not survive that.
        if self.watcher is not None:
            self.watcher.start()

    def _announce(self, changes):
        """The watcher's sink: tells the daemon, each change to every mount
        but the one whose own operation made it."""
        for kind, path in changes:
            own = self.own.explained_by(path)
            if kind == tree_watch.CHANGED:
                self.notify_changed(path, except_mount=own)
            elif kind == tree_watch.REMOVED:
                self.notify_removed(path, except_mount=own)
            else:
                self.notify_subtree_changed(path, except_mount=own)

    def _changing(self, *paths):
        """Wraps one change of ours to `paths` (None is skipped), by the
        operation running on this thread, so that the watcher's notices
        about them are recognised as that operation's mount's."""
        if self.own is None:
            return _NOT_WATCHED
        caller = fuse.fuse_get_caller()
        return self.own.changing(
            paths, caller.mount_id if caller is not None else None)

    def _at2(self, old, new, op):
        return self._at(old, lambda d1, n1: self._at(
            new, lambda d2, n2: op(d1, n1, d2, n2)))

    @staticmethod
    def _by_path(dir_fd, name, op):
        """op("/proc/self/fd/N") for calls without an *at() form: N is an
        O_PATH descriptor of `name` itself, so nothing is followed."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        try:
            return op(fd, "/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)

    # --- names --------------------------------------------------------------

    @as_caller
    def getattr(self, path, fh=None):
        if fh is not None:
            return os.fstat(self.handles.fd(fh))
        return self._at(path, lambda d, n: os.stat(n, dir_fd=d,
                                                   follow_symlinks=False))

    @as_caller
    def readlink(self, path):
        return self._at(path, lambda d, n: os.readlink(n, dir_fd=d))

    @as_caller
    def mknod(self, path, mode, dev):
        with self._changing(path, _parent(path)):
            self._at(path, lambda d, n: os.mknod(n, mode, dev, dir_fd=d))

    @as_caller
    def mkdir(self, path, mode):
        with self._changing(path, _parent(path)):
            self._at(path, lambda d, n: os.mkdir(n, mode, dir_fd=d))

    @as_caller
    def unlink(self, path):
        with self._changing(path, _parent(path)):
            self._at(path, lambda d, n: os.unlink(n, dir_fd=d))

    @as_caller
    def rmdir(self, path):
        with self._changing(path, _parent(path)):
            self._at(path, lambda d, n: os.rmdir(n, dir_fd=d))

    @as_caller
    def symlink(self, target, source):
        with self._changing(target, _parent(target)):
            self._at(target, lambda d, n: os.symlink(source, n, dir_fd=d))

    @as_caller
    def rename(self, old, new, flags=0):
        def op(d1, n1, d2, n2):
            if not flags:
                return os.rename(n1, n2, src_dir_fd=d1, dst_dir_fd=d2)
            # The kernel answers EINVAL for flags the filesystem cannot do.
            return _check(_libc.renameat2(d1, os.fsencode(n1), d2,
                                          os.fsencode(n2), flags))
        with self._changing(old, _parent(old), new, _parent(new)):
            self._at2(old, new, op)

    @as_caller
    def link(self, target, source):
        # The new name, its directory, and the file's link count.
        with self._changing(target, _parent(target), source):
            self._at2(source, target, lambda d1, n1, d2, n2: os.link(
                n1, n2, src_dir_fd=d1, dst_dir_fd=d2, follow_symlinks=False))

    # --- attributes -----------------------------------------------------------

    def chmod(self, path, mode, fh=None):
        try:
            return self._chmod(path, mode, fh)
        except PermissionError as e:
            # Before a write or truncate by a caller without CAP_FSETID, the
            # kernel clears the file's set-id bits with this very request,
            # in that caller's name, who need not own the file. Refused, the
            # write would fail and the bits stay (the mount leaves killpriv
            # to the filesystem).
            if e.errno != errno.EPERM or not self._drop_set_id_bits(
                    path, mode, fh):
                raise

    def _drop_set_id_bits(self, path, mode, fh):
        """Does chmod `mode` as this process if it only drops bits a write
        by the caller clears and the caller may write the file (the kernel's
        request above); returns False, changing nothing, otherwise."""
        fd, may_write = self._file_and_write_access(path, fh)
        try:
            st = os.fstat(fd)
            have, want = stat.S_IMODE(st.st_mode), mode & 0o7777
            dropped = have & ~want
            if (not may_write or not stat.S_ISREG(st.st_mode) or
                    want & ~have or
                    dropped & ~_set_id_bits_cleared_by_writes(have)):
                return False
            if dropped:  # else gone already: the kernel's mode was older
                with self._changing(path):
                    os.chmod("/proc/self/fd/%d" % fd, want)
            return True
        finally:
            os.close(fd)

    @as_caller
    def _file_and_write_access(self, path, fh):
        """(a new descriptor of the file, whether the caller may write
        it), found as the caller: a handle open for writing, or write
        permission as access(2) judges it."""
        if fh is not None:
            fd = self.handles.fd(fh)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            return os.dup(fd), flags & os.O_ACCMODE != os.O_RDONLY

        def op(d, n):
            may_write = os.access(n, os.W_OK, dir_fd=d, effective_ids=True,
                                  follow_symlinks=False)
            return os.open(n, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=d), may_write
        return self._at(path, op)

    def _clear_set_id_bits(self, fd):
        """After a change through `fd` that clears set-id bits (a write,
        truncate, fallocate, O_TRUNC open): clears them when the change ran
        as this process and the caller is not root. (As the caller, the
        host kernel did: the thread has no CAP_FSETID then.)"""
        caller = fuse.fuse_get_caller()
        if self.switch or caller is None or caller.uid == 0:
            return
        st = os.fstat(fd)
        bits = _set_id_bits_cleared_by_writes(st.st_mode)
        if bits and stat.S_ISREG(st.st_mode):
            try:
                # Through /proc: `fd` may be an O_PATH descriptor.
                os.chmod("/proc/self/fd/%d" % fd, stat.S_IMODE(st.st_mode) &
                         ~bits)
            except OSError:
                pass  # as the host left them; the change itself happened

    @as_caller
    def _chmod(self, path, mode, fh):
        if fh is not None:
            fd = self.handles.fd(fh)
            with self._changing(path):
                return os.fchmod(fd, mode)

        def op(fd, proc_path):
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise fuse.FuseOSError(errno.EOPNOTSUPP)  # as Linux
            os.chmod(proc_path, mode)
        with self._changing(path):
            self._at(path, lambda d, n: self._by_path(d, n, op))

    @as_caller
    def chown(self, path, uid, gid, fh=None):
        fd = None if fh is None else self.handles.fd(fh)
        with self._changing(path):
            if fd is not None:
                return os.fchown(fd, uid, gid)
            self._at(path, lambda d, n: os.chown(n, uid, gid, dir_fd=d,
                                                 follow_symlinks=False))

    @as_caller
    def truncate(self, path, length, fh=None):
        fd = None if fh is None else self.handles.fd(fh)
        with self._changing(path):
            if fd is not None:
                os.ftruncate(fd, length)
                return self._clear_set_id_bits(fd)

            # truncate(2) through an O_PATH descriptor checks write
            # permission as truncate(2) does, without opening (which blocks
            # on a FIFO).
            def op(fd, proc_path):
                os.truncate(proc_path, length)
                self._clear_set_id_bits(fd)
            self._at(path, lambda d, n: self._by_path(d, n, op))

    @as_caller
    def utimens(self, path, times=None, fh=None):
        fd = None if fh is None else self.handles.fd(fh)
        with self._changing(path):
            if fd is not None:
                return os.utime(fd, ns=times) if times else os.utime(fd)
            if times is None:
                return self._at(path, lambda d, n: os.utime(
                    n, dir_fd=d, follow_symlinks=False))
            self._at(path, lambda d, n: os.utime(n, ns=times, dir_fd=d,
                                                 follow_symlinks=False))

    # --- open files -------------------------------------------------------------

    # O_NOFOLLOW: the kernel resolved symlinks before asking, so one here was
    # swapped in on the host. O_DIRECT: FUSE already sends such I/O here.
    _DROP = os.O_CREAT | os.O_EXCL | os.O_DIRECT

    @as_caller
    def open(self, path, flags):
        flags = (flags & ~self._DROP) | os.O_CLOEXEC | os.O_NOFOLLOW
        if not flags & os.O_TRUNC:
            fd = self._at(path, lambda d, n: os.open(n, flags, dir_fd=d))
        else:
            with self._changing(path):
                fd = self._at(path, lambda d, n: os.open(n, flags, dir_fd=d))
                self._clear_set_id_bits(fd)
        return self.handles.add(fd)

    @as_caller
    def create(self, path, mode, flags):
        # O_EXCL only when asked: the kernel sends create whenever it
        # believes the name absent; a file made on the host meanwhile is
        # then simply opened, as open(O_CREAT) would.
        flags = (flags & ~os.O_DIRECT) | os.O_CREAT | os.O_CLOEXEC | \
            os.O_NOFOLLOW
        with self._changing(path, _parent(path)):
            fd = self._at(path, lambda d, n: os.open(n, flags, mode & 0o7777,
                                                     dir_fd=d))
            if flags & os.O_TRUNC:  # the name existed after all: emptied
                self._clear_set_id_bits(fd)
        return self.handles.add(fd)

    def read(self, path, size, offset, fh):
        fd = self.handles.fd(fh)
        data = os.pread(fd, size, offset)
        if 0 < len(data) < size:
            # A short read means end of file to the kernel: make sure it is.
            chunks = [data]
            got = len(data)
            while got < size:
                more = os.pread(fd, size - got, offset + got)
                if not more:
                    break
                chunks.append(more)
                got += len(more)
            data = b"".join(chunks)
        return data

    @as_caller
    def write(self, path, data, offset, fh):
        # As the caller: a write by a user without CAP_FSETID clears the
        # file's set-id bits, which a root backend would keep.
        fd = self.handles.fd(fh)
        with self._changing(path):
            done = os.pwrite(fd, data, offset)
            while done < len(data):
                n = os.pwrite(fd, memoryview(data)[done:], offset + done)
                if n <= 0:
                    break
                done += n
            if done:
                self._clear_set_id_bits(fd)
        return done

    def statfs(self, path):
        st = os.statvfs(self.root_fd)
        return {key: getattr(st, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
            "f_files", "f_ffree", "f_favail", "f_namemax")}

    def flush(self, path, fh):
        # close(2) of one of the application's descriptors: closing a
        # duplicate reports what close would (e.g. NFS write-back errors).
        os.close(os.dup(self.handles.fd(fh)))
        return 0

    def release(self, path, fh):
        self.handles.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        fd = self.handles.fd(fh)
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)
        return 0

    @as_caller
    def fallocate(self, path, mode, offset, size, fh):
        fd = self.handles.fd(fh)
        with self._changing(path):
            _check(_libc.fallocate(fd, mode, offset, size))
            self._clear_set_id_bits(fd)
        return 0

    def copy_file_range(self, path_in, fh_in, offset_in, path_out, fh_out,
                        offset_out, length, flags):
        if flags:
            raise fuse.FuseOSError(errno.EINVAL)
        fd_in, fd_out = self.handles.fd(fh_in), self.handles.fd(fh_out)
        with self._changing(path_out):
            n = os.copy_file_range(fd_in, fd_out, length, offset_in,
                                   offset_out)
            if n:
                self._clear_set_id_bits(fd_out)
        return n

    def lseek(self, path, offset, whence, fh):
        return os.lseek(self.handles.fd(fh), offset, whence)

    # --- extended attributes: the l*xattr calls on /proc/self/fd/DIR/NAME act
    # on the last component itself.

    @staticmethod
    def _xattr_path(d, n):
        return "/proc/self/fd/%d/%s" % (d, n)

    @as_caller
    def setxattr(self, path, name, value, options, position=0):
        with self._changing(path):
            self._at(path, lambda d, n: os.setxattr(
                self._xattr_path(d, n), name, value, options,
                follow_symlinks=False))

    @as_caller
    def getxattr(self, path, name, position=0):
        return self._at(path, lambda d, n: os.getxattr(
            self._xattr_path(d, n), name, follow_symlinks=False))

    @as_caller
    def listxattr(self, path):
        return self._at(path, lambda d, n: os.listxattr(
            self._xattr_path(d, n), follow_symlinks=False))

    @as_caller
    def removexattr(self, path, name):
        with self._changing(path):
            self._at(path, lambda d, n: os.removexattr(
                self._xattr_path(d, n), name, follow_symlinks=False))

    # --- directories --------------------------------------------------------------

    @as_caller
    def opendir(self, path):
        # As opendir(3): read permission is checked now, as the caller.
        return self.handles.add(self._at(path, lambda d, n: os.open(
            n, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW,
            dir_fd=d)))

    @as_caller
    def readdir(self, path, fh):
        # The whole listing, each entry with its stat result and its xattr
        # names: one reply, and the daemon answers `ls -l` (lookups, and the
        # getxattr of an ACL it asks of every file) from it.
        fd = self.handles.fd(fh)
        with self.dir_locks[fh % len(self.dir_locks)]:
            with os.scandir(fd) as it:
                entries = list(it)
        items = []
        stat_at, listxattr = os.stat, os.listxattr
        for entry in entries:
            name = entry.name
            try:
                st = stat_at(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the directory was read
            except OSError:
                # E.g. a directory the caller may read but not search: names
                # and types only, as ls shows them.
                items.append((name, _dtype_mode(entry), 0))
                continue
            try:
                names = listxattr("/proc/self/fd/%d/%s" % (fd, name),
                                  follow_symlinks=False)
            except OSError:
                names = None  # not known: the daemon asks when it needs them
            items.append((name, st, 0, names))
        return items

    def releasedir(self, path, fh):
        self.handles.close(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return self.fsync(path, datasync, fh)

    @as_caller
    def access(self, path, amode):
        # effective_ids (AT_EACCESS): the thread's fsuid and groups, not its
        # real uid.
        if not self._at(path, lambda d, n: os.access(
                n, amode, dir_fd=d, effective_ids=True,
                follow_symlinks=False)):
            raise fuse.FuseOSError(errno.EACCES)
        return 0


def _set_id_bits_cleared_by_writes(mode):
    """The set-id bits of a file of mode `mode` that a write, truncate or
    fallocate by a caller without CAP_FSETID clears, as Linux and POSIX do:
    S_ISUID, and S_ISGID when the file is group-executable (without S_IXGRP
    the bit marks mandatory locking, not a privilege)."""
    bits = stat.S_ISUID | stat.S_ISGID if mode & stat.S_IXGRP else \
        stat.S_ISUID
    return mode & bits


def _parent(path):
    """The directory holding `path` ("/a/b" -> "/a", "/a" -> "/")."""
    return path.rpartition("/")[0] or "/" if path else None


def _dtype_mode(entry):
    if entry.is_symlink():
        return stat.S_IFLNK
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return 0


def main():
    p = example_cli.parser(__doc__)
    p.add_argument("root", help="the directory to mirror")
    p.add_argument("--no-watch", dest="watch", action="store_false",
                   help="do not watch the directory for changes made other "
                   "than through the mount (they then show within 1 s)")
    args = example_cli.parse(p)
    # Modes arrive with the caller's umask applied.
    os.umask(0)
    example_cli.run(args, Loopback(args.root, watch=args.watch), use_ino=True,
                    default_permissions=True, fsname=args.root)

if __name__ == "__main__":
    main()
