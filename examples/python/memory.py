#!/usr/bin/python3
"""An in-memory filesystem written against mfusepy's API, served by fuse-hostd.

The Python counterpart of examples/memory (memory_fs): directories, regular
files with holes, symlinks, hard links, FIFOs, device nodes, extended
attributes, owners and timestamps, open files that survive unlink, renameat2
flags, fallocate, copy_file_range and SEEK_DATA/SEEK_HOLE. Permission checks
are the kernel's (it mounts with default_permissions); new files belong to
the caller (fuse_get_context), with setgid-directory group inheritance.

The class Memory is an ordinary mfusepy filesystem: with `import mfusepy as
fuse` instead of `import fusehost as fuse` it would run under libfuse.

Build the package once (`bazel build //...`), then, as root with fuse-hostd
running:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/memory.py /mnt/memory -o allow_other

or serve it for `fuse-hostctl mount unix:/tmp/memory.sock /mnt/memory`:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/memory.py --listen unix:/tmp/memory.sock
"""

import errno
import os
import stat
import threading
import time

import example_cli
import fusehost as fuse

BLOCK = 4096
NAME_MAX = 255
XATTR_SIZE_MAX = 65536
CAPACITY = 1 << 30
MAX_INODES = 1 << 20
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
XATTR_CREATE, XATTR_REPLACE = 1, 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
SEEK_DATA, SEEK_HOLE = 3, 4


class Inode:
    __slots__ = ("ino", "mode", "links", "uid", "gid", "rdev", "atime",
                 "mtime", "ctime", "data", "children", "xattrs")

    def __init__(self, ino, mode, uid, gid, rdev=0, data=b""):
        self.ino = ino
        self.mode = mode
        self.links = 1
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.atime = self.mtime = self.ctime = time.time_ns()
        # File contents (holes are zeros) or a symlink's target.
        self.data = bytearray(data)
        self.children = {} if stat.S_ISDIR(mode) else None
        self.xattrs = {}

    def touch(self, modified=True):
        now = time.time_ns()
        self.ctime = now
        if modified:
            self.mtime = now

    def attrs(self):
        if self.children is not None:
            subdirs = sum(1 for c in self.children.values()
                          if c.children is not None)
            nlink = 2 + subdirs if self.links else 0
            size = BLOCK
        else:
            nlink = self.links
            size = len(self.data)
        return {"st_ino": self.ino, "st_mode": self.mode, "st_nlink": nlink,
                "st_uid": self.uid, "st_gid": self.gid, "st_rdev": self.rdev,
                "st_size": size, "st_blocks": (size + 511) // 512,
                "st_blksize": BLOCK, "st_atime": self.atime,
                "st_mtime": self.mtime, "st_ctime": self.ctime}


def locked(method):
    """Runs the operation under the filesystem's lock: operations arrive
    concurrently, and rename/link/unlink must see a consistent tree."""

    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    run.__name__ = method.__name__
    run.__wrapped__ = method
    return run


def fail(code):
    raise fuse.FuseOSError(code)


def clear_set_id_bits(inode):
    """What a write, truncate, fallocate or chown by the caller does to a
    file's set-id bits, as Linux and POSIX do for callers without
    CAP_FSETID (here: anyone but root): S_ISUID goes, and S_ISGID of a
    group-executable file (without S_IXGRP it marks mandatory locking, not
    privilege). The kernel asks for it too, by a chmod before a write, but
    not before every change (not before an O_TRUNC open, nor when its cached
    mode lacks the bits)."""
    if fuse.fuse_get_context()[0] == 0:
        return
    inode.mode &= ~stat.S_ISUID
    if inode.mode & stat.S_IXGRP:
        inode.mode &= ~stat.S_ISGID


