"""The backend round trip itself, without the kernel or the daemon: the
`roundtrip` probe (bench/roundtrip/roundtrip.cc) sends one message at a
time straight to each SDK's loopback, served on a Unix socket of its own
over a small directory, and reports p50, p90 and p99 of

  - a getattr of "/" (the smallest op there is): with gRPC's callback API,
    a call per message, as the daemon sends it by default; on one Session
    stream, as it sends with the mount option session to a backend that
    serves one (the C++ SDK, and the Python SDK on its own server); and with
    a blocking call for comparison;
  - a 1 MiB read of an open file (what a backend without passthrough pays
    per read request).

The C++ SDK is examples/loopback's loopback_fs, the Python SDK
examples/python/loopback.py, the Node.js SDK examples/node/loopback.js
(when nodehostd runs): the same backends as the fuse-hostd columns.
The Python one is measured twice: on gRPC's C++ server (the SDK's own) and
on grpcio's (FUSEHOST_NATIVE_SERVER=0), for comparison.
"""

import os
import re

from common import PY, REPO, RES, log, run, wait_for

READ_BYTES = 1 << 20
# (label, probe arguments)
PROBES = [
    ('getattr, Session stream', ['--op=getattr', '--api=stream']),
    ('getattr, callback API', ['--op=getattr', '--api=callback']),
    ('getattr, blocking call', ['--op=getattr', '--api=sync']),
    ('read of 1 MiB, callback API', ['--op=read', '--path=/big.bin',
                                     '--size=%d' % READ_BYTES, '--api=callback']),
]
LINE = re.compile(r'p50=([\d.]+)us p90=([\d.]+)us p99=([\d.]+)us')


def measure(b, calls):
    """Runs every probe against each SDK's loopback; sets b.roundtrip to
    [(sdk, probe label, (p50, p90, p99) in µs or None)]."""
    b.roundtrip = []
    probe = b.bin('roundtrip')
    if not os.path.exists(probe):
        b.notes.append('round trip: no roundtrip binary (built with '
                       'fuse-hostd), not measured')
        return
    src = os.path.join(b.work, 'roundtrip-src')
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, 'big.bin'), 'wb') as f:
        f.write(os.urandom(READ_BYTES))
    # (label, command, its listen arguments, environment, serves Session)
    sdks = [('C++ (loopback_fs)', [b.bin('loopback_fs'), '--root=' + src],
             lambda sock: ['--listen=unix:' + sock], None, True)]
    if getattr(b, 'py_package', None):
        env = dict(os.environ, PYTHONPATH=b.py_package, PYTHONUNBUFFERED='1')
        env.pop('PYTHONHOME', None)
        cmd = [PY, os.path.join(b.py_examples, 'loopback.py'), src]
        sdks.append(('Python (loopback.py)', cmd,
                     lambda sock: ['--listen', 'unix:' + sock], env, True))
        # The same on grpcio's own server, which the SDK used before it
        # served on gRPC's C++ server (client/python/native).
        sdks.append(('Python, grpcio\'s server', cmd,
                     lambda sock: ['--listen', 'unix:' + sock],
                     dict(env, FUSEHOST_NATIVE_SERVER='0'), False))
    if 'nodehostd' in b.args.only:
        # grpc-js's server; the SDK serves no Session stream.
        sdks.append(('Node.js (loopback.js)',
                     ['node', os.path.join(REPO, 'examples', 'node',
                                           'loopback.js'), src],
                     lambda sock: ['--listen', 'unix:' + sock], None, False))
    for n, (sdk, cmd, listen, env, session) in enumerate(sdks):
        sock = os.path.join(b.work, 'run', 'roundtrip%d.sock' % n)
        if os.path.exists(sock):
            os.unlink(sock)
        log('round trip: %s' % sdk)
        proc = RES.spawn(cmd + listen(sock), b.logpath('roundtrip-backend%d' % n),
                         env=env, cwd='/')
        try:
            wait_for(lambda: os.path.exists(sock), 20, sdk + ' socket', proc)
            for label, extra in PROBES:
                if '--api=stream' in extra and not session:
                    continue  # grpcio's server does not serve Session
                n_calls = calls if '--op=getattr' in extra else max(
                    100, calls // 10)
                r = run([probe, '--target=unix:' + sock,
                         '--calls=%d' % n_calls] + extra, check=False)
                found = LINE.search(r.stdout.decode())
                if r.returncode != 0 or not found:
                    b.notes.append('round trip: %s, %s failed: %s' % (
                        sdk, label, (r.stdout + r.stderr).decode().strip()[-300:]))
                    b.roundtrip.append((sdk, label, None))
                    continue
                b.roundtrip.append((sdk, label,
                                    tuple(float(x) for x in found.groups())))
        finally:
            RES.stop(proc)
