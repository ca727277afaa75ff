"""The Python SDK's side of passthrough (fusehost.Passthrough): the
descriptor open returns goes to the daemon's socket, tagged with the open's
passthrough_tag, before the reply, which says so; without a socket, or
without the class asking for it, the reply is the plain handle; a loopback
hands over its root directory with Init.

Needs `bazel build //...`, as test_conformance.py; runs as any user.
"""

import os
import socket
import struct
import tempfile

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class _Files(fusehost.Operations):
    passthrough = True
    use_ns = True

    def __init__(self, fd):
        self.fd = fd

    def getattr(self, path, fh=None):
        return {"st_mode": 0o100644, "st_nlink": 1}

    def open(self, path, flags):
        return fusehost.Passthrough(self.fd, fh=77)


def _open(servicer, tag):
    batch = pb.Batch(mount_id=3)
    op = batch.ops.add(id=1)
    op.open.path = b"/f"
    op.open.passthrough_tag = tag
    return servicer.Execute(batch, None).results[0]


def test_the_descriptor_goes_to_the_daemon_before_the_reply():
    with tempfile.TemporaryDirectory() as d, open(__file__, "rb") as f:
        path = os.path.join(d, "inbox.sock")
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        inbox.bind(path)
        inbox.listen(1)
        servicer = _server.make_backend(
            _Files(f.fileno()), options=_server.backend_options({}))
        try:
            init = servicer.Init(pb.InitRequest(
                mount_id=3, passthrough_socket=path), None)
            assert init.passthrough
            conn, _ = inbox.accept()
            result = _open(servicer, 42)
            assert result.posix_errno == 0
            assert result.open.fh == 77 and result.open.passthrough
            msg, fds, _, _ = socket.recv_fds(conn, 64, 4)
            assert struct.unpack("<Q", msg) == (42,) and len(fds) == 1
            same = os.fstat(fds[0]).st_ino == os.fstat(f.fileno()).st_ino
            os.close(fds[0])
            assert same
            # No tag: the daemon would not take one; nothing is sent.
            result = _open(servicer, 0)
            assert result.open.fh == 77 and not result.open.passthrough
            conn.close()
        finally:
            servicer.shutdown()
            inbox.close()


def test_without_a_socket_the_handle_is_all_that_goes():
    with open(__file__, "rb") as f:
        servicer = _server.make_backend(
            _Files(f.fileno()), options=_server.backend_options({}))
        try:
            assert not servicer.Init(pb.InitRequest(mount_id=3), None) \
                .passthrough
            result = _open(servicer, 42)
            assert result.open.fh == 77 and not result.open.passthrough
        finally:
            servicer.shutdown()


class _Loopback(_Files):
    def __init__(self, fd, root, as_caller):
        super().__init__(fd)
        self.passthrough_root = root
        self.passthrough_root_as_caller = as_caller


def test_a_loopback_hands_over_its_root_directory_with_init():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "inbox.sock")
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        inbox.bind(path)
        inbox.listen(2)
        root = os.open(d, os.O_PATH | os.O_DIRECTORY)
        servicer = _server.make_backend(
            _Loopback(root, root, True), options=_server.backend_options({}))
        try:
            init = servicer.Init(pb.InitRequest(
                mount_id=3, passthrough_socket=path,
                root_directory_tag=1 << 63), None)
            assert init.passthrough and init.root_directory
            assert init.root_opens_as_caller
            conn, _ = inbox.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 64, 4)
            assert struct.unpack("<Q", msg) == (1 << 63,) and len(fds) == 1
            same = os.path.samestat(os.fstat(fds[0]), os.stat(d))
            os.close(fds[0])
            assert same
            conn.close()
            # A daemon that offers no tag gets no directory.
            init = servicer.Init(pb.InitRequest(
                mount_id=4, passthrough_socket=path), None)
            assert init.passthrough and not init.root_directory
            assert not init.root_opens_as_caller
        finally:
            servicer.shutdown()
            inbox.close()
            os.close(root)
