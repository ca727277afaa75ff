"""Operations.unsupported_xattr_prefixes reaches the daemon in
InitReply.unsupported_xattr_prefixes (the daemon then answers those names
EOPNOTSUPP itself); a malformed value fails when serving starts, not at
every mount.

Through the servicer, as the daemon calls it (nothing is mounted). Needs
`bazel build //...`; runs as any user.
"""

import pytest

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class _Plain(fusehost.Operations):
    use_ns = True

    def getattr(self, path, fh=None):
        return {"st_mode": 0o40755, "st_nlink": 2}


class _NoLabels(_Plain):
    unsupported_xattr_prefixes = ("security.selinux", b"security.SMACK64")


def _init_reply(fs):
    servicer = _server.make_backend(fs, options=_server.backend_options({}))
    try:
        return servicer.Init(pb.InitRequest(mount_id=1), None)
    finally:
        servicer.shutdown()


def test_prefixes_are_declared_at_init():
    reply = _init_reply(_NoLabels())
    assert list(reply.unsupported_xattr_prefixes) == [
        b"security.selinux", b"security.SMACK64"]


def test_by_default_every_name_is_the_filesystem_s_to_answer():
    assert list(_init_reply(_Plain()).unsupported_xattr_prefixes) == []


class _Tagged(_Plain):
    def getxattr(self, path, name, position=0):
        return b""


class _OnlyListed(_Plain):
    def listxattr(self, path):
        return []


def test_a_filesystem_without_xattr_methods_says_it_keeps_none():
    """As libfuse leaves those callbacks unset: the daemon then answers
    ENOSYS, and the kernel stops asking."""
    assert _init_reply(_Plain()).no_xattrs
    assert _init_reply(_NoLabels()).no_xattrs
    assert not _init_reply(_Tagged()).no_xattrs
    assert not _init_reply(_OnlyListed()).no_xattrs


@pytest.mark.parametrize("bad", ["security.selinux", ("",), ("a\0b",),
                                 ("x" * 256,), (7,),
                                 tuple("p%d." % i for i in range(17))])
def test_malformed_prefixes_fail_when_serving_starts(bad):
    class Bad(_Plain):
        unsupported_xattr_prefixes = bad
    with pytest.raises((TypeError, ValueError)):
        _server.make_backend(Bad(), options=_server.backend_options({}))
