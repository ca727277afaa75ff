"""Keeps the buffers of read and write payloads in the malloc heap, as the
daemon and the C++ SDK do (common/payload_heap.h has the why): glibc gives
each block of a MiB a fresh mmap and hands freed heap tops back to the
kernel, so every read's data, its message and its wire form cost a page
fault per 4 KiB. Measured one message at a time, a 1 MiB read from this SDK
took 17 ms; with these settings 3 ms.

Process-wide: called when serving starts. Leaves malloc alone when
GLIBC_TUNABLES is set (the environment chose) or the C library has no
mallopt."""

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Above any payload with its framing; glibc allows up to 32 MiB.
_MMAP_THRESHOLD = 32 << 20
# Free memory at the top of a heap beyond this goes back to the kernel: room
# for the copies of the payloads in flight. With the kernel's writeback cache
# (mount option writeback_cache) a dozen 1 MiB writes arrive at once; with
# 8 MiB here a 256 MiB write took 1.3-2.2 s through the fusepy port instead
# of 0.6-0.9 s, faulting its pages in again.
_TRIM_THRESHOLD = 32 << 20


def keep_payloads_in_heap():
    if "GLIBC_TUNABLES" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
