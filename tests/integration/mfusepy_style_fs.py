#!/usr/bin/env python3
"""A small filesystem written for mfusepy, the way mfusepy's own examples are
written (a flat dict of paths, LoggingMixIn, fuse_get_context for owners,
FuseOSError, use_ns, create with two arguments, readdir returning names).

test_python_examples.py runs it under fusehost after changing only its import
line; nothing else here knows about fuse-hostd. A few names provoke errors,
to check that they reach applications as mfusepy would report them:
  /boom*      getattr raises RuntimeError          -> EINVAL (traceback logged)
  /nospace*   write raises OSError(ENOSPC)         -> ENOSPC
  /quota*     truncate returns -EDQUOT             -> EDQUOT
  /exit       unlink calls sys.exit()              -> the mount goes away
"""

import argparse
import errno
import logging
import os
import stat
import sys
import time
from collections import defaultdict

import mfusepy as fuse


class Flat(fuse.LoggingMixIn, fuse.Operations):
    'One directory of files, in memory.'

    use_ns = True

    def __init__(self):
        self.files = {}
        self.data = defaultdict(bytes)
        self.fd = 0
        now = time.time_ns()
        self.files['/'] = dict(st_mode=(stat.S_IFDIR | 0o777), st_ctime=now,
                               st_mtime=now, st_atime=now, st_nlink=2)

    def init(self, path):
        logging.getLogger('flat').info('init %s', path)

    def destroy(self, path):
        marker = os.environ.get('FLAT_DESTROY_MARKER')
        if marker:
            with open(marker, 'w') as f:
                f.write('destroyed %s\n' % path)

    def chmod(self, path, mode):
        self.files[path]['st_mode'] &= 0o770000
        self.files[path]['st_mode'] |= mode
        return 0

    def chown(self, path, uid, gid):
        if uid != -1:
            self.files[path]['st_uid'] = uid
        if gid != -1:
            self.files[path]['st_gid'] = gid

    @staticmethod
    def _new(mode, nlink):
        uid, gid, _pid = fuse.fuse_get_context()
        now = time.time_ns()
        return dict(st_mode=mode, st_nlink=nlink, st_size=0, st_ctime=now,
                    st_mtime=now, st_atime=now, st_uid=uid, st_gid=gid)

    def create(self, path, mode):
        self.files[path] = self._new(stat.S_IFREG | mode, 1)
        self.fd += 1
        return self.fd

    def getattr(self, path, fh=None):
        if path.startswith('/boom'):
            raise RuntimeError('a bug in getattr')
        if path not in self.files:
            raise fuse.FuseOSError(errno.ENOENT)
        return self.files[path]

    def getxattr(self, path, name, position=0):
        attrs = self.files[path].get('attrs', {})
        try:
            return attrs[name]
        except KeyError:
            raise fuse.FuseOSError(fuse.ENOATTR)

    def listxattr(self, path):
        return self.files[path].get('attrs', {}).keys()

    def mkdir(self, path, mode):
        self.files[path] = self._new(stat.S_IFDIR | mode, 2)
        self.files['/']['st_nlink'] += 1

    def open(self, path, flags):
        self.fd += 1
        return self.fd

    def read(self, path, size, offset, fh):
        return self.data[path][offset:offset + size]

    def readdir(self, path, fh):
        return ['.', '..'] + [x[1:] for x in self.files
                              if x != '/' and x.rfind('/') == 0]

    def readlink(self, path):
        return self.data[path].decode()

    def removexattr(self, path, name):
        attrs = self.files[path].get('attrs', {})
        try:
            del attrs[name]
        except KeyError:
            raise fuse.FuseOSError(fuse.ENOATTR)

    def rename(self, old, new):
        self.data[new] = self.data.pop(old)
        self.files[new] = self.files.pop(old)

    def rmdir(self, path):
        self.files.pop(path)
        self.files['/']['st_nlink'] -= 1

    def setxattr(self, path, name, value, options, position=0):
        attrs = self.files[path].setdefault('attrs', {})
        attrs[name] = value

    def statfs(self, path):
        return dict(f_bsize=512, f_blocks=4096, f_bavail=2048)

    def symlink(self, target, source):
        self.files[target] = dict(st_mode=(stat.S_IFLNK | 0o777), st_nlink=1,
                                  st_size=len(source))
        self.data[target] = source.encode()

    def truncate(self, path, length, fh=None):
        if path.startswith('/quota'):
            return -errno.EDQUOT
        self.data[path] = self.data[path][:length].ljust(length, b'\x00')
        self.files[path]['st_size'] = length

    def unlink(self, path):
        if path == '/exit':
            sys.exit(3)
        self.data.pop(path)
        self.files.pop(path)

    def utimens(self, path, times=None):
        now = time.time_ns()
        atime, mtime = times if times else (now, now)
        self.files[path]['st_atime'] = atime
        self.files[path]['st_mtime'] = mtime

    def write(self, path, data, offset, fh):
        if path.startswith('/nospace'):
            raise OSError(errno.ENOSPC, 'full')
        self.data[path] = (self.data[path][:offset].ljust(offset, b'\x00')
                           + data + self.data[path][offset + len(data):])
        self.files[path]['st_size'] = len(self.data[path])
        return len(data)


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('mount')
    parser.add_argument('--background', action='store_true')
    args = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG)
    fuse.FUSE(Flat(), args.mount, foreground=not args.background,
              allow_other=True, default_permissions=True, fsname='flat',
              big_writes=True)


if __name__ == '__main__':
    cli()
