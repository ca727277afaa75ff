"""What the checks of every filesystem operation (test_ops_*.py) share:
file types, open flag lists, and comparing op results.

Those checks run on both example backends, as root and as a non-root user
(fixture `fs` of conftest.py: memory-root, memory-user, loopback-root,
loopback-user); test_python_ops.py runs them on the Python examples too.
All ops run in fsops_runner.py child processes (see fhlib.Ops); tools run
as the user through setpriv. Paths in op lists are relative to fs.work, a
directory on the mount owned by the user."""

import stat

S_IFREG, S_IFDIR, S_IFLNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK
WR_CREAT_EXCL = ["O_WRONLY", "O_CREAT", "O_EXCL"]
RDWR_CREAT = ["O_RDWR", "O_CREAT"]


def assert_results(results, expected):
    """Compares op results to expectations, showing every mismatch."""
    assert len(results) == len(expected)
    bad = []
    for i, (got, want) in enumerate(zip(results, expected)):
        if callable(want):
            ok = want(got)
        else:
            ok = got == want
        if not ok:
            bad.append((i, got, want))
    assert not bad, "mismatches (index, got, want): %r" % (bad,)


def owned_by(fs, st):
    return st["uid"] == fs.user.uid and st["gid"] == fs.user.gid
