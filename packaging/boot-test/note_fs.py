"""A flat in-memory file system of regular files, mounted by the boot test
with the installed python3-fusehost through the running fuse-hostd.

    python3 note_fs.py MOUNTPOINT

Serves until the mount goes away (unmount, or the daemon stopping).
"""

import errno
import os
import stat
import sys
import threading

import fusehost as fuse


class NoteFs(fuse.Operations):
    def __init__(self):
        self.lock = threading.Lock()
        self.files = {}  # "/name" -> bytearray

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        with self.lock:
            if path not in self.files:
                raise fuse.FuseOSError(errno.ENOENT)
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1,
                    "st_size": len(self.files[path])}

    def readdir(self, path, fh):
        with self.lock:
            return [".", ".."] + [name[1:] for name in self.files]

    def create(self, path, mode):
        if "/" in path[1:]:
            raise fuse.FuseOSError(errno.EACCES)
        with self.lock:
            self.files.setdefault(path, bytearray())
        return 0

    def open(self, path, flags):
        # The daemon mounts with atomic O_TRUNC: an open with O_TRUNC
        # truncates.
        with self.lock:
            if path not in self.files:
                raise fuse.FuseOSError(errno.ENOENT)
            if flags & os.O_TRUNC:
                del self.files[path][:]
        return 0

    def read(self, path, size, offset, fh):
        with self.lock:
            return bytes(self.files[path][offset:offset + size])

    def write(self, path, data, offset, fh):
        with self.lock:
            content = self.files[path]
            if len(content) < offset:
                content.extend(b"\0" * (offset - len(content)))
            content[offset:offset + len(data)] = data
        return len(data)

    def truncate(self, path, length, fh=None):
        with self.lock:
            content = self.files[path]
            del content[length:]
            content.extend(b"\0" * (length - len(content)))

    def unlink(self, path):
        with self.lock:
            if self.files.pop(path, None) is None:
                raise fuse.FuseOSError(errno.ENOENT)


if __name__ == "__main__":
    fuse.FUSE(NoteFs(), sys.argv[1], foreground=True, fsname="note_py")
