#!/usr/bin/python3
"""An in-memory filesystem that refuses some changes, for the tests of the
mount option write_behind (test_write_behind_failures.py): a chmod, rmdir or
rename the daemon answered early that the backend then refuses must come
back at the next fsync.

It is examples/python/memory.py's Memory, but for:
  chmod of a name starting with "refuse"   EACCES
  create of a name starting with "nocreate" EACCES
  rmdir of a name starting with "refuse"   ENOTEMPTY (as if it held a name
                                           made by another client)
  rename of a name starting with "refuse"  EACCES
  fsync, fsyncdir                          0 (Memory has none: ENOSYS),
                                           or with --without-fsync none
Attributes may be cached for a minute (default_ttl), so that the daemon
holds them: it answers a chmod early only for a path it has cached.

  refusing_fs.py [--without-fsync] --listen unix:/PATH.sock
                                              serve() for fuse-hostctl mount
"""

import errno
import os
import sys

import fusehost as fuse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "examples", "python"))

import example_cli  # noqa: E402
from memory import Memory  # noqa: E402


def refused(path):
    return bool(path) and os.path.basename(path).startswith("refuse")


class Refusing(Memory):
    default_ttl = 60

    def chmod(self, path, mode, fh=None):
        if refused(path):
            raise fuse.FuseOSError(errno.EACCES)
        return super().chmod(path, mode, fh)

    def create(self, path, mode, flags=0):
        if bool(path) and os.path.basename(path).startswith("nocreate"):
            raise fuse.FuseOSError(errno.EACCES)
        return super().create(path, mode, flags)

    def rmdir(self, path):
        if refused(path):
            raise fuse.FuseOSError(errno.ENOTEMPTY)
        return super().rmdir(path)

    def rename(self, old, new, flags=0):
        if refused(old):
            raise fuse.FuseOSError(errno.EACCES)
        return super().rename(old, new, flags)

    def fsync(self, path, datasync, fh):
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0


class RefusingWithoutFsync(Refusing):
    """As a filesystem that implements neither fsync nor fsyncdir (the
    SDK answers ENOSYS for them)."""

    fsync = fuse.Operations.fsync
    fsyncdir = fuse.Operations.fsyncdir


def main():
    parser = example_cli.parser(__doc__)
    parser.add_argument("--without-fsync", action="store_true",
                        help="implement neither fsync nor fsyncdir")
    args = example_cli.parse(parser)
    fs = RefusingWithoutFsync() if args.without_fsync else Refusing()
    example_cli.run(args, fs, use_ino=True, default_permissions=True,
                    fsname="refusing")


if __name__ == "__main__":
    main()