class Memory(fuse.Operations):
    use_ns = True
    flag_nullpath_ok = True  # operations on open files use the handle

    def __init__(self, root_uid=None, root_gid=None):
        self._lock = threading.RLock()
        self.next_ino = 1
        self.root = self._new_inode(
            stat.S_IFDIR | 0o755,
            os.getuid() if root_uid is None else root_uid,
            os.getgid() if root_gid is None else root_gid)
        self.handles = {}  # fh -> (inode, open flags)
        self.next_fh = 1
        self.used_bytes = 0

    # --- helpers ----------------------------------------------------------

    def _new_inode(self, mode, uid, gid, rdev=0, data=b""):
        if self.next_ino > MAX_INODES:
            fail(errno.ENOSPC)
        inode = Inode(self.next_ino, mode, uid, gid, rdev, data)
        self.next_ino += 1
        return inode

    def _resolve(self, path):
        if not path or path[0] != "/":
            fail(errno.ENOENT)
        node = self.root
        for name in path.split("/"):
            if not name:
                continue
            if len(name) > NAME_MAX:
                fail(errno.ENAMETOOLONG)
            if node.children is None:
                fail(errno.ENOTDIR)
            node = node.children.get(name)
            if node is None:
                fail(errno.ENOENT)
        return node

    def _parent(self, path):
        """(directory inode, last name) of `path`."""
        if not path or path[0] != "/":
            fail(errno.ENOENT)
        head, _, name = path.rpartition("/")
        if not name:
            fail(errno.EBUSY)  # the root has no parent
        if len(name) > NAME_MAX:
            fail(errno.ENAMETOOLONG)
        parent = self._resolve(head or "/")
        if parent.children is None:
            fail(errno.ENOTDIR)
        return parent, name

    def _inode(self, path, fh=None):
        """The open file `fh` when given (it may have no name any more),
        else the file at `path`. A handle this object did not give out, or
        released already, is EBADF: falling back to the path would let a
        stale handle reach whatever file has that name now."""
        if fh is not None:
            entry = self.handles.get(fh)
            if entry is None:
                fail(errno.EBADF)
            return entry[0]
        return self._resolve(path)

    def _make(self, path, mode, rdev=0, data=b""):
        try:
            parent, name = self._parent(path)
        except fuse.FuseOSError as e:
            if e.errno == errno.EBUSY:
                fail(errno.EEXIST)
            raise
        if name in parent.children:
            fail(errno.EEXIST)
        uid, gid, _ = fuse.fuse_get_context()
        if parent.mode & stat.S_ISGID:
            # BSD group semantics under a setgid directory, as Linux does.
            gid = parent.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        self._grow(len(data))
        inode = self._new_inode(mode, uid, gid, rdev, data)
        parent.children[name] = inode
        parent.touch()
        return inode

    def _grow(self, delta):
        if self.used_bytes + delta > CAPACITY:
            fail(errno.ENOSPC)
        self.used_bytes += delta

    def _set_size(self, inode, size):
        old = len(inode.data)
        if size > old:
            self._grow(size - old)
            inode.data.extend(bytes(size - old))
        else:
            self.used_bytes -= old - size
            del inode.data[size:]

    def _write_at(self, inode, data, offset):
        end = offset + len(data)
        if end > len(inode.data):
            self._set_size(inode, end)
        inode.data[offset:end] = data
        inode.touch()

    def _open_handle(self, inode, flags):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (inode, flags)
        return fh

    def _drop_link(self, inode):
        inode.links -= 1
        inode.touch(modified=False)

    @staticmethod
    def _regular(inode):
        if inode.children is not None:
            fail(errno.EISDIR)
        if not stat.S_ISREG(inode.mode):
            fail(errno.EINVAL)

    # --- names --------------------------------------------------------------

    @locked
    def getattr(self, path, fh=None):
        return self._inode(path, fh).attrs()

    @locked
    def readlink(self, path):
        inode = self._resolve(path)
        if not stat.S_ISLNK(inode.mode):
            fail(errno.EINVAL)
        return os.fsdecode(bytes(inode.data))

    @locked
    def mknod(self, path, mode, dev):
        kind = stat.S_IFMT(mode)
        if kind == 0:
            kind = stat.S_IFREG  # mknod(2): type 0 is a regular file
        elif kind == stat.S_IFDIR:
            fail(errno.EPERM)
        elif kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK,
                          stat.S_IFCHR, stat.S_IFBLK):
            fail(errno.EINVAL)
        rdev = dev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
        self._make(path, kind | (mode & 0o7777), rdev)
        return 0

    @locked
    def mkdir(self, path, mode):
        self._make(path, stat.S_IFDIR | (mode & 0o7777))
        return 0

    @locked
    def symlink(self, target, source):
        # target: the new link; source: what it points to (mfusepy's names).
        self._make(target, stat.S_IFLNK | 0o777, data=os.fsencode(source))
        return 0

    def _remove(self, path, directory):
        parent, name = self._parent(path)
        inode = parent.children.get(name)
        if inode is None:
            fail(errno.ENOENT)
        is_dir = inode.children is not None
        if is_dir != directory:
            fail(errno.ENOTDIR if directory else errno.EISDIR)
        if directory and inode.children:
            fail(errno.ENOTEMPTY)
        del parent.children[name]
        parent.touch()
        self._drop_link(inode)

    @locked
    def unlink(self, path):
        self._remove(path, directory=False)
        return 0

    @locked
    def rmdir(self, path):
        self._remove(path, directory=True)
        return 0

    @locked
    def rename(self, old, new, flags=0):
        # Checks in the order Linux's renameat2 makes them, so that a request
        # with several problems gets the errno a local filesystem gives.
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or \
                flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            fail(errno.EINVAL)
        exchange = bool(flags & RENAME_EXCHANGE)
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        source = old_parent.children.get(old_name)
        if source is None:
            fail(errno.ENOENT)
        target = new_parent.children.get(new_name)
        if exchange and target is None:
            fail(errno.ENOENT)
        if flags & RENAME_NOREPLACE and target is not None:
            fail(errno.EEXIST)
        if new.startswith(old + "/"):
            fail(errno.EINVAL)  # a directory cannot move below itself
        if old.startswith(new + "/"):
            fail(errno.EINVAL if exchange else errno.ENOTEMPTY)
        if source is target:
            return 0
        if exchange:
            old_parent.children[old_name] = target
            new_parent.children[new_name] = source
            target.touch(modified=False)
        else:
            if target is not None:
                if source.children is not None and target.children is None:
                    fail(errno.ENOTDIR)
                if source.children is None and target.children is not None:
                    fail(errno.EISDIR)
                if target.children:
                    fail(errno.ENOTEMPTY)
            del old_parent.children[old_name]
            new_parent.children[new_name] = source
            if target is not None:
                self._drop_link(target)
        source.touch(modified=False)
        old_parent.touch()
        new_parent.touch()
        return 0

    @locked
    def link(self, target, source):
        # target: the new name; source: the existing file (mfusepy's names).
        inode = self._resolve(source)
        if inode.children is not None:
            fail(errno.EPERM)
        parent, name = self._parent(target)
        if name in parent.children:
            fail(errno.EEXIST)
        parent.children[name] = inode
        parent.touch()
        inode.links += 1
        inode.touch(modified=False)
        return 0

    # --- attributes -----------------------------------------------------------
    # The kernel checks ownership before asking (default_permissions).

    @locked
    def chmod(self, path, mode, fh=None):
        inode = self._inode(path, fh)
        inode.mode = stat.S_IFMT(inode.mode) | (mode & 0o7777)
        inode.touch(modified=False)
        return 0

    @locked
    def chown(self, path, uid, gid, fh=None):
        inode = self._inode(path, fh)
        if uid != -1:
            inode.uid = uid
        if gid != -1:
            inode.gid = gid
        if inode.children is None:
            clear_set_id_bits(inode)
        inode.touch(modified=False)
        return 0

    @locked
    def truncate(self, path, length, fh=None):
        inode = self._inode(path, fh)
        self._regular(inode)
        self._set_size(inode, length)
        clear_set_id_bits(inode)
        inode.touch()
        return 0

    @locked
    def utimens(self, path, times=None, fh=None):
        inode = self._inode(path, fh)
        now = time.time_ns()
        inode.atime, inode.mtime = times if times is not None else (now, now)
        inode.ctime = now
        return 0

    # --- open files -------------------------------------------------------------

    @locked
    def open(self, path, flags):
        inode = self._resolve(path)
        if inode.children is not None and flags & os.O_ACCMODE != os.O_RDONLY:
            fail(errno.EISDIR)
        if flags & os.O_TRUNC and stat.S_ISREG(inode.mode):
            self._set_size(inode, 0)
            clear_set_id_bits(inode)
            inode.touch()
        return self._open_handle(inode, flags)

    @locked
    def create(self, path, mode, flags=0):
        inode = self._make(path, stat.S_IFREG | (mode & 0o7777))
        return self._open_handle(inode, flags)

    @locked
    def read(self, path, size, offset, fh):
        inode = self._inode(path, fh)
        self._regular(inode)
        return bytes(inode.data[offset:offset + size])

    @locked
    def write(self, path, data, offset, fh):
        inode = self._inode(path, fh)
        self._regular(inode)
        entry = self.handles.get(fh)
        if entry is not None and entry[1] & os.O_APPEND:
            offset = len(inode.data)
        self._write_at(inode, data, offset)
        if data:
            clear_set_id_bits(inode)
        return len(data)

    @locked
    def release(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    @locked
    def fallocate(self, path, mode, offset, size, fh):
        if offset < 0 or size <= 0:
            fail(errno.EINVAL)
        inode = self._inode(path, fh)
        if inode.children is not None:
            fail(errno.EISDIR)
        if not stat.S_ISREG(inode.mode):
            fail(errno.ENODEV)
        end = offset + size
        if mode == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
            stop = min(end, len(inode.data))
            if offset < stop:
                inode.data[offset:stop] = bytes(stop - offset)
                inode.touch()
            clear_set_id_bits(inode)
            return 0
        if mode & ~FALLOC_FL_KEEP_SIZE:
            fail(errno.EOPNOTSUPP)
        if not mode & FALLOC_FL_KEEP_SIZE and end > len(inode.data):
            self._set_size(inode, end)
            inode.touch()
        # As Linux: any successful fallocate counts as a change of the file.
        clear_set_id_bits(inode)
        return 0

    @locked
    def copy_file_range(self, path_in, fh_in, offset_in, path_out, fh_out,
                        offset_out, length, flags):
        if flags:
            fail(errno.EINVAL)
        src, dst = self._inode(path_in, fh_in), self._inode(path_out, fh_out)
        self._regular(src)
        self._regular(dst)
        chunk = bytes(src.data[offset_in:offset_in + length])
        count = len(chunk)
        if src is dst and count and offset_in < offset_out + count and \
                offset_out < offset_in + count:
            fail(errno.EINVAL)  # copy_file_range(2) refuses overlaps
        if count:
            self._write_at(dst, chunk, offset_out)
            clear_set_id_bits(dst)
        return count

    @locked
    def lseek(self, path, offset, whence, fh):
        # All of a file is data; the only hole is the one at its end.
        size = len(self._inode(path, fh).data)
        if whence not in (SEEK_DATA, SEEK_HOLE):
            fail(errno.EINVAL)
        if offset < 0 or offset >= size:
            fail(errno.ENXIO)
        return offset if whence == SEEK_DATA else size

    @locked
    def statfs(self, path):
        free = (CAPACITY - self.used_bytes) // BLOCK
        return {"f_bsize": BLOCK, "f_frsize": BLOCK,
                "f_blocks": CAPACITY // BLOCK, "f_bfree": free,
                "f_bavail": free, "f_files": MAX_INODES,
                "f_ffree": MAX_INODES - self.next_ino,
                "f_favail": MAX_INODES - self.next_ino, "f_namemax": NAME_MAX}

    # --- extended attributes ------------------------------------------------------

    @locked
    def setxattr(self, path, name, value, options, position=0):
        if not name or len(name) > NAME_MAX:
            fail(errno.ERANGE)
        # POSIX ACLs would have to change the mode bits with them; refusing
        # them makes cp -a and tar fall back to chmod.
        if name.startswith("system.posix_acl_"):
            fail(errno.EOPNOTSUPP)
        if len(value) > XATTR_SIZE_MAX:
            fail(errno.E2BIG)
        inode = self._resolve(path)
        exists = name in inode.xattrs
        if options & XATTR_CREATE and exists:
            fail(errno.EEXIST)
        if options & XATTR_REPLACE and not exists:
            fail(fuse.ENOATTR)
        inode.xattrs[name] = bytes(value)
        inode.touch(modified=False)
        return 0

    @locked
    def getxattr(self, path, name, position=0):
        try:
            return self._resolve(path).xattrs[name]
        except KeyError:
            fail(fuse.ENOATTR)

    @locked
    def listxattr(self, path):
        return sorted(self._resolve(path).xattrs)

    @locked
    def removexattr(self, path, name):
        inode = self._resolve(path)
        if inode.xattrs.pop(name, None) is None:
            fail(fuse.ENOATTR)
        inode.touch(modified=False)
        return 0

    # --- directories ------------------------------------------------------------------

    @locked
    def readdir(self, path, fh):
        # Whole listing with full attributes: one reply, and the daemon can
        # answer `ls -l` and lookups from it.
        directory = self._resolve(path)
        if directory.children is None:
            fail(errno.ENOTDIR)
        items = [(".", None, 0), ("..", None, 0)]
        items.extend((name, child.attrs(), 0)
                     for name, child in directory.children.items())
        return items


def main():
    args = example_cli.parse(example_cli.parser(__doc__))
    example_cli.run(args, Memory(), use_ino=True, default_permissions=True,
                    fsname="memory")

if __name__ == "__main__":
    main()
