"""Passthrough: a filesystem whose files are local files may answer open and
create with `Passthrough(fd)`, the descriptor of the file it opened. The SDK
hands fuse-hostd a copy over the Unix socket the daemon named in
InitRequest.passthrough_socket (one socket per mount), tagged with the
open's passthrough_tag and sent before the open's reply, and the kernel then
reads, writes and maps that file itself: read and write are not called for
the open, unless the daemon could not use the descriptor (it must be a
regular file opened with the access mode of the open).

The filesystem keeps owning the descriptor: the handle its read, write,
flush and release get is `Passthrough.fh` (the descriptor itself unless
given), and it closes the descriptor in release as usual.

Sends never block: a full or broken socket means the open is forwarded.

Threads: DescriptorSender is safe to use from any thread.
"""

import socket
import struct
import threading


class Passthrough:
    """What open/create may return (or, with raw_fi, set as fi.fh): `fd`
    is the opened file's descriptor, `fh` the handle later calls get (the
    descriptor unless given)."""

    __slots__ = ("fd", "fh")

    def __init__(self, fd, fh=None):
        if type(fd) is not int or fd < 0:
            raise ValueError("Passthrough needs a file descriptor")
        self.fd = fd
        self.fh = fd if fh is None else fh

    def __repr__(self):
        return "Passthrough(fd=%d, fh=%r)" % (self.fd, self.fh)


class DescriptorSender:
    """The backend's end of each mount's descriptor socket."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets = {}

    def connect(self, mount_id, path):
        """Connects mount `mount_id` to the daemon's socket; False if it
        cannot."""
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.connect(path)
        except OSError:
            return False
        with self._lock:
            old = self._sockets.pop(mount_id, None)
            self._sockets[mount_id] = sock
        if old is not None:
            old.close()
        return True

    def send(self, mount_id, tag, fd):
        """Sends `fd` for the open tagged `tag`; True once the daemon has
        it queued."""
        if not tag:
            return False
        with self._lock:
            sock = self._sockets.get(mount_id)
            if sock is None:
                return False
            try:
                sent = socket.send_fds(sock, [struct.pack("<Q", tag)], [fd],
                                       socket.MSG_DONTWAIT)
            except OSError:
                return False
        return sent == 8

    def forget(self, mount_id):
        with self._lock:
            sock = self._sockets.pop(mount_id, None)
        if sock is not None:
            sock.close()

    def close(self):
        with self._lock:
            sockets = list(self._sockets.values())
            self._sockets.clear()
        for sock in sockets:
            sock.close()
