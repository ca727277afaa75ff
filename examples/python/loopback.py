#!/usr/bin/python3
"""A loopback filesystem: mirrors one host directory through fuse-hostd.

The Python counterpart of examples/loopback (loopback_fs), on the mfusepy
API. Like it:
* every operation runs as the user who asked (the thread's fsuid, fsgid and
  supplementary groups are switched for the length of the operation, when
  this process runs as root), so permissions, ACLs and ownership of new
  files are exactly what that user gets on the directory itself;
* paths are resolved below an O_PATH descriptor of the root with the *at()
  calls, intermediate directories with openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS), so no path leaves the root even if someone swaps a
  directory for a symlink on the host;
* open files and directories are real descriptors, so unlinked open files
  keep working; fh is a number from a handle table (loopback_handles.py),
  never the descriptor number, and unknown handles answer EBADF;
* a write, truncate, fallocate or O_TRUNC open by a caller other than root
  clears the file's set-user-ID bit, and its set-group-ID bit when it is
  group-executable, as on the host (see chmod in loopback_attributes.py for
  the kernel's part in it);
* it watches the directory with inotify (tree_watch.py) and tells the
  daemon what changed there other than through the mount, so the daemon and
  the kernel may cache for a minute and changes on the host still show at
  once; its own changes are recognised (own_changes.py) and announced only
  to the other mounts of the same object, if any, so that with two mounts
  of one directory a change through one shows through the other at once.
  `--no-watch` turns that off: then everything is cached for 1 s.

For speed it uses fusehost extensions mfusepy does not have: getattr and
readdir hand back os.stat_result objects (no dict per file), readdir entries
carry each file's xattr names (the daemon then answers `ls -l`'s getxattr of
ACLs itself), and chmod, chown and utimens take the file handle (fh=) of
fchmod & co.

Build the package once (`bazel build //...`), then, as root with fuse-hostd
running:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/loopback.py /srv/data /mnt/data -o allow_other

or serve it for `fuse-hostctl mount unix:/tmp/loop.sock /mnt/data`:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/loopback.py /srv/data --listen unix:/tmp/loop.sock
"""
import contextlib
import errno
import logging
import os
import threading

import example_cli
import fusehost as fuse
import own_changes
import tree_watch
from loopback_attributes import AttributeOperations
from loopback_credentials import CallerCredentials
from loopback_files import FileOperations
from loopback_handles import Handles
from loopback_libc import SYSCALLS, openat2_beneath
from loopback_names import NameOperations

log = logging.getLogger("loopback")

# How long the daemon and the kernel may cache while the tree is watched.
WATCHED_TTL = 60
# Extended attributes of the host's security modules.
LSM_LABELS = ("security.selinux", "security.SMACK64", "security.apparmor")
# What _changing gives when nothing is watched (reusable).
_NOT_WATCHED = contextlib.nullcontext()


