"""The Node.js SDK (client/node) on real mounts: filesystems in the shape of
fuse-native's README example and its tests, and fusehost's additions, in
tests/integration/node/*.test.js, run with Node's test runner against the
session's daemon. Each Node test is reported as one pytest test."""

import os
import re
import signal
import subprocess

import pytest

import fhlib
from conftest import NATIVE
from fhlib import TOOL_ENV, run_cmd
from nodefhlib import node_binary

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
SCRIPT = os.path.join(HERE, "fuse_native_shapes.test.js")


def _node_test_names():
    """The names of the tests in the script, as `test('NAME', ...)`."""
    with open(SCRIPT, encoding="utf-8") as f:
        return re.findall(r"^test\('((?:[^'\\]|\\.)*)'", f.read(), re.M)


NAMES = _node_test_names()


@pytest.fixture(scope="module")
def node_run(request, daemon, session_tmp):
    """Runs the script once (TAP output), as root, with mountpoints in a
    directory of its own; yields {name: (ok, details)} and the output."""
    if NATIVE:
        pytest.skip("the Node SDK needs the daemon")
    base = os.path.join(session_tmp, "node-sdk")
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    env = dict(TOOL_ENV)
    env["FUSE_HOSTD_CONTROL_SOCKET"] = daemon.sock
    env["MOUNT_BASE"] = base
    r = run_cmd([node_binary(), "--test", "--test-reporter=tap", SCRIPT],
                timeout=600, env=env)
    out = r.stdout + r.stderr
    results = {}
    for m in re.finditer(r"^(ok|not ok) \d+ - (.*)$", out, re.M):
        results[m.group(2).strip()] = m.group(1) == "ok"
    yield results, out
    for _, mp, fstype, _ in fhlib.proc_mounts():
        if mp.startswith(base + "/") and fstype.startswith("fuse"):
            daemon.unmount(mp, lazy=True, timeout=10)


@pytest.mark.parametrize("name", NAMES)
def test_fuse_native_shaped_filesystem(node_run, name):
    results, out = node_run
    assert name in results, "the test did not run:\n%s" % out[-4000:]
    if not results[name]:
        # The failing test's TAP block.
        start = out.find("- " + name)
        pytest.fail(out[max(start - 10, 0):start + 3000], pytrace=False)


def test_every_node_test_was_found():
    assert len(NAMES) >= 10, NAMES


def test_sigterm_unmounts_before_the_process_ends(node_mounts):
    """A Node filesystem told to stop (SIGTERM, with no handler of its own)
    unmounts first: no mount outlives the process serving it, nor the
    directory of the socket the daemon reached it on."""
    runtime = node_mounts.mkdir("runtime")
    m = node_mounts.mount("memory", env={"XDG_RUNTIME_DIR": runtime})
    made = os.listdir(runtime)
    assert len(made) == 1 and made[0].startswith("fusehost-"), made
    private = os.path.join(runtime, made[0])
    assert os.stat(private).st_mode & 0o777 == 0o700
    assert os.listdir(private) == ["backend.sock"]
    proc = m.backend.proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the Node process did not end within 20 s of SIGTERM:\n%s"
                    % fhlib.tail(m.backend.log))
    assert proc.returncode == -signal.SIGTERM, proc.returncode
    assert not fhlib.is_mounted(m.path), "the mount outlived its process"
    assert os.listdir(runtime) == [], "the socket's directory was left"
