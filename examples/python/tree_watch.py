"""Watches a host directory tree with inotify and reports what changed in it,
in the terms of the daemon's caches (Operations.notify_*), so that changes
made directly in loopback.py's directory show through the mount within
milliseconds instead of after cache lifetimes. A port of
examples/loopback/tree_watcher.* (loopback_fs), with its rules:

* created, written, closed after writing, attributes changed: CHANGED of the
  file; a name that appeared also CHANGED of its directory, whose listing
  and mtime changed.
* deleted, renamed away: REMOVED of the name and CHANGED of its directory;
  renamed to: CHANGED of the new name and of its directory.
* a directory renamed: also SUBTREE of the old and the new name, since every
  path below both changed.
* the kernel's event queue overflowed: SUBTREE of "/", and the tree is
  watched again from scratch.

Every directory needs its own watch, added when it appears (it is then
read: names made below it before the watches existed produced no events, so
each is reported CHANGED, or SUBTREE of the new directory when there are
many). Watches follow directory renames. Past the kernel's limit
(fs.inotify.max_user_watches) one warning is logged and the directories left
unwatched are reported as SUBTREE every `unwatched_period` instead: the mount stays correct and caches less there.

Events come in bursts (one write through the mount makes a few), so they are
collected for `coalesce` seconds after the first and reported together, each
distinct change once.

Paths are bytes throughout ("/" is the root, b"/dir/name" below it): names
on the host need not be valid in any encoding, and the notify_* methods take
bytes as they are.
"""

import ctypes
import errno
import logging
import os
import select
import struct
import threading
import time

CHANGED, REMOVED, SUBTREE = "changed", "removed", "subtree"

log = logging.getLogger("tree_watch")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]

# <sys/inotify.h>
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_ONLYDIR, IN_EXCL_UNLINK, IN_ISDIR = 0x1000000, 0x4000000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC

# IN_EXCL_UNLINK: writes to a file that is open but already unlinked would
# name a path that is no longer its.
_MASK = (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
         IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
         IN_ONLYDIR | IN_EXCL_UNLINK)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name
# Room for hundreds of events per read(2), which never splits one.
_READ_BYTES = 64 * 1024
# Past this many names found below a new directory, it is reported as
# SUBTREE rather than name by name.
_MAX_NAMES_REPORTED = 256

# Past this many unwatched directories one SUBTREE of "/" replaces their
# periodic reports: thousands of notices every period would cost the daemon
# more than the cache it keeps.
_MAX_UNWATCHED_REPORTS = 64


def _join(rel, name):
    """b"a/b" + b"c" = b"a/b/c"; b"" is the root."""
    return rel + b"/" + name if rel else name


