#!/usr/bin/python3
"""fuse-hostd next to other ways of serving a directory through FUSE.

Runs the same workloads, in one run, over one source tree on a tmpfs that this
script mounts, through:

  tmpfs    the tree itself, no FUSE (the floor)
  pll      libfuse's passthrough_ll example, -o cache=always (low-level API)
  pt       libfuse's passthrough example (high-level API, its defaults)
  fusepy   bench/fusepy_loopback.py (python3-fusepy, libfuse 2)
  fusepyhostd  the same file with only its import changed to fusehost's,
           mounting itself through a fuse-hostd of its own
  fusepywbhostd  the same port run with FUSE_HOSTD_MOUNT_OPTIONS=
           write_behind,default_permissions
  sshfs    sshfs to an sshd this script starts on 127.0.0.1
  hostd    fuse-hostd + examples/loopback's loopback_fs on a Unix socket
  shostd   the same with the mount option session (one Session stream per
           connection instead of an Execute call per message)
  uhostd   the same with the mount option uring (FUSE over io_uring)
  wbhostd  the same with the mount option write_behind
  kept     the same with fuse-hostd under its keeper (--supervise)
  pyhostd  fuse-hostd + examples/python/loopback.py (the Python SDK) on a
           Unix socket
  nodehostd  fuse-hostd + examples/node/loopback.js (the Node.js SDK) on a
           Unix socket

and prints a markdown table of medians with ratios and PASS/MISS against the
targets of the benchmark issue. See bench/README.md for what each workload
does, in which cache state, and what the numbers do and do not say.

Run as root on a machine with /dev/fuse:  bench/run.py [--quick] [--runs N]
Everything it starts (tmpfs, mounts, daemons, sshd, relays) is torn down at
the end, on errors and on Ctrl-C.

This file is the command line; the rest is in modules beside it:
  common.py     paths, logging, commands, /proc, teardown of all (RES)
  build.py      the binaries: libfuse's examples, fuse-hostd (bazel -c opt)
  systems.py    each system compared: set up, mount, unmount, memory
  workloads.py  the tree and the commands of one run
  harness.py    the Bench: runs, timing against the cap, samples
  report.py     the Markdown report: medians, ratios, targets, memory
"""

import argparse
import json
import atexit
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time

from build import EXAMPLES
from common import PY, REPO, RES, T0, log, run
from harness import Bench
from report import report
from systems import SYSTEMS
from workloads import GROUPS, WORKLOADS


def parse_list(text, allowed, groups=None):
    out = []
    for item in text.split(','):
        item = item.strip()
        if not item:
            continue
        if groups and item in groups:
            out += groups[item]
        elif item in allowed:
            out.append(item)
        else:
            raise argparse.ArgumentTypeError(
                '%r: choose from %s' % (item, ', '.join(
                    list(allowed) + sorted(groups or {}))))
    return out


def preflight(args):
    if os.geteuid() != 0:
        sys.exit('run.py: must run as root (mounts, drop_caches, sshd)')
    if not os.path.exists('/dev/fuse'):
        sys.exit('run.py: /dev/fuse is missing: run scripts/setup.sh')
    need = {'gcc': 'gcc', 'pkg-config': 'pkg-config', 'sshfs': 'sshfs',
            '/usr/sbin/sshd': 'openssh-server', 'ssh': 'openssh-client',
            'fusermount3': 'fuse3'}
    missing = [pkg for cmd, pkg in need.items() if shutil.which(cmd) is None]
    if not os.path.exists(os.path.join(EXAMPLES, 'passthrough_ll.c')):
        missing.append('libfuse3-dev')
    if run([PY, '-c', 'import fusepy'], check=False).returncode != 0:
        missing.append('python3-fusepy')
    if missing:
        print('run.py: missing %s; installing with scripts/setup.sh' %
              ', '.join(missing), file=sys.stderr)
        subprocess.run([os.path.join(REPO, 'scripts', 'setup.sh')], check=True)


