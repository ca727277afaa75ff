"""The Bench: one benchmark from start to end. It prepares the work
directory, gets the binaries, makes the tree, sets up each system, then
runs the workloads `--runs` times (systems interleaved, so slow drift hits
all of them alike), timing every command against the cap and keeping every
sample for the report. A system that breaks is left out of later runs; a
fuse-hostd that crashes is restarted and the next run goes on.
"""

import os
import re
import subprocess
import time

import build
import roundtrip
from common import (BENCH_DIR, PY, RES, TLS_NAME, drop_caches, is_mounted,
                    log, run, wait_for)
from systems import (LABELS, NEEDS_HOSTD, NEEDS_PYTHON_SDK,
                     RELAY_SYSTEMS, SYSTEM_CLASSES, SYSTEMS)
from workloads import (WORKLOADS, Tree, run_main_workloads,
                       run_relay_workloads)


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.bindir = os.path.join(self.work, 'bin')
        self.tree = Tree(args, self.work)
        self.cap = args.cap
        self.results = {}   # (system, workload) -> [seconds | None (capped) | 'err']
        self.roundtrip = []  # roundtrip.measure's rows
        self.errors = {}    # (system, workload) -> first error text
        self.notes_early = self.tree.notes  # said at the top of the report
        self.notes = list(self.notes_early)
        self.relays = []
        self.systems = {}
        self.hostd_info = {}

    # -- paths
    def bin(self, name):
        return os.path.join(self.bindir, name)

    def logpath(self, name):
        return os.path.join(self.work, 'run', name + '.log')

    # -- setup
    def prepare_dirs(self):
        tmpfs = self.tree.tmpfs
        if os.path.exists(tmpfs) and is_mounted(tmpfs):
            raise RuntimeError('%s is still mounted (another bench running? '
                               'if not: umount -l it)' % tmpfs)
        for d in ('tmpfs', 'mnt', 'run', 'bin'):
            os.makedirs(os.path.join(self.work, d), exist_ok=True)
        for name in os.listdir(os.path.join(self.work, 'run')):
            if name.endswith('.log'):
                os.unlink(os.path.join(self.work, 'run', name))

    def tls_files(self):
        """A CA, a server certificate for TLS_NAME and a client
        certificate for the daemon (mutual TLS), made once per bench in
        the work directory with openssl (tests/integration/tls_certs.py)."""
        if getattr(self, '_tls', None) is None:
            import shutil
            import tls_certs
            d = os.path.join(self.work, 'tls')
            shutil.rmtree(d, ignore_errors=True)
            ca = tls_certs.Ca(d, 'fuse-hostd bench CA')
            server = ca.issue('server', TLS_NAME, dns=TLS_NAME)
            client = ca.issue('client', 'fuse-hostd bench', client=True)
            self._tls = {'ca': ca.pem, 'server': server, 'client': client}
        return self._tls

    def start_relay(self, name, target_port, rtt):
        """delay_relay.py adding `rtt` ms per round trip in front of
        127.0.0.1:target_port; returns the port it listens on."""
        delay = rtt / 2.0
        logf = self.logpath('relay-%s-%g' % (name, rtt))
        p = RES.spawn([PY, os.path.join(BENCH_DIR, 'delay_relay.py'),
                       '--target', '127.0.0.1:%d' % target_port,
                       '--delay-ms', str(delay)], logf)
        port = []

        def ready():
            with open(logf) as f:
                m = re.search(r'listening on (\d+)', f.read())
            if m:
                port.append(int(m.group(1)))
            return bool(port)
        wait_for(ready, 10, 'relay for ' + name, p)
        self.relays.append(p)
        return port[0]

    # -- measuring
    def want(self, wl):
        # Relay rows are recorded as WORKLOAD@RTT.
        return wl.split('@')[0] in self.workloads

    def record(self, sysk, wl, value, err=None):
        self.results.setdefault((sysk, wl), []).append(value)
        if err and (sysk, wl) not in self.errors:
            self.errors[(sysk, wl)] = err

    def capped_before(self, sysk, wl):
        return None in self.results.get((sysk, wl), [])

    def timed(self, sysk, wl, cmd, expect_lines=None, drop=False):
        """Times cmd (argv); records seconds, None past the cap, or 'err'."""
        if not self.want(wl):
            return
        if self.capped_before(sysk, wl):
            self.record(sysk, wl, None)  # it went past the cap before: skip
            return
        if drop:
            drop_caches()
            # drop_caches also evicts the tool's own binary and libraries;
            # load them again (untimed) so only the file system is cold.
            subprocess.run([cmd[0], '--version'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        out = subprocess.PIPE if expect_lines is not None else subprocess.DEVNULL
        t = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.PIPE)
        try:
            stdout, stderr = p.communicate(timeout=self.cap)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            log('%s %s: over the %gs cap' % (sysk, wl, self.cap))
            self.record(sysk, wl, None)
            return
        dt = time.monotonic() - t
        err = None
        if p.returncode != 0:
            err = 'exit %d: %s' % (p.returncode,
                                   stderr.decode(errors='replace').strip()[-300:])
        elif expect_lines is not None:
            n = stdout.count(b'\n')
            if n != expect_lines:
                err = 'printed %d lines, expected %d' % (n, expect_lines)
        if err:
            log('%s %s: %s' % (sysk, wl, err))
            self.record(sysk, wl, 'err', err)
        else:
            self.record(sysk, wl, dt)

    # -- the runs
    def main(self):
        a = self.args
        self.systems_order = [k for k in SYSTEMS if k in a.only]
        self.workloads = [w for w in WORKLOADS if w in a.workloads]
        main_wls = [w for w in self.workloads if not w.startswith('relay_')]
        relay_wls = [w for w in self.workloads if w.startswith('relay_')]
        self.prepare_dirs()
        build.build_binaries(self, bool(set(NEEDS_HOSTD) & set(a.only)),
                             bool({'pll', 'pt'} & set(a.only)),
                             bool(set(NEEDS_PYTHON_SDK) & set(a.only)))
        self.tree.make()
        self.relay_rtts = [float(x) for x in str(a.relay_rtt_ms).split(',')]
        self.relay_selftest = {}
        for rtt in self.relay_rtts if relay_wls else []:
            r = run([PY, os.path.join(BENCH_DIR, 'delay_relay.py'), '--selftest',
                     '--delay-ms', str(rtt / 2.0)]).stdout.decode()
            self.relay_selftest[rtt] = r.strip()
            log('relay self-test at %g ms (1-byte ping-pong medians): %s' % (
                rtt, r.strip()))
        for k in self.systems_order:
            s = SYSTEM_CLASSES[k](self)
            try:
                log('setting up ' + k)
                s.setup()
                self.systems[k] = s
            except Exception as e:
                self.notes.append('%s: setup failed, left out: %s' % (LABELS[k], e))
                log(self.notes[-1])
        for r in range(1, a.runs + 1):
            for k, s in self.systems.items():
                if not main_wls or k in self.broken():
                    continue
                log('run %d/%d: %s' % (r, a.runs, LABELS[k]))
                self.guard(s, lambda: run_main_workloads(self, s, r))
            for rtt in self.relay_rtts if relay_wls else []:
                for k in RELAY_SYSTEMS:
                    s = self.systems.get(k)
                    if s is None or k in self.broken():
                        continue
                    log('run %d/%d: %s behind the relay (+%g ms)' % (
                        r, a.runs, LABELS[k], rtt))
                    self.guard(s, lambda: run_relay_workloads(self, s, rtt))
        for k, s in self.systems.items():
            s.note_rss()
        if 'hostd' in self.systems:
            self.hostd_info = self.systems['hostd'].final_rss()
        # Last, when nothing else runs: what one backend message costs.
        if a.roundtrip_calls > 0 and set(NEEDS_HOSTD) & set(a.only):
            roundtrip.measure(self, a.roundtrip_calls)

    def broken(self):
        return {n.split(':')[0] for n in self.notes if ': broke' in n}

    def guard(self, s, fn):
        crashes = len(getattr(s, 'crashes', []))
        try:
            fn()
        except Exception as e:
            try:
                s.unmount()
            except Exception:
                RES.unmount(s.mnt)
            if len(getattr(s, 'crashes', [])) > crashes:
                # fuse-hostd died and was restarted: the next run goes on.
                self.notes.append('%s: a run was cut short by the crash: %s'
                                  % (s.key, e))
            else:
                self.notes.append('%s: broke in a run, left out from then '
                                  'on: %s' % (s.key, e))
            log(self.notes[-1])
