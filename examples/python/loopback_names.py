"""loopback.py's operations on names and directories: making, removing,
renaming and linking entries, symlinks, listing directories, and access.

Mixed into loopback.Loopback, which provides what these methods use."""

import errno
import os
import stat

import fusehost as fuse
from loopback_credentials import as_caller
from loopback_libc import check, libc


class NameOperations:
    @as_caller
    def readlink(self, path):
        return self._at(path, lambda d, n: os.readlink(n, dir_fd=d))

    @as_caller
    def mknod(self, path, mode, dev):
        with self._changing(path, self._parent(path)):
            self._at(path, lambda d, n: os.mknod(n, mode, dev, dir_fd=d))

    @as_caller
    def mkdir(self, path, mode):
        with self._changing(path, self._parent(path)):
            self._at(path, lambda d, n: os.mkdir(n, mode, dir_fd=d))

    @as_caller
    def unlink(self, path):
        with self._changing(path, self._parent(path)):
            self._at(path, lambda d, n: os.unlink(n, dir_fd=d))

    @as_caller
    def rmdir(self, path):
        with self._changing(path, self._parent(path)):
            self._at(path, lambda d, n: os.rmdir(n, dir_fd=d))

    @as_caller
    def symlink(self, target, source):
        with self._changing(target, self._parent(target)):
            self._at(target, lambda d, n: os.symlink(source, n, dir_fd=d))

    @as_caller
    def rename(self, old, new, flags=0):
        def op(d1, n1, d2, n2):
            if not flags:
                return os.rename(n1, n2, src_dir_fd=d1, dst_dir_fd=d2)
            # The kernel answers EINVAL for flags the filesystem cannot do.
            return check(libc.renameat2(d1, os.fsencode(n1), d2,
                                        os.fsencode(n2), flags))
        with self._changing(old, self._parent(old), new, self._parent(new)):
            self._at2(old, new, op)

    @as_caller
    def link(self, target, source):
        # The new name, its directory, and the file's link count.
        with self._changing(target, self._parent(target), source):
            self._at2(source, target, lambda d1, n1, d2, n2: os.link(
                n1, n2, src_dir_fd=d1, dst_dir_fd=d2, follow_symlinks=False))

    # --- directories ----------------------------------------------------------

    @as_caller
    def opendir(self, path):
        # As opendir(3): read permission is checked now, as the caller.
        return self.handles.add(self._at(path, lambda d, n: os.open(
            n, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW,
            dir_fd=d)))

    @as_caller
    def readdir(self, path, fh):
        # The whole listing, each entry with its stat result and its xattr
        # names: one reply, and the daemon answers `ls -l` (lookups, and the
        # getxattr of an ACL it asks of every file) from it.
        fd = self.handles.fd(fh)
        with self.dir_locks[fh % len(self.dir_locks)]:
            with os.scandir(fd) as it:
                entries = list(it)
        items = []
        stat_at, listxattr = os.stat, os.listxattr
        for entry in entries:
            name = entry.name
            try:
                st = stat_at(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the directory was read
            except OSError:
                # E.g. a directory the caller may read but not search: names
                # and types only, as ls shows them.
                items.append((name, _dtype_mode(entry), 0))
                continue
            try:
                names = listxattr("/proc/self/fd/%d/%s" % (fd, name),
                                  follow_symlinks=False)
            except OSError:
                names = None  # not known: the daemon asks when it needs them
            items.append((name, st, 0, names))
        return items

    def releasedir(self, path, fh):
        self.handles.close(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return self.fsync(path, datasync, fh)

    @as_caller
    def access(self, path, amode):
        # effective_ids (AT_EACCESS): the thread's fsuid and groups, not its
        # real uid.
        if not self._at(path, lambda d, n: os.access(
                n, amode, dir_fd=d, effective_ids=True,
                follow_symlinks=False)):
            raise fuse.FuseOSError(errno.EACCES)
        return 0


def _dtype_mode(entry):
    if entry.is_symlink():
        return stat.S_IFLNK
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return 0
