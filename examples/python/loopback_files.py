"""loopback.py's operations on open files: open and create, reading and
writing, flush, release and fsync, fallocate, copy_file_range and lseek.
Each open file is a host descriptor in the handle table.

Mixed into loopback.Loopback, which provides what these methods use."""

import errno
import os
import stat

import fusehost as fuse
from loopback_credentials import as_caller
from loopback_libc import check, libc


class FileOperations:
    # O_NOFOLLOW: the kernel resolved symlinks before asking, so one here was
    # swapped in on the host. O_DIRECT: FUSE already sends such I/O here.
    _DROP = os.O_CREAT | os.O_EXCL | os.O_DIRECT

    @as_caller
    def open(self, path, flags):
        flags = (flags & ~self._DROP) | os.O_CLOEXEC | os.O_NOFOLLOW
        if not flags & os.O_TRUNC:
            fd = self._at(path, lambda d, n: os.open(n, flags, dir_fd=d))
        else:
            with self._changing(path):
                fd = self._at(path, lambda d, n: os.open(n, flags, dir_fd=d))
                self._clear_set_id_bits(fd)
        return self._answer(path, flags, fd)

    def _answer(self, path, flags, fd):
        """The handle of a new open file: with passthrough, a regular file
        also goes to fuse-hostd, which lets the kernel read and write it."""
        fh = self.handles.add(fd)
        if not self.passthrough or not stat.S_ISREG(os.fstat(fd).st_mode):
            return fh
        if flags & os.O_ACCMODE != os.O_RDONLY:
            scope = self._changing(path)
            scope.__enter__()
            with self.writing_lock:
                self.writing[fh] = scope
        return fuse.Passthrough(fd, fh)

    @as_caller
    def create(self, path, mode, flags):
        # O_EXCL only when asked: the kernel sends create whenever it
        # believes the name absent; a file made on the host meanwhile is
        # then simply opened, as open(O_CREAT) would.
        flags = (flags & ~os.O_DIRECT) | os.O_CREAT | os.O_CLOEXEC | \
            os.O_NOFOLLOW
        with self._changing(path, self._parent(path)):
            fd = self._at(path, lambda d, n: os.open(n, flags, mode & 0o7777,
                                                     dir_fd=d))
            if flags & os.O_TRUNC:  # the name existed after all: emptied
                self._clear_set_id_bits(fd)
        return self._answer(path, flags, fd)

    def read(self, path, size, offset, fh):
        fd = self.handles.fd(fh)
        data = os.pread(fd, size, offset)
        if 0 < len(data) < size:
            # A short read means end of file to the kernel: make sure it is.
            chunks = [data]
            got = len(data)
            while got < size:
                more = os.pread(fd, size - got, offset + got)
                if not more:
                    break
                chunks.append(more)
                got += len(more)
            data = b"".join(chunks)
        return data

    @as_caller
    def write(self, path, data, offset, fh):
        # As the caller: a write by a user without CAP_FSETID clears the
        # file's set-id bits, which a root backend would keep.
        fd = self.handles.fd(fh)
        with self._changing(path):
            done = os.pwrite(fd, data, offset)
            while done < len(data):
                n = os.pwrite(fd, memoryview(data)[done:], offset + done)
                if n <= 0:
                    break
                done += n
            if done:
                self._clear_set_id_bits(fd)
        return done

    def flush(self, path, fh):
        # close(2) of one of the application's descriptors: closing a
        # duplicate reports what close would (e.g. NFS write-back errors).
        os.close(os.dup(self.handles.fd(fh)))
        return 0

    def release(self, path, fh):
        with self.writing_lock:
            writes = self.writing.pop(fh, None)
        self.handles.close(fh)
        if writes is not None:
            writes.__exit__(None, None, None)  # records what they left
        return 0

    def fsync(self, path, datasync, fh):
        fd = self.handles.fd(fh)
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)
        return 0

    @as_caller
    def fallocate(self, path, mode, offset, size, fh):
        fd = self.handles.fd(fh)
        with self._changing(path):
            check(libc.fallocate(fd, mode, offset, size))
            self._clear_set_id_bits(fd)
        return 0

    def copy_file_range(self, path_in, fh_in, offset_in, path_out, fh_out,
                        offset_out, length, flags):
        if flags:
            raise fuse.FuseOSError(errno.EINVAL)
        fd_in, fd_out = self.handles.fd(fh_in), self.handles.fd(fh_out)
        with self._changing(path_out):
            n = os.copy_file_range(fd_in, fd_out, length, offset_in,
                                   offset_out)
            if n:
                self._clear_set_id_bits(fd_out)
        return n

    def lseek(self, path, offset, whence, fh):
        return os.lseek(self.handles.fd(fh), offset, whence)
