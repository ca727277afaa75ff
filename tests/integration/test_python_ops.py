"""The integration checks of the C++ examples (test_ops_*.py and
test_loopback_equiv.py), run against the Python examples: the memory and
loopback filesystems of examples/python/, each mounting itself with
fusehost.FUSE() through the session's daemon, as root and as a non-root
user.

The test functions are imported from those modules; the fixtures `fs` and
`loopback_fs` below (which take precedence over conftest's in this module)
give them Python mounts instead of C++ ones."""

import pytest

from conftest import USER_KINDS, make_fs
from pyfhlib import py_mounts  # noqa: F401  (fixture)
from test_loopback_equiv import test_loopback_matches_backing_dir  # noqa
from test_ops_concurrency import *  # noqa: F401,F403  (the checks)
from test_ops_files import *  # noqa: F401,F403
from test_ops_metadata import *  # noqa: F401,F403
from test_ops_names import *  # noqa: F401,F403
from test_ops_trees import *  # noqa: F401,F403

KINDS = ("memory", "loopback")


@pytest.fixture(params=[(k, u) for k in KINDS for u in USER_KINDS],
                ids=["py%s-%s" % (k, u) for k in KINDS for u in USER_KINDS])
def fs(request, py_mounts, users):  # noqa: F811
    kind, user_kind = request.param
    return make_fs(kind, user_kind, py_mounts, users)


@pytest.fixture(params=USER_KINDS, ids=["pyloopback-%s" % u
                                        for u in USER_KINDS])
def loopback_fs(request, py_mounts, users):  # noqa: F811
    return make_fs("loopback", request.param, py_mounts, users)


@pytest.fixture(params=KINDS, ids=["py%s" % k for k in KINDS])
def root_fs(request, py_mounts, users):  # noqa: F811
    return make_fs(request.param, "root", py_mounts, users)
