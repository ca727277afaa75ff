"""The Python SDK's backend instance (InitReply.instance in
proto/filesystem.proto): picked at random per served backend, sent in every
InitReply and BatchResult. What ops with handles of other instances answer
is in the conformance cases (tests/conformance/cases/instances.textproto).

Needs `bazel build //...`, as test_conformance.py; runs as any user.
"""

import fusehost  # the package, on the path by conftest.py
from fusehost import _server
from fusehost._proto import pb


class _Root(fusehost.Operations):
    use_ns = True

    def getattr(self, path, fh=None):
        return {"st_mode": 0o40755, "st_nlink": 2}


def _backend(**kwargs):
    return _server.make_backend(_Root(), options=_server.backend_options({}),
                                **kwargs)


def test_every_reply_carries_the_instance():
    servicer = _backend()
    try:
        instance = servicer.dispatcher.instance
        assert instance != 0
        init = servicer.Init(pb.InitRequest(mount_id=3), None)
        assert init.instance == instance
        empty = servicer.Execute(pb.Batch(mount_id=3), None)
        assert empty.instance == instance
        batch = pb.Batch(mount_id=3)
        batch.ops.add(id=1).getattr.path = b"/"
        assert servicer.Execute(batch, None).instance == instance
    finally:
        servicer.shutdown()


def test_each_backend_picks_its_own_instance():
    # Two servicers of one object stand for a backend served, stopped and
    # served again: the second must not take the first one's handles.
    first, second = _backend(), _backend()
    fixed = _backend(instance=77)
    try:
        assert first.dispatcher.instance != second.dispatcher.instance
        assert fixed.dispatcher.instance == 77
        assert fixed.Init(pb.InitRequest(mount_id=1), None).instance == 77
    finally:
        for servicer in (first, second, fixed):
            servicer.shutdown()
