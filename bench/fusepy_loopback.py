#!/usr/bin/python3
"""A small fusepy loopback filesystem: the Python baseline of bench/run.py.

Usage: fusepy_loopback.py ROOT MOUNTPOINT

Mirrors ROOT at MOUNTPOINT in the foreground, the way fusepy's documented
loopback example does (one Operations subclass, paths joined onto ROOT, the
os module doing the work, libfuse 2's default multi-threaded loop and default
mount options). Debian's python3-fusepy installs the module as `fusepy`;
upstream pip installs it as `fuse`.
"""

import errno
import os
import sys

try:
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:  # fusepy from pip
    from fuse import FUSE, FuseOSError, Operations

_STAT_FIELDS = ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime',
                'st_nlink', 'st_size', 'st_uid', 'st_ino')


class Loopback(Operations):
    def __init__(self, root):
        self.root = os.path.realpath(root)

    def _full(self, path):
        return self.root + path

    def __call__(self, op, path, *args):
        # Every os error becomes the errno the kernel gets.
        try:
            return super().__call__(op, self._full(path), *args)
        except OSError as e:
            raise FuseOSError(e.errno)

    def access(self, path, mode):
        if not os.access(path, mode):
            raise FuseOSError(errno.EACCES)

    chmod = os.chmod
    chown = os.chown

    def create(self, path, mode, fi=None):
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return os.fdatasync(fh) if datasync else os.fsync(fh)

    def getattr(self, path, fh=None):
        st = os.lstat(path)
        return {k: getattr(st, k) for k in _STAT_FIELDS}

    def link(self, target, source):
        # fusepy passes (new name, existing name); only the first went
        # through __call__, so join the existing name here.
        return os.link(self._full(source), target)

    mkdir = os.mkdir
    mknod = os.mknod
    open = os.open

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(path)

    readlink = os.readlink

    def release(self, path, fh):
        return os.close(fh)

    def rename(self, old, new):
        return os.rename(old, self._full(new))

    rmdir = os.rmdir

    def statfs(self, path):
        sv = os.statvfs(path)
        return {k: getattr(sv, k) for k in (
            'f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail',
            'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def symlink(self, target, source):
        return os.symlink(source, target)

    def truncate(self, path, length, fh=None):
        with open(path, 'r+') as f:
            f.truncate(length)

    unlink = os.unlink
    utimens = os.utime

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: fusepy_loopback.py ROOT MOUNTPOINT')
    FUSE(Loopback(sys.argv[1]), sys.argv[2], foreground=True)


if __name__ == '__main__':
    main()
