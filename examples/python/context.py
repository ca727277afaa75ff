#!/usr/bin/python3
"""Shows who is asking: files /uid, /gid and /pid hold the caller's ids.

Each read answers with the user, group and process id of the process that
reads (fuse_get_context(), as in mfusepy), so two users reading the same file
see different contents. Files are opened with direct_io, so the kernel
neither caches one caller's answer for the next nor trusts a size it saw for
another caller.

Build the package once (`bazel build //...`), then, as root with fuse-hostd
running:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/context.py /mnt/context -o allow_other
  cat /mnt/context/uid
"""

import errno
import stat
import time

import example_cli
import fusehost as fuse

FILES = ("uid", "gid", "pid")


class Context(fuse.Operations):
    use_ns = True

    def __init__(self):
        self.started = time.time_ns()

    @staticmethod
    def _content(path):
        uid, gid, pid = fuse.fuse_get_context()
        values = {"/uid": uid, "/gid": gid, "/pid": pid}
        if path not in values:
            raise fuse.FuseOSError(errno.ENOENT)
        return b"%d\n" % values[path]

    def getattr(self, path, fh=None):
        times = {"st_atime": self.started, "st_mtime": self.started,
                 "st_ctime": self.started}
        if path == "/":
            return dict(times, st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        return dict(times, st_mode=stat.S_IFREG | 0o444, st_nlink=1,
                    st_size=len(self._content(path)))

    def readdir(self, path, fh):
        if path != "/":
            raise fuse.FuseOSError(errno.ENOTDIR)
        return [".", ".."] + list(FILES)

    def open(self, path, flags):
        self._content(path)  # ENOENT for anything but the three files
        return 0

    def read(self, path, size, offset, fh):
        return self._content(path)[offset:offset + size]


def main():
    args = example_cli.parse(example_cli.parser(__doc__))
    example_cli.run(args, Context(), direct_io=True, fsname="context")

if __name__ == "__main__":
    main()
