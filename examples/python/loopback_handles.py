"""loopback.py's open files and directories by handle (Handles)."""

import errno
import itertools
import os

import fusehost as fuse


class Handles:
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
