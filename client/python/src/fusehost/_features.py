"""libfuse's feature flags (FUSE_CAP_*), as init_with_config's connection
object offers and asks for them, and the POSIX ACLs that the one a
filesystem may ask fuse-hostd for, FUSE_CAP_POSIX_ACL, lets it store.

The flag values are libfuse's (fuse_common.h), so that code comparing them
with numbers it took from libfuse keeps working. Of them, fuse-hostd lets a
filesystem choose only FUSE_CAP_POSIX_ACL (in `wanted_features`, a class
attribute, or with conn_info.set_feature_flag in init_with_config): the
kernel then enforces the ACLs the filesystem returns for
system.posix_acl_access and system.posix_acl_default. The daemon decides
the rest for every mount.

Threads: nothing here has state.
"""

import struct
from typing import NamedTuple

# --- feature flags (libfuse 3.14's values, and the later ones it lacks) ------

FUSE_CAP_ASYNC_READ = 1 << 0
FUSE_CAP_POSIX_LOCKS = 1 << 1
FUSE_CAP_ATOMIC_O_TRUNC = 1 << 3
FUSE_CAP_EXPORT_SUPPORT = 1 << 4
FUSE_CAP_DONT_MASK = 1 << 6
FUSE_CAP_SPLICE_WRITE = 1 << 7
FUSE_CAP_SPLICE_MOVE = 1 << 8
FUSE_CAP_SPLICE_READ = 1 << 9
FUSE_CAP_FLOCK_LOCKS = 1 << 10
FUSE_CAP_IOCTL_DIR = 1 << 11
FUSE_CAP_AUTO_INVAL_DATA = 1 << 12
FUSE_CAP_READDIRPLUS = 1 << 13
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
FUSE_CAP_ASYNC_DIO = 1 << 15
FUSE_CAP_WRITEBACK_CACHE = 1 << 16
FUSE_CAP_NO_OPEN_SUPPORT = 1 << 17
FUSE_CAP_PARALLEL_DIROPS = 1 << 18
FUSE_CAP_POSIX_ACL = 1 << 19
FUSE_CAP_HANDLE_KILLPRIV = 1 << 20
FUSE_CAP_HANDLE_KILLPRIV_V2 = 1 << 21
FUSE_CAP_CACHE_SYMLINKS = 1 << 23
FUSE_CAP_NO_OPENDIR_SUPPORT = 1 << 24
FUSE_CAP_EXPLICIT_INVAL_DATA = 1 << 25
FUSE_CAP_EXPIRE_ONLY = 1 << 26
FUSE_CAP_SETXATTR_EXT = 1 << 27
FUSE_CAP_DIRECT_IO_ALLOW_MMAP = 1 << 28
FUSE_CAP_PASSTHROUGH = 1 << 29
FUSE_CAP_NO_EXPORT_SUPPORT = 1 << 30

_FLAG_NAMES = {value: name for name, value in globals().items()
               if name.startswith("FUSE_CAP_")}

# What a filesystem may ask fuse-hostd for (the connection's `capable`).
CHOOSABLE = FUSE_CAP_POSIX_ACL


def feature_flag_names(flags):
    """'FUSE_CAP_A | FUSE_CAP_B' for the flags set in `flags`, lowest bit
    first, unknown bits in hex; '0x0' for none."""
    names = []
    rest = flags
    bit = 1
    while rest:
        if rest & bit:
            names.append(_FLAG_NAMES.get(bit, hex(bit)))
            rest &= ~bit
        bit <<= 1
    return " | ".join(names) if names else "0x0"


# --- POSIX ACLs as the kernel stores them in extended attributes (acl(5)) ----

XATTR_NAME_POSIX_ACL_ACCESS = "system.posix_acl_access"
XATTR_NAME_POSIX_ACL_DEFAULT = "system.posix_acl_default"

POSIX_ACL_XATTR_VERSION = 2
ACL_UNDEFINED_ID = 0xFFFFFFFF

# Entry tags.
ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20

# Permission bits.
ACL_READ = 4
ACL_WRITE = 2
ACL_EXECUTE = 1

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


class PosixACLEntry(NamedTuple):
    """One entry of an ACL: whom (tag, and for ACL_USER and ACL_GROUP the
    uid or gid) it gives which permissions."""
    tag: int
    perm: int
    id: int = ACL_UNDEFINED_ID


def pack_posix_acl(entries):
    """The value of system.posix_acl_access (or _default) holding
    `entries`: PosixACLEntry or (tag, perm, id) triples, id -1 or
    ACL_UNDEFINED_ID for the entries that name nobody."""
    out = [_HEADER.pack(POSIX_ACL_XATTR_VERSION)]
    for tag, perm, entry_id in entries:
        out.append(_ENTRY.pack(tag, perm, entry_id & 0xFFFFFFFF))
    return b"".join(out)


def unpack_posix_acl(value):
    """The PosixACLEntry list an ACL attribute's value holds; ValueError
    for another version or a truncated value."""
    if len(value) < _HEADER.size:
        raise ValueError("ACL value truncated: %d bytes" % len(value))
    (version,) = _HEADER.unpack_from(value)
    if version != POSIX_ACL_XATTR_VERSION:
        raise ValueError("unknown ACL version %d" % version)
    body = len(value) - _HEADER.size
    if body % _ENTRY.size:
        raise ValueError("ACL value truncated: %d bytes" % len(value))
    return [PosixACLEntry(*_ENTRY.unpack_from(value, offset))
            for offset in range(_HEADER.size, len(value), _ENTRY.size)]


# What the package exports from here (every flag, the ACL helpers).
__all__ = sorted(_FLAG_NAMES.values()) + [
    "ACL_EXECUTE", "ACL_GROUP", "ACL_GROUP_OBJ", "ACL_MASK", "ACL_OTHER",
    "ACL_READ", "ACL_UNDEFINED_ID", "ACL_USER", "ACL_USER_OBJ", "ACL_WRITE",
    "PosixACLEntry", "XATTR_NAME_POSIX_ACL_ACCESS",
    "XATTR_NAME_POSIX_ACL_DEFAULT", "feature_flag_names", "pack_posix_acl",
    "unpack_posix_acl"]
