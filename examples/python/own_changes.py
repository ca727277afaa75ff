"""Tells loopback.py's own changes apart from outside ones in what inotify
reports, and which mount made each of its own (a port of
examples/loopback/own_changes.*).

inotify reports a change made through the mount like any other. Passed on,
such a notice makes the daemon drop the attributes and listing entry it has
just updated, and tell the kernel to forget them, so the next stat costs a
backend round trip. Only to the mount that made it, though: the other
mounts of the same backend cache what the change made stale. So every
record names the mount whose operation made the change, and explained_by()
says which mount a notice is no news to; the loopback sends it to every
other one (notify_*(..., except_mount=)).

After each change the loopback makes on the host it records the state that
change left (lstat of each path it touched, or "absent"). A notice about a
path is explained, and not passed on, when the path is still in exactly that
state: any later change by someone else moves ctime (and usually mtime or
size), so the notice for it still goes out. While one of the loopback's
changes to a path is under way (its syscalls and the lstat after them), the
path's notices are explained too: its events may be seen before the record
exists, e.g. a directory's while files are made in it one after another.
What this cannot see is an outside change that lands while a change of ours
to the same path is under way (a change through another mount of the same
backend is such an outside change to this one), or one that leaves every
compared field equal on a filesystem with coarse timestamps; such a change
shows after the cache lifetime instead.

Thread-safe: operations record from their threads, the watcher asks from
its own.
"""

import os
import threading
import time

_ABSENT = ()


class OwnChanges:
    """`root_fd`: the backing directory (not owned). Records are kept for
    `keep` seconds, long enough for the watcher to see their events."""

    def __init__(self, root_fd, keep=2.0):
        self._root_fd = root_fd
        self._keep = keep
        self._lock = threading.Lock()
        # path (bytes) -> (state, until, mount whose operation left it)
        self._records = {}
        # path (bytes) -> {mount: its changes under way}
        self._changing = {}
        self._next_sweep = 0.0

    def changing(self, paths, mount_id):
        """A context manager around one change of ours to `paths` (str or
        bytes, as the mount names them; None and "" are skipped), by an
        operation of mount `mount_id`: marks them as changing, and records
        them when it ends, failed or not."""
        return _Scope(self, [os.fsencode(p) for p in paths if p], mount_id)

    def _state(self, path):
        """The state of `path` (b"/" or b"/dir/name") now: a tuple of what a
        change moves, _ABSENT, or None when it cannot be read."""
        rel = path.lstrip(b"/") or b"."
        try:
            st = os.stat(rel, dir_fd=self._root_fd, follow_symlinks=False)
        except FileNotFoundError:
            return _ABSENT
        except OSError:
            return None  # e.g. EACCES: unknown
        return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid,
                st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def record(self, path, mount_id):
        """Records the state of `path` (str or bytes, as the mount names it)
        after the calling thread changed it for an operation of mount
        `mount_id`; one it cannot stat is forgotten instead (its notices go
        out to every mount)."""
        path = os.fsencode(path)
        # The state is read under the lock that stores it. Two changes of
        # one path may finish at once (a chmod, and the release of the
        # file's writable open that the daemon sends in the background):
        # read outside, the older state could be stored last, and the newer
        # change's event would then look like someone else's.
        with self._lock:
            state = self._state(path)
            now = time.monotonic()
            if state is None:
                self._records.pop(path, None)
            else:
                self._records[path] = (state, now + self._keep, mount_id)
            # Expired records go in sweeps, so the table stays as small as
            # the changes of the last `keep` seconds.
            if now >= self._next_sweep:
                self._records = {p: r for p, r in self._records.items()
                                 if r[1] > now}
                self._next_sweep = now + self._keep

    def explained_by(self, path):
        """The mount a notice about `path` (bytes) is no news to: the one
        whose operation left it in the state its last record says, or whose
        change to it is under way. None when no change of ours explains it,
        or when changes of several mounts to it are under way: then every
        mount must hear."""
        with self._lock:
            changing = self._changing.get(path)
            if changing is not None:
                # Several mounts at once: each made a change the others do
                # not know of.
                return next(iter(changing)) if len(changing) == 1 else None
            record = self._records.get(path)
        if record is None or record[1] <= time.monotonic():
            return None
        return record[2] if self._state(path) == record[0] else None


class _Scope:
    __slots__ = ("_owner", "_paths", "_mount_id")

    def __init__(self, owner, paths, mount_id):
        self._owner = owner
        self._paths = paths
        self._mount_id = mount_id

    def __enter__(self):
        owner, mount_id = self._owner, self._mount_id
        with owner._lock:
            for path in self._paths:
                changes = owner._changing.setdefault(path, {})
                changes[mount_id] = changes.get(mount_id, 0) + 1
        return self

    def __exit__(self, *exc):
        owner, mount_id = self._owner, self._mount_id
        for path in self._paths:
            owner.record(path, mount_id)
        with owner._lock:
            for path in self._paths:
                changes = owner._changing[path]
                left = changes[mount_id] - 1
                if left:
                    changes[mount_id] = left
                else:
                    del changes[mount_id]
                    if not changes:
                        del owner._changing[path]
        return False
