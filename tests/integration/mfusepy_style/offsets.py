#!/usr/bin/env python3
"""A directory of 1000 empty files listed in pieces, two ways: `Resumed`
implements readdir_with_offset and resumes after the offset it is given;
`Numbered` implements readdir, yielding every entry with an offset, from
the start each time (--numbered). A listing asked for again and again (a
wrapper that never moves on) ends the filesystem."""

import argparse
import errno
import logging
import stat
import sys
from typing import Optional

import mfusepy as fuse

log = logging.getLogger('offsets')
FILES = 1000
DIRECTORY = {'st_mode': stat.S_IFDIR | 0o755}
FILE = {'st_mode': stat.S_IFREG | 0o644}


class Listing(fuse.Operations):
    use_ns = True

    def __init__(self, call_limit=10):
        self.calls = 0
        self.call_limit = call_limit

    def getattr(self, path: str, fh: Optional[int] = None):
        self.calls = 0
        if path == '/':
            return {'st_mode': stat.S_IFDIR | 0o755, 'st_nlink': 2,
                    'st_ctime': 0, 'st_mtime': 0, 'st_atime': 0}
        if path.strip('/').isdigit():
            return {'st_mode': stat.S_IFREG | 0o644, 'st_nlink': 1,
                    'st_size': 0, 'st_ctime': 0, 'st_mtime': 0, 'st_atime': 0}
        raise fuse.FuseOSError(errno.ENOENT)

    def _entries(self, path: str, offset: int):
        """The entries after `offset`: ".", "..", the files, numbered from
        1."""
        self.calls += 1
        if self.calls >= self.call_limit * FILES:
            log.warning('the listing never moves on')
            sys.exit(1)
        if path != '/':
            raise fuse.FuseOSError(errno.ENOENT)
        if offset < 1:
            yield '.', DIRECTORY, 1
        if offset < 2:
            yield '..', DIRECTORY, 2
        for i in range(max(0, offset - 2), FILES):
            yield '%04d' % i, FILE, i + 3


class Resumed(Listing):
    def readdir_with_offset(self, path: str, offset: int, fh: int):
        return self._entries(path, offset)


class Numbered(Listing):
    def readdir(self, path: str, fh: int) -> fuse.ReadDirResult:
        return self._entries(path, 0)


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--numbered', action='store_true')
    parser.add_argument('mount')
    args = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG)
    fuse.FUSE(Numbered() if args.numbered else Resumed(), args.mount,
              foreground=True)


if __name__ == '__main__':
    cli()
