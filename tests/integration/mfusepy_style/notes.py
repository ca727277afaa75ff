#!/usr/bin/env python3
"""One directory of files in memory, with two ioctl commands: 'M' 1 hands
back the 32-bit number it is given plus one, 'M' 2 hands back the 16383
bytes it is given in reverse order."""

import argparse
import collections
import ctypes
import errno
import logging
import stat
import time
from collections.abc import Iterable
from typing import Any, Optional

import mfusepy as fuse


def iowr(kind, number, size):
    """The number of a command that passes `size` bytes in and back
    (Linux's _IOWR)."""
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


ADD_ONE = iowr('M', 1, ctypes.sizeof(ctypes.c_uint32))
REVERSE = iowr('M', 2, 16383)


class Notes(fuse.Operations):
    use_ns = True

    def __init__(self):
        self.data: dict[str, bytes] = collections.defaultdict(bytes)
        self.handles = 0
        now = time.time_ns()
        self.files: dict[str, dict[str, Any]] = {'/': {
            'st_mode': stat.S_IFDIR | 0o755, 'st_nlink': 2,
            'st_ctime': now, 'st_mtime': now, 'st_atime': now}}

    def _handle(self) -> int:
        self.handles += 1
        return self.handles

    @fuse.overrides(fuse.Operations)
    def chmod(self, path: str, mode: int) -> int:
        entry = self.files[path]
        entry['st_mode'] = stat.S_IFMT(entry['st_mode']) | mode
        return 0

    @fuse.overrides(fuse.Operations)
    def chown(self, path: str, uid: int, gid: int) -> int:
        if uid != -1:
            self.files[path]['st_uid'] = uid
        if gid != -1:
            self.files[path]['st_gid'] = gid
        return 0

    @fuse.overrides(fuse.Operations)
    def create(self, path: str, mode: int, fi=None) -> int:
        now = time.time_ns()
        self.files[path] = {'st_mode': stat.S_IFREG | mode, 'st_nlink': 1,
                            'st_size': 0, 'st_ctime': now, 'st_mtime': now,
                            'st_atime': now}
        return self._handle()

    @fuse.overrides(fuse.Operations)
    def getattr(self, path: str, fh: Optional[int] = None) -> dict[str, Any]:
        if path not in self.files:
            raise fuse.FuseOSError(errno.ENOENT)
        return self.files[path]

    @fuse.overrides(fuse.Operations)
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        try:
            return self.files[path].get('attrs', {})[name]
        except KeyError:
            raise fuse.FuseOSError(fuse.ENOATTR)

    @fuse.overrides(fuse.Operations)
    def ioctl(self, path: str, cmd: int, arg: ctypes.c_void_p, fh: int,
              flags: int, data: ctypes.c_void_p) -> int:
        if cmd == ADD_ONE:
            number = ctypes.c_uint32.from_address(data)
            number.value += 1
        elif cmd == REVERSE:
            given = ctypes.string_at(data, 16383)
            ctypes.memmove(data, given[::-1], len(given))
        else:
            raise fuse.FuseOSError(errno.ENOTTY)
        return 0

    @fuse.overrides(fuse.Operations)
    def listxattr(self, path: str) -> Iterable[str]:
        return list(self.files[path].get('attrs', {}))

    @fuse.overrides(fuse.Operations)
    def mkdir(self, path: str, mode: int) -> int:
        now = time.time_ns()
        self.files[path] = {'st_mode': stat.S_IFDIR | mode, 'st_nlink': 2,
                            'st_size': 0, 'st_ctime': now, 'st_mtime': now,
                            'st_atime': now}
        self.files['/']['st_nlink'] += 1
        return 0

    @fuse.overrides(fuse.Operations)
    def open(self, path: str, flags: int) -> int:
        return self._handle()

    @fuse.overrides(fuse.Operations)
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.data[path][offset:offset + size]

    @fuse.overrides(fuse.Operations)
    def readdir(self, path: str, fh: int) -> fuse.ReadDirResult:
        prefix = path.rstrip('/') + '/'
        return ['.', '..'] + [name[len(prefix):] for name in self.files
                              if name.startswith(prefix) and name != prefix
                              and '/' not in name[len(prefix):]]

    @fuse.overrides(fuse.Operations)
    def readlink(self, path: str) -> str:
        return self.data[path].decode()

    @fuse.overrides(fuse.Operations)
    def removexattr(self, path: str, name: str) -> int:
        try:
            del self.files[path].get('attrs', {})[name]
        except KeyError:
            raise fuse.FuseOSError(fuse.ENOATTR)
        return 0

    @fuse.overrides(fuse.Operations)
    def rename(self, old: str, new: str) -> int:
        if old in self.data:
            self.data[new] = self.data.pop(old)
        self.files[new] = self.files.pop(old)
        return 0

    @fuse.overrides(fuse.Operations)
    def rmdir(self, path: str) -> int:
        del self.files[path]
        self.files['/']['st_nlink'] -= 1
        return 0

    @fuse.overrides(fuse.Operations)
    def setxattr(self, path: str, name: str, value: bytes, options,
                 position: int = 0) -> int:
        self.files[path].setdefault('attrs', {})[name] = value
        return 0

    @fuse.overrides(fuse.Operations)
    def statfs(self, path: str) -> dict[str, int]:
        return {'f_bsize': 512, 'f_blocks': 4096, 'f_bavail': 2048}

    @fuse.overrides(fuse.Operations)
    def symlink(self, target: str, source: str) -> int:
        self.files[target] = {'st_mode': stat.S_IFLNK | 0o777, 'st_nlink': 1,
                              'st_size': len(source)}
        self.data[target] = source.encode()
        return 0

    @fuse.overrides(fuse.Operations)
    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        self.data[path] = self.data[path][:length].ljust(length, b'\0')
        self.files[path]['st_size'] = length
        return 0

    @fuse.overrides(fuse.Operations)
    def unlink(self, path: str) -> int:
        self.data.pop(path, None)
        del self.files[path]
        return 0

    @fuse.overrides(fuse.Operations)
    def utimens(self, path: str, times: Optional[tuple[int, int]] = None) -> int:
        now = time.time_ns()
        atime, mtime = times or (now, now)
        self.files[path]['st_atime'] = atime
        self.files[path]['st_mtime'] = mtime
        return 0

    @fuse.overrides(fuse.Operations)
    def write(self, path: str, data, offset: int, fh: int) -> int:
        old = self.data[path]
        self.data[path] = (old[:offset].ljust(offset, b'\0') + data
                           + old[offset + len(data):])
        self.files[path]['st_size'] = len(self.data[path])
        return len(data)


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('mount')
    args = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG)
    fuse.FUSE(Notes(), args.mount, foreground=True)


if __name__ == '__main__':
    cli()
