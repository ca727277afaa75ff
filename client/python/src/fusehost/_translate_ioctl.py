"""The translation of ioctl: the protocol's IoctlRequest to mfusepy's
ioctl(path, cmd, arg, fh, flags, data) and back.

mfusepy hands ioctl what libfuse's high-level API hands its callback: `arg`
is the caller's argument as a number (None for 0), and `data` the address
(an int, for ctypes.memmove and friends; None when the command passes
nothing) of a buffer holding what the command passes in, as large as what
it may pass back when that is more. The method returns ioctl(2)'s value
(None counts as 0; a negative value is an errno, as any OSError it
raises); what the buffer holds afterwards, up to the caller's size, goes
back. The handle of a directory is opendir's, or 0 when the daemon never
asked the backend to open the directory (its listing was cached).

Threads: no state of its own; runs concurrently on any thread.
"""

import ctypes
import errno


def ioctl(b, req, result):
    if b.f_ioctl is None:
        return errno.ENOTTY  # what ioctl(2) answers for an unknown command
    in_data, out_size = req.in_data, req.out_size
    size = max(len(in_data), out_size)
    buf = ctypes.create_string_buffer(in_data, size) if size else None
    ret = b.f_ioctl(b.path(req.path), req.cmd, req.arg or None, b.fh(req.fh),
                    req.flags, ctypes.addressof(buf) if buf is not None else None)
    if ret is None:
        ret = 0
    elif ret < 0:
        return -ret
    reply = result.ioctl
    reply.SetInParent()
    reply.result = ret
    if out_size:
        reply.out_data = buf.raw[:out_size]
    return 0


TRANSLATIONS = {"ioctl": ioctl}
