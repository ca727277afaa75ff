#!/usr/bin/env python3
"""Mirrors a directory: every method gets the path under the mirrored root
from a decorator that passes whatever else it is given on (`*args`)."""

import argparse
import errno
import logging
import os
import threading
import time
from typing import Any, Optional

import mfusepy as fuse


def under_root(method):
    def call(self, path, *args, **kwargs):
        return method(self, None if path is None else self.root + path,
                      *args, **kwargs)
    return call


def os_under_root(function):
    def call(self, path, *args, **kwargs):
        return function(self.root + path, *args, **kwargs)
    return call


class Mirror(fuse.Operations):
    use_ns = True

    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.lock = threading.Lock()

    chmod = os_under_root(os.chmod)
    chown = os_under_root(os.chown)
    mkdir = os_under_root(os.mkdir)
    open = os_under_root(os.open)
    readlink = os_under_root(os.readlink)
    rmdir = os_under_root(os.rmdir)
    unlink = os_under_root(os.unlink)

    @under_root
    @fuse.overrides(fuse.Operations)
    def access(self, path: str, amode: int) -> int:
        if not os.access(path, amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    @under_root
    @fuse.overrides(fuse.Operations)
    def create(self, path: str, mode: int, fi=None) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    @fuse.log_callback
    @under_root
    @fuse.overrides(fuse.Operations)
    def getattr(self, path: str, fh: Optional[int] = None) -> dict[str, Any]:
        if fh is not None:
            st = os.fstat(fh)
        elif path is not None:
            st = os.lstat(path)
        else:
            raise fuse.FuseOSError(errno.ENOENT)
        keys = ('st_atime_ns', 'st_ctime_ns', 'st_mtime_ns', 'st_gid',
                'st_mode', 'st_nlink', 'st_size', 'st_uid')
        return {key.replace('_ns', ''): getattr(st, key) for key in keys}

    @under_root
    @fuse.overrides(fuse.Operations)
    def link(self, target: str, source: str):
        return os.link(self.root + source, target)

    @under_root
    @fuse.overrides(fuse.Operations)
    def mknod(self, path: str, mode: int, dev: int):
        return os.mknod(path, mode, dev)

    @under_root
    @fuse.overrides(fuse.Operations)
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self.lock:
            os.lseek(fh, offset, os.SEEK_SET)
            return os.read(fh, size)

    @under_root
    @fuse.overrides(fuse.Operations)
    def readdir(self, path: str, fh: int) -> fuse.ReadDirResult:
        return ['.', '..'] + os.listdir(path)

    @under_root
    @fuse.overrides(fuse.Operations)
    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    @under_root
    @fuse.overrides(fuse.Operations)
    def rename(self, old: str, new: str):
        return os.rename(old, self.root + new)

    @under_root
    @fuse.overrides(fuse.Operations)
    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(path)
        return {key: getattr(st, key) for key in (
            'f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail',
            'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    @under_root
    @fuse.overrides(fuse.Operations)
    def symlink(self, target: str, source: str):
        return os.symlink(source, target)

    @under_root
    @fuse.overrides(fuse.Operations)
    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        os.truncate(path, length)
        return 0

    @under_root
    @fuse.overrides(fuse.Operations)
    def utimens(self, path: str, times: Optional[tuple[int, int]] = None) -> int:
        now = time.time_ns()
        os.utime(path, ns=times or (now, now))
        return 0

    @fuse.log_callback
    @under_root
    @fuse.overrides(fuse.Operations)
    def write(self, path: str, data, offset: int, fh: int) -> int:
        with self.lock:
            os.lseek(fh, offset, os.SEEK_SET)
            return os.write(fh, data)


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('root')
    parser.add_argument('mount')
    args = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG)
    fuse.FUSE(Mirror(args.root), args.mount, foreground=True)


if __name__ == '__main__':
    cli()
