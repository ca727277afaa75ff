"""The Python SDK keeps payload-sized buffers in the malloc heap once it
serves (fusehost/_payload_heap.py): a 4 MiB block no longer gets a mapping
of its own. Each check runs in a fresh interpreter, whose malloc has not
yet raised its threshold by itself. Runs as any user."""

import os
import subprocess
import sys

import fusehost  # noqa: F401 (on the path by conftest.py)

_CHECK = r"""
import ctypes, sys
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "keep":
    from fusehost import _payload_heap
    _payload_heap.keep_payloads_in_heap()
before = libc.mallinfo2().hblks
block = bytearray(4 << 20)
print("mapped" if libc.mallinfo2().hblks > before else "heap")
"""


def _where(mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("GLIBC_TUNABLES", None)
    r = subprocess.run([sys.executable, "-c", _CHECK, mode], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_payloads_come_from_the_heap_once_serving():
    assert _where("plain") == "mapped"   # glibc's defaults
    assert _where("keep") == "heap"