def main():
    ap = argparse.ArgumentParser(
        description='Benchmark fuse-hostd against tmpfs, libfuse examples, '
        'fusepy and sshfs on one tmpfs tree.')
    ap.add_argument('--runs', type=int, default=3, help='runs per workload (3)')
    ap.add_argument('--quick', action='store_true',
                    help='small tree (2,000 files, 64 MiB read, 32 MiB write, '
                    '500-file tarball) for a smoke check')
    ap.add_argument('--only', default=','.join(SYSTEMS),
                    type=lambda t: parse_list(t, SYSTEMS),
                    help='systems, comma-separated: ' + ','.join(SYSTEMS))
    ap.add_argument('--workloads', default=','.join(WORKLOADS),
                    type=lambda t: parse_list(t, WORKLOADS, GROUPS),
                    help='workloads or groups, comma-separated: ' +
                    ','.join(WORKLOADS + sorted(GROUPS)))
    ap.add_argument('--files', type=int, default=None,
                    help='files in the tree, 200 to a directory (100 '
                    'directories at least; 20 with --quick); default 20000 '
                    '(2000 with --quick)')
    ap.add_argument('--out', help='also write the report (markdown) here')
    ap.add_argument('--cap', type=float, default=None,
                    help='seconds one command may take before it is recorded '
                    'as >cap (120; 60 with --quick)')
    ap.add_argument('--relay-rtt-ms', default='1',
                    help='latency the relay adds per round trip, in ms (1: '
                    '0.5 ms each way); several, comma-separated (1,10), give '
                    'the relay rows once per latency')
    ap.add_argument('--relay-files', type=int, default=None,
                    help='find only this many files (whole directories) in the '
                    'relay rows (default: the whole tree)')
    ap.add_argument('--relay-tls', choices=('on', 'off'), default='on',
                    help="fuse-hostd's relay rows over mutual TLS (default; "
                    'certificates made with openssl in the work directory) '
                    'or plain TCP (the mount option insecure)')
    ap.add_argument('--hostd-opts', default='',
                    help='-o options for fuse-hostctl mount (default: none)')
    ap.add_argument('--hostd-bin-dir',
                    help='take fuse-hostd, fuse-hostctl, loopback_fs and the '
                    'fusehost package from DIR (flat, or a bazel-bin tree) '
                    'instead of building them')
    ap.add_argument('--hostd-source', choices=('worktree', 'head'),
                    default='worktree',
                    help='build fuse-hostd from the work tree as it is (default) '
                    'or from the committed HEAD (git archive)')
    ap.add_argument('--roundtrip-calls', type=int, default=5000,
                    help='calls per round-trip probe (the backend round trip '
                    'without kernel or daemon, bench/roundtrip.py); 0: none')
    ap.add_argument('--bazel-output-base', default='/root/.cache/fhbench/bazel',
                    help='private bazel output base for the -c opt build')
    ap.add_argument('--workdir', default='/tmp/fhbench')
    args = ap.parse_args()
    if args.cap is None:
        args.cap = 60.0 if args.quick else 120.0
    if args.runs < 1:
        ap.error('--runs must be at least 1')
    args.workdir = os.path.abspath(args.workdir)
    cmdline = ' '.join(shlex.quote(x) for x in [sys.executable] + sys.argv)

    preflight(args)
    # passthrough_ll keeps an fd open per known inode (20,000+ here); every
    # server started below inherits this limit.
    # Raising the hard limit needs CAP_SYS_RESOURCE, which some containers
    # drop: then the tree is cut to fit (and the report says so).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20
    try:
        with open('/proc/sys/fs/nr_open') as f:
            want = min(want, int(f.read()))
    except (OSError, ValueError):
        pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(RES.close)

    b = Bench(args)
    failed = False
    try:
        b.main()
    except KeyboardInterrupt:
        print('run.py: interrupted; cleaning up', file=sys.stderr)
        RES.close()
        sys.exit(130)
    except Exception as e:
        failed = True
        print('run.py: %s' % e, file=sys.stderr)
        print('run.py: logs in %s' % os.path.join(args.workdir, 'run'),
              file=sys.stderr)
    finally:
        RES.close()
    if not b.results:
        sys.exit(1)
    # The samples first: a report that fails must not cost the runs.
    samples = os.path.join(args.workdir, 'samples.json')
    with open(samples, 'w') as f:
        json.dump({'%s %s' % k: v for k, v in b.results.items()}, f, indent=1)
    log('samples written to ' + samples)
    text = report(b, cmdline)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
        log('report written to ' + args.out)
    log('done in %.0f s' % (time.monotonic() - T0))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