class Loopback(NameOperations, AttributeOperations, FileOperations,
               fuse.Operations):
    """The filesystem. Its operations come by family from the classes it
    mixes in; here is what they share: path resolution below the root (_at,
    _at2, _by_path), change recording (_changing, _parent), the handle table
    (handles) and the caller's credentials (switch, gid, for @as_caller)."""

    use_ns = True
    flag_nullpath_ok = True
    getattr_is_cheap = True  # an fstatat

    def __init__(self, root, act_as_caller=True, watch=True,
                 passthrough=True, acl=True, lsm_labels=False):
        # open and create answer with the host descriptor (see
        # loopback_files.py): the kernel then reads and writes the file
        # itself where fuse-hostd and the kernel can.
        self.passthrough = passthrough
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.switch = act_as_caller and CallerCredentials.process_can_switch()
        # Its open for reading only opens: fuse-hostd may do that itself.
        if passthrough:
            self.passthrough_root = self.root_fd
            self.passthrough_root_as_caller = self.switch
            # chmod, chown and utimens are the system calls on that file
            # (a refused chmod still comes here: see loopback_attributes.py).
            self.passthrough_root_changes_attributes = True
            # unlink and rmdir are unlinkat(2) of the name there.
            self.passthrough_root_removes_names = True
            # create is open(2) with O_CREAT there, and its handle is an
            # open(2) of the file like any other.
            self.passthrough_root_creates_files = True
        self.gid = os.getegid()
        # The kernel enforces and keeps the files' POSIX ACLs where the
        # directory's filesystem has them: ls -l then asks each file for its
        # ACL once per mount.
        if acl and _keeps_acls(self.root_fd):
            self.wanted_features = fuse.FUSE_CAP_POSIX_ACL
        # The host's security labels are its security module's business
        # (which labels a FUSE mount itself): unsupported names, which ls -l
        # learns at the first file instead of asking each one.
        if not lsm_labels:
            self.unsupported_xattr_prefixes = LSM_LABELS
        self.have_openat2 = "openat2" in SYSCALLS and self._probe_openat2()
        self.handles = Handles()
        # Files open for writing with passthrough: the kernel writes them
        # without telling us, so their events are our change, under way
        # until the release (handle -> the entered _changing scope).
        self.writing = {}
        self.writing_lock = threading.Lock()
        # getdents moves a directory descriptor's shared offset.
        self.dir_locks = [threading.Lock() for _ in range(16)]
        self.own = self.watcher = None
        if watch:
            try:
                self.own = own_changes.OwnChanges(self.root_fd)
                self.watcher = tree_watch.TreeWatcher(self._open_beneath,
                                                      self._announce)
                # Read by the SDK when serving starts: long lifetimes are
                # safe only while changes on the host are announced.
                self.default_ttl = WATCHED_TTL
            except OSError as e:
                log.warning("cannot watch %s for changes (%s): caching for "
                            "1 s only", root, e)
                self.own = None

    def _probe_openat2(self):
        try:
            os.close(openat2_beneath(self.root_fd, "."))
            return True
        except OSError:
            return False

    def _at(self, path, op):
        """Runs op(dir_fd, name) for the last component of `path`."""
        if not path:
            raise fuse.FuseOSError(errno.ENOENT)  # unlinked: no name left
        head, _, name = path.rpartition("/")
        if not head:
            return op(self.root_fd, name or ".")
        if self.have_openat2:
            parent = openat2_beneath(self.root_fd, head[1:])
        else:
            parent = os.open(head[1:], os.O_PATH | os.O_DIRECTORY |
                             os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.root_fd)
        try:
            return op(parent, name)
        finally:
            os.close(parent)

    def _open_beneath(self, rel):
        """O_PATH descriptor of directory `rel` (bytes, b"" for the root),
        resolved as operations resolve paths: never leaving the root."""
        if self.have_openat2:
            return openat2_beneath(self.root_fd, rel or b".")
        return os.open(rel or b".", os.O_PATH | os.O_DIRECTORY |
                       os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.root_fd)

    # --- changes on the host -----------------------------------------------

    def init(self, path):
        # Here rather than in __init__: FUSE() may fork before serving, and
        # threads do not survive that.
        if self.watcher is not None:
            self.watcher.start()

    def _announce(self, changes):
        """The watcher's sink: tells the daemon, each change to every mount
        but the one whose own operation made it."""
        for kind, path in changes:
            own = self.own.explained_by(path)
            if kind == tree_watch.CHANGED:
                self.notify_changed(path, except_mount=own)
            elif kind == tree_watch.REMOVED:
                self.notify_removed(path, except_mount=own)
            else:
                self.notify_subtree_changed(path, except_mount=own)

    def _changing(self, *paths):
        """Wraps one change of ours to `paths` (None is skipped), by the
        operation running on this thread, so that the watcher's notices
        about them are recognised as that operation's mount's."""
        if self.own is None:
            return _NOT_WATCHED
        caller = fuse.fuse_get_caller()
        return self.own.changing(
            paths, caller.mount_id if caller is not None else None)

    def _at2(self, old, new, op):
        return self._at(old, lambda d1, n1: self._at(
            new, lambda d2, n2: op(d1, n1, d2, n2)))

    @staticmethod
    def _by_path(dir_fd, name, op):
        """op("/proc/self/fd/N") for calls without an *at() form: N is an
        O_PATH descriptor of `name` itself, so nothing is followed."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        try:
            return op(fd, "/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)

    @staticmethod
    def _parent(path):
        """The directory holding `path` ("/a/b" -> "/a", "/a" -> "/")."""
        return path.rpartition("/")[0] or "/" if path else None

    def statfs(self, path):
        st = os.statvfs(self.root_fd)
        return {key: getattr(st, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
            "f_files", "f_ffree", "f_favail", "f_namemax")}


def _keeps_acls(fd):
    """Whether the filesystem of directory `fd` keeps POSIX ACLs (answers
    a query for one rather than EOPNOTSUPP)."""
    try:
        os.getxattr("/proc/self/fd/%d" % fd, "system.posix_acl_access")
    except OSError as e:
        return e.errno == errno.ENODATA
    return True


def main():
    p = example_cli.parser(__doc__)
    p.add_argument("root", help="the directory to mirror")
    p.add_argument("--no-watch", dest="watch", action="store_false",
                   help="do not watch the directory for changes made other "
                   "than through the mount (they then show within 1 s)")
    p.add_argument("--no-passthrough", dest="passthrough",
                   action="store_false",
                   help="forward every read and write instead of handing "
                   "fuse-hostd the opened files' descriptors")
    p.add_argument("--no-acl", dest="acl", action="store_false",
                   help="do not have the kernel enforce and keep the files' "
                   "POSIX ACLs")
    p.add_argument("--lsm-labels", action="store_true",
                   help="mirror the host's security labels "
                   "(security.selinux, SMACK64, apparmor); otherwise they "
                   "are unsupported names through the mount")
    args = example_cli.parse(p)
    # Modes arrive with the caller's umask applied.
    os.umask(0)
    example_cli.run(args, Loopback(args.root, watch=args.watch,
                                      passthrough=args.passthrough,
                                      acl=args.acl,
                                      lsm_labels=args.lsm_labels),
                    use_ino=True,
                    default_permissions=True, fsname=args.root)

if __name__ == "__main__":
    main()
