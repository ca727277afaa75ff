"""Whether an operation provably does nothing, so that the daemon may be
told to skip it.

A filesystem's flush is called on every close(2), a round trip each
through fuse-hostd where mfusepy pays a function call. Filesystems that
write nothing back at close define it as `return 0` (or `pass`). When the method's own code is nothing but returning 0 or None, the
SDK answers opens with `noflush`, and the kernel sends no FLUSH at all.

The check reads the bytecode, not the source: only a plain function whose
instructions are a constant load and a return counts (a docstring is not
an instruction). A decorator's wrapper, a generator, or anything else is
taken to do something.
"""

import dis
import inspect

# Instructions that do nothing at run time (3.11's RESUME and CACHE, NOP).
_NO_OPS = {"RESUME", "CACHE", "NOP"}
_NOTHING = (0, None)


def does_nothing(method):
    """True if `method` (a function or a bound method) only returns 0 or
    None."""
    fn = getattr(method, "__func__", method)
    if not inspect.isfunction(fn):
        return False
    code = fn.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE |
                        inspect.CO_ASYNC_GENERATOR):
        return False
    steps = [i for i in dis.get_instructions(code) if i.opname not in _NO_OPS]
    if len(steps) == 1:  # 3.12's RETURN_CONST
        return steps[0].opname == "RETURN_CONST" and _is_nothing(
            steps[0].argval)
    return (len(steps) == 2 and steps[0].opname == "LOAD_CONST" and
            _is_nothing(steps[0].argval) and
            steps[1].opname == "RETURN_VALUE")


def _is_nothing(value):
    # `0 is 0` style identity would miss False; equality would take 0.0.
    return value is None or (type(value) is int and value == 0)
