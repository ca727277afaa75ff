"""loopback.py's operations on attributes: getattr, chmod (with the
set-user-ID and set-group-ID bits a write by another user clears), chown,
truncate, utimens, and extended attributes.

Mixed into loopback.Loopback, which provides what these methods use."""

import errno
import fcntl
import os
import stat

import fusehost as fuse
from loopback_credentials import as_caller


class AttributeOperations:
    @as_caller
    def getattr(self, path, fh=None):
        if fh is not None:
            return os.fstat(self.handles.fd(fh))
        return self._at(path, lambda d, n: os.stat(n, dir_fd=d,
                                                   follow_symlinks=False))

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


def _set_id_bits_cleared_by_writes(mode):
    """The set-id bits of a file of mode `mode` that a write, truncate or
    fallocate by a caller without CAP_FSETID clears, as Linux and POSIX do:
    S_ISUID, and S_ISGID when the file is group-executable (without S_IXGRP
    the bit marks mandatory locking, not a privilege)."""
    bits = stat.S_ISUID | stat.S_ISGID if mode & stat.S_IXGRP else \
        stat.S_ISUID
    return mode & bits