class TreeWatcher:
    """Watches everything below a directory; `sink(changes)` gets each
    batch, a list of (kind, path) in the order they happened.

    `open_dir(rel)` opens tree-relative directory `rel` (bytes, b"" for the
    root) as an O_PATH descriptor without leaving the tree (loopback.py
    resolves beneath its root, refusing symlinks) and raises OSError when it
    cannot. The constructor watches the whole tree, so changes made once it
    returns are reported; start() starts the thread that reports them. All
    else runs on that thread, the only one to touch the tables afterwards.
    """

    def __init__(self, open_dir, sink, coalesce=0.005, unwatched_period=0.1,
                 max_watches=0):
        self._open_dir = open_dir
        self._sink = sink
        self._coalesce = coalesce
        self._unwatched_period = unwatched_period
        self._max_watches = max_watches  # 0: as many as the kernel allows
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "inotify_init1: " + os.strerror(e) + (
                " (fs.inotify.max_user_instances reached?)"
                if e == errno.EMFILE else ""))
        self._fd = fd
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # A watched directory is (parent wd, name), the root (-1, b""):
        # renaming a directory is then one update, whatever lies below.
        self._dirs = {}
        self._children = {}   # (parent wd, name) -> wd
        # Directories left unwatched at the limit whose parent is watched.
        self._unwatched = set()
        self._limit_logged = False
        # Directories renamed away, by rename cookie, until the matching
        # "renamed to" (none when they left the tree).
        self._moving = {}
        self._batch = []
        self._thread = None
        self._watch_tree(-1, b"", report=False)

    def start(self):
        """Starts reporting (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="tree-watcher")
            self._thread.start()

    def close(self):
        """Stops the thread; a batch being collected is dropped."""
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join()
        for fd in (self._stop_r, self._stop_w, self._fd):
            os.close(fd)

    # --- the thread ------------------------------------------------------

    def _run(self):
        try:
            self._loop()
        except Exception:
            # Without the watcher the cache lifetimes are wrong: say so.
            log.exception("watching stopped; changes made on the host now "
                          "show only after cache lifetimes")

    def _loop(self):
        poller = select.poll()
        poller.register(self._stop_r, select.POLLIN)
        poller.register(self._fd, select.POLLIN)
        flush_at = None
        unwatched_at = time.monotonic() + self._unwatched_period
        while True:
            wake = flush_at
            if self._unwatched and (wake is None or unwatched_at < wake):
                wake = unwatched_at
            if flush_at is not None:
                # While a burst is collected its events stay queued and are
                # read in one go when the window ends: one wake-up per burst.
                poller.unregister(self._fd)
            timeout = None if wake is None else \
                max(0.0, wake - time.monotonic()) * 1000
            ready = poller.poll(timeout)
            if flush_at is not None:
                poller.register(self._fd, select.POLLIN)
            if any(fd == self._stop_r for fd, _ in ready):
                return
            now = time.monotonic()
            if ready or (flush_at is not None and now >= flush_at):
                self._read_events()
                now = time.monotonic()
            if self._unwatched and now >= unwatched_at:
                self._report_unwatched()
                unwatched_at = now + self._unwatched_period
            if self._batch and flush_at is None:
                flush_at = now + self._coalesce
            if flush_at is not None and now >= flush_at:
                self._flush()
                flush_at = None

    def _read_events(self):
        unpack, size = _EVENT.unpack_from, _EVENT.size
        while True:
            try:
                buf = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                return  # all read
            if not buf:
                return
            pos = 0
            while pos < len(buf):
                wd, mask, cookie, length = unpack(buf, pos)
                pos += size
                # The name is NUL-padded to its slot; length 0: no name.
                name = buf[pos:pos + length].rstrip(b"\0")
                pos += length
                self._handle(wd, mask, cookie, name)

    def _handle(self, wd, mask, cookie, name):
        if mask & IN_Q_OVERFLOW:
            # Events were lost, new directories among them maybe: start over.
            self._report(SUBTREE, b"")
            self._rewatch()
            return
        d = self._dirs.get(wd)
        if d is None:
            return  # a watch already given up
        if mask & IN_IGNORED:
            self._forget(wd)
            return
        rel = self._rel_path(wd)
        if rel is None:
            return  # left the tree
        if not name:
            # About the directory itself. Its renames and removal come as
            # its parent's events; only the root has none.
            if mask & IN_ATTRIB:
                self._report(CHANGED, rel)
            if mask & IN_DELETE_SELF and d[0] == -1:
                self._report(SUBTREE, b"")
            return
        path = _join(rel, name)
        is_dir = bool(mask & IN_ISDIR)
        if mask & IN_CREATE:
            self._report(CHANGED, path)
            self._report(CHANGED, rel)
            if is_dir:
                self._watch_tree(wd, name, report=True)
        if mask & IN_DELETE:
            self._report(REMOVED, path)
            self._report(CHANGED, rel)
            # A watched directory's own watch ends with IN_IGNORED.
            if is_dir:
                self._unwatched.discard((wd, name))
        if mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE):
            self._report(CHANGED, path)
        if mask & IN_MOVED_FROM:
            self._report(REMOVED, path)
            self._report(CHANGED, rel)
            if is_dir:
                self._report(SUBTREE, path)
                self._unwatched.discard((wd, name))
                child = self._children.pop((wd, name), None)
                if child is not None:
                    # Detached until IN_MOVED_TO says where it went.
                    self._moving[cookie] = child
        if mask & IN_MOVED_TO:
            self._report(CHANGED, path)
            self._report(CHANGED, rel)
            if is_dir:
                self._report(SUBTREE, path)
                moved = self._moving.pop(cookie, None)
                if moved is not None and moved in self._dirs:
                    # A directory it replaced keeps its watch until
                    # IN_IGNORED, which forgets the name only if it still
                    # maps to that watch.
                    self._dirs[moved] = (wd, name)
                    self._children[(wd, name)] = moved
                else:
                    # From outside the tree, or a split rename whose
                    # directory was given up: watch it as new.
                    self._watch_tree(wd, name, report=False)

    # --- the watch tables ----------------------------------------------------

    def _watch_tree(self, parent, name, report):
        """Watches directory `name` of watched directory `parent` (the root
        for -1) and everything below. With `report`, the names found below
        it are reported (they appeared before the watches could see them):
        CHANGED of each, or, past _MAX_NAMES_REPORTED, SUBTREE of it."""
        found = []
        top_rel = None
        pending = [(parent, name)]
        while pending:
            parent, name = pending.pop()
            if parent == -1:
                rel = b""
            else:
                rel = self._rel_path(parent)
                if rel is None:
                    continue
                rel = _join(rel, name)
            if top_rel is None:
                top_rel = rel
            try:
                fd = self._open_dir(rel)
            except OSError:
                continue  # gone already, or no longer a directory
            try:
                wd = self._add_watch(fd, parent, name)
                if wd < 0:
                    continue
                try:
                    listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY |
                                      os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    continue
                try:
                    with os.scandir(listing) as it:
                        entries = [(os.fsencode(e.name),
                                    e.is_dir(follow_symlinks=False))
                                   for e in it]
                except OSError:
                    continue
                finally:
                    os.close(listing)
            finally:
                os.close(fd)
            if report and len(found) <= _MAX_NAMES_REPORTED:
                found.extend(_join(rel, n) for n, _ in entries)
            pending.extend((wd, n) for n, is_dir in entries if is_dir)
        if len(found) > _MAX_NAMES_REPORTED:
            self._report(SUBTREE, top_rel)
            return
        # Each by name (untar makes names in a directory it just made,
        # faster than the watch on it is added): as precise as the events
        # would have been.
        for path in found:
            self._report(CHANGED, path)

    def _add_watch(self, fd, parent, name):
        """One watch, through the descriptor (the path may have been swapped
        for a symlink since); -1 when the directory stays unwatched."""
        wd, err = -1, errno.ENOSPC
        if not self._max_watches or len(self._dirs) < self._max_watches:
            wd = _libc.inotify_add_watch(
                self._fd, b"/proc/self/fd/%d" % fd, _MASK)
            err = ctypes.get_errno()
        if wd < 0:
            if err == errno.ENOSPC:
                self._unwatched.add((parent, name))
                self._log_limit_once(parent, name)
            return -1
        # inotify gives the existing watch of a directory watched already:
        # then only its place changed.
        known = self._dirs.get(wd)
        if known is not None and self._children.get(known) == wd:
            del self._children[known]
        self._dirs[wd] = (parent, name)
        if parent != -1:
            self._children[(parent, name)] = wd
        self._unwatched.discard((parent, name))
        return wd

    def _unwatch_tree(self, top):
        doomed = []
        for wd in self._dirs:
            # Up to `top` or the root; bounded in case stale entries loop.
            at, steps = wd, 0
            while at != -1 and at != top and steps <= len(self._dirs):
                d = self._dirs.get(at)
                at = -1 if d is None else d[0]
                steps += 1
            if at == top:
                doomed.append(wd)
        for wd in doomed:
            _libc.inotify_rm_watch(self._fd, wd)
            self._forget(wd)

    def _rewatch(self):
        for wd in self._dirs:
            _libc.inotify_rm_watch(self._fd, wd)
        self._dirs.clear()
        self._children.clear()
        self._unwatched.clear()
        self._moving.clear()
        self._watch_tree(-1, b"", report=False)

    def _forget(self, wd):
        d = self._dirs.pop(wd, None)
        if d is None:
            return
        if self._children.get(d) == wd:
            del self._children[d]
        # Unwatched directories inside it went with it.
        self._unwatched = {u for u in self._unwatched if u[0] != wd}

    def _rel_path(self, wd):
        """Tree-relative path of watched directory `wd` (b"" for the root);
        None when it is no longer attached to the root."""
        names = []
        at = wd
        while at != -1:
            d = self._dirs.get(at)
            if d is None or len(names) > len(self._dirs):
                return None  # detached, or dropped on the way
            if d[0] != -1:
                if self._children.get(d) != at:
                    return None
                names.append(d[1])
            at = d[0]
        return b"/".join(reversed(names))

    def _log_limit_once(self, parent, name):
        if self._limit_logged:
            return
        self._limit_logged = True
        if self._max_watches:
            limit = "max_watches = %d" % self._max_watches
        else:
            try:
                with open("/proc/sys/fs/inotify/max_user_watches") as f:
                    limit = "fs.inotify.max_user_watches = " + f.read().strip()
            except OSError:
                limit = "fs.inotify.max_user_watches"
        rel = b"" if parent == -1 else _join(self._rel_path(parent) or b"",
                                             name)
        log.warning("inotify watch limit reached (%s) at %r: directories left "
                    "unwatched are reported as changed every %g s instead; "
                    "raise the limit to cache them", limit,
                    os.fsdecode(b"/" + rel), self._unwatched_period)

    # --- reporting -------------------------------------------------------------

    def _report(self, kind, rel):
        self._batch.append((kind, b"/" + rel))

    def _report_unwatched(self):
        if len(self._unwatched) > _MAX_UNWATCHED_REPORTS:
            self._report(SUBTREE, b"")
            return
        for parent, name in list(self._unwatched):
            if parent == -1:
                self._report(SUBTREE, b"")
                continue
            rel = self._rel_path(parent)
            if rel is not None:
                self._report(SUBTREE, _join(rel, name))

    def _flush(self):
        # Directories renamed away with no "renamed to" left the tree.
        for wd in self._moving.values():
            if wd in self._dirs:
                self._unwatch_tree(wd)
        self._moving.clear()
        batch, self._batch = self._batch, []
        if (SUBTREE, b"/") in batch:
            out = [(SUBTREE, b"/")]
        else:
            # Each change once, where it last happened: a name created,
            # removed and created again ends as "changed", as it is.
            seen = set()
            out = []
            for change in reversed(batch):
                if change not in seen:
                    seen.add(change)
                    out.append(change)
            out.reverse()
        if out:
            self._sink(out)

