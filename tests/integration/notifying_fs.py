#!/usr/bin/python3
"""A filesystem whose files change behind its mount, for the tests of
Operations.notify_* (test_python_sdk_notices.py). Files live in a dict
that requests on a control socket change; each change is announced with
notify_changed / notify_removed, or on request not at all. Attributes may
be cached for a minute (default_ttl), so without a notice the mount shows
old ones.

  notifying_fs.py MOUNTPOINT CONTROL_SOCKET     (mounts with FUSE())

One request per connection, one line each way:
  set PATH TEXT     PATH (a file in the root) now holds TEXT; notify
                    (a new name: the root too)
  quiet PATH TEXT   the same, without a notice
  remove PATH       delete PATH; notify
  streams           how many Invalidations streams are open
Answers: "ok SECONDS" (time.monotonic() right after the notice, comparable
with the test's clock) or the number; "error ..." otherwise.
"""

import errno
import os
import socketserver
import stat
import sys
import threading
import time

import fusehost as fuse
from fusehost import _invalidations


class Notifying(fuse.Operations):
    use_ns = True
    default_ttl = 60

    def __init__(self):
        self.lock = threading.Lock()
        self.files = {"/f": b"one", "/g": b"doomed"}

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        with self.lock:
            data = self.files.get(path)
        if data is None:
            raise fuse.FuseOSError(errno.ENOENT)
        return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1,
                "st_size": len(data)}

    def readdir(self, path, fh):
        with self.lock:
            return [".", ".."] + [p[1:] for p in self.files]

    def read(self, path, size, offset, fh):
        with self.lock:
            data = self.files.get(path)
        if data is None:
            raise fuse.FuseOSError(errno.ENOENT)
        return data[offset:offset + size]

    # --- the side channel ---

    def control(self, line):
        words = line.split(" ", 2)
        if words[0] == "streams":
            # Private, for the test only: it must not change files before
            # the daemon listens, or the notice would reach nobody.
            return str(_invalidations.hub_of(self).subscription_count())
        if words[0] in ("set", "quiet") and len(words) == 3:
            path = words[1]
            with self.lock:
                new = path not in self.files
                self.files[path] = words[2].encode()
            if words[0] == "set":
                self.notify_changed(path)
                if new:
                    self.notify_changed("/")
        elif words[0] == "remove" and len(words) == 2:
            with self.lock:
                del self.files[words[1]]
            self.notify_removed(words[1])
        else:
            return "error: bad request %r" % line
        return "ok %.6f" % time.monotonic()


def serve_control(fs, path):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode().rstrip("\n")
            try:
                answer = fs.control(line)
            except Exception as e:
                answer = "error: %r" % e
            self.wfile.write(answer.encode() + b"\n")

    server = socketserver.ThreadingUnixStreamServer(path, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    mountpoint, control_socket = sys.argv[1:3]
    fs = Notifying()
    if os.path.exists(control_socket):
        os.unlink(control_socket)
    serve_control(fs, control_socket)
    fuse.FUSE(fs, mountpoint, foreground=True, fsname="notifying")


if __name__ == "__main__":
    main()
