#!/usr/bin/env python3
"""Two read-only files of root's whose access only POSIX ACLs decide right,
for the user given: 'allowed' has mode 0640 and an ACL granting the user
read access, 'denied' mode 0644 and an ACL denying the user any. Asks for
FUSE_CAP_POSIX_ACL with `wanted_features` (unless --mode-bits-only) and
prints whether init_with_config saw it granted. With --mode-bits-only it
asks for nothing and mounts with default_permissions: the kernel decides
by the mode bits alone."""

import argparse
import errno
import os
import stat
from typing import Optional

import mfusepy as fuse

CONTENTS = b'Hello ACL!\n'


def acl(user_id: int, user_perm: int, group_perm: int, other_perm: int) -> bytes:
    """An access ACL: the owner may read and write, `user_id` gets
    `user_perm`, the owning group `group_perm` (the mask lets read through),
    everyone else `other_perm`."""
    return fuse.pack_posix_acl([
        fuse.PosixACLEntry(fuse.ACL_USER_OBJ, fuse.ACL_READ | fuse.ACL_WRITE),
        fuse.PosixACLEntry(fuse.ACL_USER, user_perm, user_id),
        fuse.PosixACLEntry(fuse.ACL_GROUP_OBJ, group_perm),
        fuse.PosixACLEntry(fuse.ACL_MASK, fuse.ACL_READ),
        fuse.PosixACLEntry(fuse.ACL_OTHER, other_perm),
    ])


class ACLs(fuse.Operations):
    use_ns = True
    wanted_features = fuse.FUSE_CAP_POSIX_ACL

    def __init__(self, user_id: int):
        self.files = {
            # The mode's group bits show the mask, as for any file with an ACL.
            '/allowed': (stat.S_IFREG | 0o640, acl(user_id, fuse.ACL_READ, 0, 0)),
            '/denied': (stat.S_IFREG | 0o644,
                        acl(user_id, 0, fuse.ACL_READ, fuse.ACL_READ)),
        }

    def init_with_config(self, conn_info: Optional[fuse.fuse_conn_info],
                         config_3: Optional[fuse.fuse_config]) -> None:
        enforced = conn_info is not None and conn_info.is_wanted(fuse.FUSE_CAP_POSIX_ACL)
        print('ACLs enforced:', enforced, flush=True)

    def getattr(self, path: str, fh: Optional[int] = None) -> dict:
        if path == '/':
            return {'st_mode': stat.S_IFDIR | 0o755, 'st_nlink': 2}
        if path in self.files:
            return {'st_mode': self.files[path][0], 'st_nlink': 1, 'st_uid': 0,
                    'st_gid': 0, 'st_size': len(CONTENTS)}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> fuse.ReadDirResult:
        return ['.', '..', *[name.lstrip('/') for name in self.files]]

    def listxattr(self, path: str) -> list:
        return [fuse.XATTR_NAME_POSIX_ACL_ACCESS] if path in self.files else []

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if path in self.files and name == fuse.XATTR_NAME_POSIX_ACL_ACCESS:
            return self.files[path][1]
        raise fuse.FuseOSError(fuse.ENOATTR)

    def open(self, path: str, flags: int) -> int:
        if path not in self.files:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return CONTENTS[offset:offset + size]


def cli(args=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('user_id', type=int)
    parser.add_argument('mount')
    parser.add_argument('--mode-bits-only', action='store_true')
    args = parser.parse_args(args)
    operations = ACLs(args.user_id)
    if args.mode_bits_only:
        operations.wanted_features = 0
    fuse.FUSE(operations, args.mount, foreground=True, allow_other=True,
              default_permissions=args.mode_bits_only)


if __name__ == '__main__':
    cli()
