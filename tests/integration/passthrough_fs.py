"""A small loopback filesystem for the passthrough tests (test_passthrough.py)
that hands fuse-hostd the descriptor its flag names instead of, or besides,
the file it opened:

  --give right       the opened file itself (passthrough should happen)
  --give dir         a descriptor of the root directory
  --give pipe        the read end of a pipe
  --give readonly    the file opened read-only, whatever the open asked
  --give wrong-tag   the opened file, tagged for another open

Reads and writes of the open go to the file it really opened (by handle),
so data stays right whichever way the daemon goes.

Run: PYTHONPATH=<bazel-bin>/client/python python3 passthrough_fs.py
       ROOT MOUNTPOINT --give KIND [-o OPTIONS]
"""

import argparse
import os

import fusehost
from fusehost import _passthrough

_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid",
              "st_size", "st_atime", "st_mtime", "st_ctime")


class PassthroughFs(fusehost.Operations):
    passthrough = True

    def __init__(self, root, give):
        self.root = root
        self.give = give
        self.decoys = {}  # handle -> the descriptor sent instead

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._p(path))
        return {k: getattr(st, k) for k in _STAT_KEYS}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def _decoy(self, path, flags):
        if self.give == "dir":
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        if self.give == "pipe":
            r, w = os.pipe()
            os.close(w)
            return r
        if self.give == "readonly":
            return os.open(self._p(path), os.O_RDONLY)
        return None

    def _answer(self, path, flags, fd):
        decoy = self._decoy(path, flags)
        if decoy is None:
            return fusehost.Passthrough(fd)
        self.decoys[fd] = decoy
        return fusehost.Passthrough(decoy, fh=fd)

    def open(self, path, flags):
        fd = os.open(self._p(path), flags & ~(os.O_CREAT | os.O_EXCL))
        return self._answer(path, flags, fd)

    def create(self, path, mode, flags):
        fd = os.open(self._p(path), flags | os.O_CREAT, mode)
        return self._answer(path, flags, fd)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._p(path), length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)

    def release(self, path, fh):
        os.close(fh)
        decoy = self.decoys.pop(fh, None)
        if decoy is not None:
            os.close(decoy)


def _tag_for_another_open():
    """Makes every descriptor go out tagged for an open it is not for."""
    send = _passthrough.DescriptorSender.send

    def shifted(self, mount_id, tag, fd):
        return send(self, mount_id, tag + 1000, fd)
    _passthrough.DescriptorSender.send = shifted


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("mount")
    p.add_argument("--give", default="right",
                   choices=["right", "dir", "pipe", "readonly", "wrong-tag"])
    p.add_argument("-o", dest="options", default="")
    args = p.parse_args()
    if args.give == "wrong-tag":
        _tag_for_another_open()
    options = fusehost.parse_options(args.options)
    fusehost.FUSE(PassthroughFs(args.root, args.give), args.mount,
                  foreground=True, **options)


if __name__ == "__main__":
    main()
