"""Puts the fusehost package that `bazel build //...` assembles
(<repo>/bazel-bin/client/python, or $FUSE_HOSTD_BIN_DIR/client/python) on
the import path of every test here, and fails at once when it is not
built."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("FUSE_HOSTD_BIN_DIR", os.path.join(REPO, "bazel-bin"))
PACKAGE = os.path.join(BIN, "client", "python")

if not os.path.isfile(os.path.join(PACKAGE, "fusehost", "filesystem_pb2.py")):
    pytest.fail("the fusehost package is not built (run `bazel build //...`)",
                pytrace=False)
if PACKAGE not in sys.path:
    sys.path.insert(0, PACKAGE)
