"""The short form of bench/faults.py: one fault of each kind that must cost
programs nothing, under its find, cat and writer loops, against the C++ and
the Python loopback. The script's own verdict is the check: a daemon killed
or handed over fails no system call, a backend killed or a connection cut
fails no read, and every byte read or written back is what it must be. (The long form, with
more faults and the figures, is `bench/faults.py --faults 5`.)"""

import os
import subprocess

import pytest

import fhlib

pytestmark = pytest.mark.usefixtures("needs_daemon")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.mark.parametrize("sdk", ["cpp", "python"])
@pytest.mark.parametrize("fault", ["daemon-kill", "daemon-upgrade",
                                   "backend-kill", "connection-cut"])
def test_fault_under_load(bins, fault, sdk):
    res = subprocess.run(
        [fhlib.SYS_PYTHON, os.path.join(REPO, "bench", "faults.py"),
         "--faults", "1", "--interval", "1", "--fault", fault, "--sdk", sdk,
         "--bin-dir", bins.dir],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.rstrip().endswith("PASS"), (
        res.stdout + res.stderr)
