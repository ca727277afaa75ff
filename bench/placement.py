#!/usr/bin/env python3
"""What CPU placement costs a FUSE request, side by side.

A kernel request hands work from the calling thread to a thread of the file
system and back; through fuse-hostd, each backend message hands it to the
backend process and back as well. The scheduler wakes each thread on an idle
CPU where it can, and waking a CPU that sleeps costs far more on a virtual
machine (an exit to the host) than on bare metal. This script runs the same
requests twice, once with every process where the scheduler puts it and once
with the caller, the daemon and the backend (or passthrough_ll) all held on
CPU 0 by their affinity, so that the share of the hand-overs shows:

- chmod of one file, N times (p50 and p90 of one call): a round trip to the
  backend (fuse-hostd) or to the file system (passthrough_ll);
- `ls -lR` of a tree whose inodes the kernel has just made again (find after
  drop_caches): one getxattr request per file for its ACL, answered from the
  daemon's memory;
- `find` after drop_caches: every listing answered from the daemon's memory;
- the context switches of the file system's threads per chmod (daemon and
  backend apart): how many hand-overs one request makes.

fuse-hostd runs twice: as mounted by default, and with the mount option
`uring` (FUSE over io_uring: a queue per CPU, each served by a daemon thread
held on that CPU; the fuse module's enable_uring is set for it and put back
at the end).

Not a test: it prints a table. As root, with /dev/fuse. The binaries are
built as bench/run.py builds them (bazel -c opt in its private output base).

    bench/placement.py [--runs 5] [--calls 3000] [--files 4000] [--out FILE]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from common import RES, drop_caches, is_mounted, log, run, wait_for
import build

CPU0 = {0}


class Setup:
    """What build.py expects of the bench: arguments, a work directory and
    where binaries go."""

    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.build_desc = ''
        os.makedirs(os.path.join(self.work, 'bin'), exist_ok=True)
        os.makedirs(os.path.join(self.work, 'run'), exist_ok=True)

    def bin(self, name):
        return os.path.join(self.work, 'bin', name)

    def logpath(self, name):
        return os.path.join(self.work, 'run', name + '.log')


def pin_process(pid, cpus):
    """Sets the affinity of every thread of `pid` (threads it starts later
    inherit it from the thread that starts them); returns what each had."""
    before = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            before[int(tid)] = os.sched_getaffinity(int(tid))
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, OSError):
            pass  # a thread that just ended
    return before


def unpin(before):
    """Gives threads back the affinity pin_process() found (the daemon's
    io_uring threads hold themselves on their CPUs)."""
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, OSError):
            pass


def switches(pid):
    """Context switches (voluntary and not) of every thread of `pid` so far."""
    total = 0
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                for line in f:
                    if line.startswith(('voluntary_ctxt_switches',
                                        'nonvoluntary_ctxt_switches')):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that just ended
    return total


def timed(cmd, cpus):
    """Seconds `cmd` takes, run with affinity `cpus`."""
    t = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True,
                   preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    return time.monotonic() - t


def chmod_round_trip(path, calls, cpus):
    """(p50, p90) in µs of chmod on `path`, from this process on `cpus`."""
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        with open(path, 'w'):
            pass
        took = []
        for i in range(calls):
            t = time.perf_counter_ns()
            os.chmod(path, 0o600 if i % 2 else 0o644)
            took.append(time.perf_counter_ns() - t)
    finally:
        os.sched_setaffinity(0, mine)
    took.sort()
    return took[len(took) // 2] / 1e3, took[len(took) * 9 // 10] / 1e3


def make_tree(src, files, dirs):
    for d in range(dirs):
        p = os.path.join(src, 'tree', 'd%03d' % d)
        os.makedirs(p)
        for f in range(files // dirs):
            with open(os.path.join(p, 'f%05d' % f), 'wb') as out:
                out.write(b'x' * 1024)


def start_hostd(s, src, mnt, opts=None):
    ctl = os.path.join(s.work, 'run', 'control.sock')
    sock = os.path.join(s.work, 'run', 'backend.sock')
    for p in (ctl, sock):
        if os.path.exists(p):
            os.unlink(p)
    daemon = RES.spawn([s.bin('fuse-hostd'), '--control_socket=' + ctl],
                       s.logpath('fuse-hostd'))
    backend = RES.spawn([s.bin('loopback_fs'), '--listen=unix:' + sock,
                         '--root=' + src], s.logpath('loopback_fs'))
    wait_for(lambda: os.path.exists(ctl), 15, 'fuse-hostd', daemon)
    wait_for(lambda: os.path.exists(sock), 15, 'loopback_fs', backend)
    RES.mounts.append(mnt)
    run([s.bin('fuse-hostctl'), '--control_socket=' + ctl, 'mount',
         'unix:' + sock, mnt] + (['-o', opts] if opts else []))
    wait_for(lambda: os.path.isdir(os.path.join(mnt, 'tree')), 10,
             'the fuse-hostd mount')
    return [daemon.pid, backend.pid]


def start_pll(s, src, mnt):
    p = RES.spawn([s.bin('passthrough_ll'), '-f', '-o',
                   'source=%s,cache=always' % src, mnt],
                  s.logpath('passthrough_ll'))
    RES.mounts.append(mnt)
    wait_for(lambda: is_mounted(mnt), 10, 'passthrough_ll', p)
    return [p.pid]


def measure(args, rows, label, pids, names, mnt, walks):
    """Adds `label`'s rows, spread and on one CPU, medians of the runs.
    `pids`: the file system's processes, named by `names`, whose threads'
    switches per chmod are counted too."""
    every = os.sched_getaffinity(0)
    tree = os.path.join(mnt, 'tree')
    find = ['find', tree, '-printf', '%s\n']
    pinned = {}
    for mode, cpus in (('spread', every), ('one CPU', CPU0)):
        if cpus != every:
            for pid in pids:
                pinned.update(pin_process(pid, cpus))
        p50s, p90s, lslr, found = [], [], [], []
        per_call = [[] for _ in pids]
        for _ in range(args.runs):
            before = [switches(pid) for pid in pids]
            p50, p90 = chmod_round_trip(os.path.join(mnt, 'probe'),
                                        args.calls, cpus)
            for i, pid in enumerate(pids):
                per_call[i].append((switches(pid) - before[i]) / args.calls)
            p50s.append(p50)
            p90s.append(p90)
            if walks:
                timed(find, cpus)
                drop_caches()
                found.append(timed(find, cpus))
                lslr.append(timed(['ls', '-lR', tree], cpus))
        rows.setdefault((label, 'chmod, p50 (µs)'), {})[mode] = \
            statistics.median(p50s)
        rows.setdefault((label, 'chmod, p90 (µs)'), {})[mode] = \
            statistics.median(p90s)
        for name, counts in zip(names, per_call):
            rows.setdefault((label, 'thread switches per chmod, %s' % name),
                            {})[mode] = statistics.median(counts)
        if walks:
            rows.setdefault((label, 'find after drop_caches (s)'), {})[
                mode] = statistics.median(found)
            rows.setdefault((label, 'ls -lR, ACLs not cached (s)'), {})[
                mode] = statistics.median(lslr)
    unpin(pinned)


def environment():
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return '?'
    return ('%d CPUs, kernel %s, cpuidle driver %s, guest halt polling %s ns' % (
        len(os.sched_getaffinity(0)), os.uname().release,
        read('/sys/devices/system/cpu/cpuidle/current_driver'),
        read('/sys/module/haltpoll/parameters/guest_halt_poll_ns')))


def report(args, rows, files):
    out = ['# CPU placement and the FUSE round trip', '',
           'Command: `%s`' % ' '.join(sys.argv), '',
           'Machine: %s. Tree: %d files of 1 KiB on a tmpfs. Medians of %d '
           'runs; chmod rows over %d calls each. "one CPU": the caller, the '
           'daemon and its backend (or passthrough_ll) held on CPU 0.' % (
               environment(), files, args.runs, args.calls), '',
           '| file system | request | spread | one CPU | spread / one CPU |',
           '|---|---|---|---|---|']
    for (label, what), v in rows.items():
        fmt = ('%.0f' if 'µs' in what else
               '%.1f' if 'switches' in what else '%.3f')
        ratio = ('%.2f' % (v['spread'] / v['one CPU'])) if v['one CPU'] \
            else '—'
        out.append('| %s | %s | %s | %s | %s |' % (
            label, what, fmt % v['spread'], fmt % v['one CPU'], ratio))
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--calls', type=int, default=3000)
    ap.add_argument('--files', type=int, default=4000,
                    help='files in the tree, 200 a directory (4000)')
    ap.add_argument('--out', help='also write the report here')
    ap.add_argument('--workdir', default='/tmp/fhplace')
    ap.add_argument('--hostd-bin-dir', help='binaries built earlier')
    ap.add_argument('--bazel-output-base',
                    default='/root/.cache/fhbench/bazel')
    args = ap.parse_args()
    args.hostd_source = 'worktree'
    if os.geteuid() != 0:
        sys.exit('placement.py mounts and drops caches: run it as root')
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit('one CPU only: nothing to compare')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    s = Setup(args)
    try:
        build.build_hostd(s, need_python=False)
        build.build_libfuse_examples(s)
        tmpfs = os.path.join(s.work, 'tmpfs')
        os.makedirs(tmpfs, exist_ok=True)
        run(['mount', '-t', 'tmpfs', '-o', 'size=256m', 'fhplace', tmpfs])
        RES.late_mounts.append(tmpfs)
        src = os.path.join(tmpfs, 'src')
        dirs = max(1, args.files // 200)
        make_tree(src, args.files, dirs)
        files = args.files // dirs * dirs
        rows = {}
        mnt = os.path.join(s.work, 'mnt')
        os.makedirs(mnt, exist_ok=True)
        log('passthrough_ll cache=always')
        pids = start_pll(s, src, mnt)
        measure(args, rows, 'passthrough_ll cache=always', pids,
                ['passthrough_ll'], mnt, walks=False)
        RES.unmount(mnt)
        log('fuse-hostd + loopback_fs')
        pids = start_hostd(s, src, mnt)
        measure(args, rows, 'fuse-hostd + loopback_fs', pids,
                ['daemon', 'backend'], mnt, walks=True)
        RES.unmount(mnt)
        for pid in pids:
            RES.stop(next(p for p in RES.procs if p.pid == pid))
        # The same with a queue per CPU (FUSE over io_uring), which the
        # kernel offers only with the module parameter set.
        log('fuse-hostd uring + loopback_fs')
        RES.set_param('/sys/module/fuse/parameters/enable_uring', 'Y')
        pids = start_hostd(s, src, mnt, opts='uring')
        measure(args, rows, 'fuse-hostd uring + loopback_fs', pids,
                ['daemon', 'backend'], mnt, walks=True)
        text = report(args, rows, files)
        print(text)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(text)
    finally:
        RES.close()


if __name__ == '__main__':
    main()
