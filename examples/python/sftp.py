#!/usr/bin/python3
"""A remote directory over SFTP (paramiko), mounted through fuse-hostd.

Every operation becomes SFTP requests on one SSH connection, made as the SSH
user: the remote server decides permissions, and the files' owners are the
remote ones. paramiko's SFTP client does not take concurrent requests, so
operations run one at a time (mfusepy's nothreads=True). Directory listings come with attributes (SFTP's READDIR has
them), so `ls -l` costs one request per directory. SFTP (version 3) has no
hard links, special files, extended attributes or sub-second times.

Build the package once (`bazel build //...`), then, as root with fuse-hostd
running:

  PYTHONPATH=bazel-bin/client/python /usr/bin/python3 \\
      examples/python/sftp.py alice@server:/srv/share /mnt/share \\
      -i ~/.ssh/id_ed25519 -o allow_other

The host key must be known (~/.ssh/known_hosts, or --known-hosts FILE).
"""

import errno
import logging
import os
import stat

import paramiko

import example_cli
import fusehost as fuse

log = logging.getLogger("sftp")


def _remote_errors(method):
    """paramiko reports most SFTP failures as IOError without an errno
    (SSH_FX_FAILURE): those become EIO instead of mfusepy's EINVAL."""

    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            if e.errno is None:
                raise fuse.FuseOSError(errno.EIO) from e
            raise
        except EOFError as e:  # the connection went away
            raise fuse.FuseOSError(errno.ENOTCONN) from e

    run.__name__ = method.__name__
    run.__wrapped__ = method
    return run


class SFTP(fuse.Operations):
    use_ns = True

    def __init__(self, host, path, port=22, username=None, key_filename=None,
                 known_hosts=None):
        self.client = paramiko.SSHClient()
        if known_hosts:
            self.client.load_host_keys(known_hosts)
        else:
            self.client.load_system_host_keys()
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(host, port=port, username=username,
                            key_filename=key_filename, look_for_keys=False,
                            allow_agent=False, timeout=30)
        self.sftp = self.client.open_sftp()
        self.root = self.sftp.normalize(path or ".").rstrip("/")
        self.files = {}  # fh -> paramiko SFTPFile
        self.next_fh = 1

    def _remote(self, path):
        return self.root + path if path != "/" else (self.root or "/")

    @staticmethod
    def _attrs(a):
        ns = 1000000000
        return {"st_mode": a.st_mode, "st_size": a.st_size or 0,
                "st_uid": a.st_uid or 0, "st_gid": a.st_gid or 0,
                "st_nlink": 2 if stat.S_ISDIR(a.st_mode or 0) else 1,
                "st_atime": (a.st_atime or 0) * ns,
                "st_mtime": (a.st_mtime or 0) * ns,
                "st_ctime": (a.st_mtime or 0) * ns,
                "st_blocks": ((a.st_size or 0) + 511) // 512}

    def _file(self, fh):
        try:
            return self.files[fh]
        except KeyError:
            raise fuse.FuseOSError(errno.EBADF) from None

    def destroy(self, path):
        self.sftp.close()
        self.client.close()

    @_remote_errors
    def getattr(self, path, fh=None):
        return self._attrs(self.sftp.lstat(self._remote(path)))

    @_remote_errors
    def readdir(self, path, fh):
        # One READDIR stream, names with attributes: the daemon caches them.
        return [(a.filename, self._attrs(a), 0)
                for a in self.sftp.listdir_attr(self._remote(path))]

    @_remote_errors
    def readlink(self, path):
        return self.sftp.readlink(self._remote(path))

    @_remote_errors
    def mkdir(self, path, mode):
        self.sftp.mkdir(self._remote(path), mode)
        return 0

    @_remote_errors
    def rmdir(self, path):
        self.sftp.rmdir(self._remote(path))
        return 0

    @_remote_errors
    def unlink(self, path):
        self.sftp.remove(self._remote(path))
        return 0

    @_remote_errors
    def symlink(self, target, source):
        self.sftp.symlink(source, self._remote(target))
        return 0

    @_remote_errors
    def rename(self, old, new):
        # POSIX semantics (replace the target) with OpenSSH's extension.
        self.sftp.posix_rename(self._remote(old), self._remote(new))
        return 0

    @_remote_errors
    def chmod(self, path, mode):
        self.sftp.chmod(self._remote(path), mode & 0o7777)
        return 0

    @_remote_errors
    def chown(self, path, uid, gid):
        remote = self._remote(path)
        if uid == -1 or gid == -1:
            current = self.sftp.lstat(remote)
            uid = current.st_uid if uid == -1 else uid
            gid = current.st_gid if gid == -1 else gid
        self.sftp.chown(remote, uid, gid)
        return 0

    @_remote_errors
    def truncate(self, path, length, fh=None):
        if fh is not None and fh in self.files:
            self.files[fh].truncate(length)
        else:
            self.sftp.truncate(self._remote(path), length)
        return 0

    @_remote_errors
    def utimens(self, path, times=None):
        if times is not None:
            times = (times[0] // 1000000000, times[1] // 1000000000)
        self.sftp.utime(self._remote(path), times)
        return 0

    def _register(self, handle):
        fh = self.next_fh
        self.next_fh += 1
        self.files[fh] = handle
        return fh

    @_remote_errors
    def open(self, path, flags):
        access = flags & os.O_ACCMODE
        if access == os.O_RDONLY:
            mode = "r"
        elif flags & os.O_TRUNC:
            mode = "w+"
        else:
            mode = "r+"
        return self._register(self.sftp.open(self._remote(path), mode))

    @_remote_errors
    def create(self, path, mode, flags):
        remote = self._remote(path)
        handle = self.sftp.open(remote, "x+" if flags & os.O_EXCL else "w+")
        self.sftp.chmod(remote, mode & 0o7777)
        return self._register(handle)

    @_remote_errors
    def read(self, path, size, offset, fh):
        handle = self._file(fh)
        handle.seek(offset)
        return handle.read(size)

    @_remote_errors
    def write(self, path, data, offset, fh):
        handle = self._file(fh)
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        return len(data)

    @_remote_errors
    def release(self, path, fh):
        handle = self.files.pop(fh, None)
        if handle is not None:
            handle.close()
        return 0

    @_remote_errors
    def statfs(self, path):
        # No statvfs in paramiko: report a large empty filesystem rather
        # than nothing, so that `df` and installers work.
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 30,
                "f_bfree": 1 << 30, "f_bavail": 1 << 30, "f_namemax": 255}


def main():
    p = example_cli.parser(__doc__)
    p.add_argument("remote", help="[user@]host:[path]")
    p.add_argument("-p", "--port", type=int, default=22)
    p.add_argument("-i", "--identity", help="private key file")
    p.add_argument("--known-hosts", help="known_hosts file to check the "
                   "server's key against (default ~/.ssh/known_hosts)")
    args = example_cli.parse(p)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    user_host, _, path = args.remote.partition(":")
    user, _, host = user_host.rpartition("@")
    fs = SFTP(host, path, port=args.port, username=user or None,
              key_filename=args.identity, known_hosts=args.known_hosts)
    example_cli.run(args, fs, nothreads=True, fsname=args.remote,
                    subtype="sftp")

if __name__ == "__main__":
    main()
