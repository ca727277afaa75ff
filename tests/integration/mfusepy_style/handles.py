#!/usr/bin/env python3
"""notes.py's files, found by the handles of open files (flag_nullpath_ok),
with libfuse's configuration set in init_with_config and inode numbers of
its own (the root is 31, files count from 100; mounted with use_ino)."""

import argparse
import os
import time
from typing import Any, Optional

import mfusepy as fuse

from notes import Notes


class Handles(Notes):
    flag_nullpath_ok = True
    flag_nopath = True

    def __init__(self) -> None:
        super().__init__()
        self.next_inode = 100
        self.paths: dict[int, str] = {}
        self.files['/'].update(st_ino=31, st_uid=os.getuid(),
                               st_gid=os.getgid())

    @fuse.overrides(fuse.Operations)
    def init_with_config(self, conn_info: Optional[fuse.fuse_conn_info],
                         config_3: Optional[fuse.fuse_config]) -> None:
        if config_3:
            config_3.nullpath_ok = True
            config_3.use_ino = True

    def _made(self, path: str) -> None:
        """Gives what was just made at `path` an inode number and the
        caller as its owner."""
        uid, gid, _pid = fuse.fuse_get_context()
        self.files[path].update(st_ino=self.next_inode, st_uid=uid,
                                st_gid=gid)
        self.next_inode += 1

    def _open(self, path: str) -> int:
        handle = self._handle()
        self.paths[handle] = path
        return handle

    @fuse.overrides(fuse.Operations)
    def create(self, path: str, mode: int, fi=None) -> int:
        super().create(path, mode)
        self._made(path)
        self.paths[self.handles] = path
        return self.handles

    @fuse.overrides(fuse.Operations)
    def getattr(self, path: str, fh=None) -> dict[str, Any]:
        return super().getattr(self.paths.get(fh, path))

    @fuse.overrides(fuse.Operations)
    def mkdir(self, path: str, mode: int) -> int:
        super().mkdir(path, mode)
        self._made(path)
        return 0

    @fuse.overrides(fuse.Operations)
    def mknod(self, path: str, mode: int, dev: int) -> int:
        now = time.time_ns()
        self.files[path] = {'st_mode': mode, 'st_nlink': 1, 'st_size': 0,
                            'st_ctime': now, 'st_mtime': now, 'st_atime': now}
        self._made(path)
        return 0

    @fuse.overrides(fuse.Operations)
    def open(self, path: str, flags: int) -> int:
        return self._open(path)

    @fuse.overrides(fuse.Operations)
    def opendir(self, path: str) -> int:
        return self._open(path)

    @fuse.overrides(fuse.Operations)
    def read(self, path: str, size, offset: int, fh: int) -> bytes:
        return super().read(self.paths[fh], size, offset, fh)

    @fuse.overrides(fuse.Operations)
    def readdir(self, path: str, fh: int) -> fuse.ReadDirResult:
        directory = self.paths[fh]
        root = self.files['/']
        return [('.', root, 0), ('..', root, 0)] + [
            (name[1:], info, 0) for name, info in self.files.items()
            if name.startswith(directory) and len(name) > len(directory)]

    @fuse.overrides(fuse.Operations)
    def release(self, path: str, fh: int) -> int:
        del self.paths[fh]
        return 0

    @fuse.overrides(fuse.Operations)
    def releasedir(self, path: str, fh: int) -> int:
        del self.paths[fh]
        return 0

    @fuse.overrides(fuse.Operations)
    def symlink(self, target: str, source: str) -> int:
        super().symlink(target, source)
        self._made(target)
        return 0

    @fuse.overrides(fuse.Operations)
    def truncate(self, path: str, length: int, fh=None) -> int:
        return super().truncate(self.paths.get(fh, path), length)

    @fuse.overrides(fuse.Operations)
    def write(self, path: str, data, offset: int, fh: int) -> int:
        return super().write(self.paths[fh], data, offset, fh)


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('mount')
    args = parser.parse_args(args)
    fuse.FUSE(Handles(), args.mount, foreground=True, use_ino=True)


if __name__ == '__main__':
    cli()
