#!/usr/bin/python3
"""fuse-hostd next to other ways of serving a directory through FUSE.

Runs the same workloads, in one run, over one source tree on a tmpfs that this
script mounts, through:

  tmpfs    the tree itself, no FUSE (the floor)
  pll      libfuse's passthrough_ll example, -o cache=always (low-level API)
  pt       libfuse's passthrough example (high-level API, its defaults)
  fusepy   bench/fusepy_loopback.py (python3-fusepy, libfuse 2)
  sshfs    sshfs to an sshd this script starts on 127.0.0.1
  hostd    fuse-hostd + examples/loopback's loopback_fs on a Unix socket
  pyhostd  fuse-hostd + examples/python/loopback.py (the Python SDK) on a
           Unix socket

and prints a markdown table of medians with ratios and PASS/MISS against the
targets of the benchmark issue. See bench/README.md for what each workload
does, in which cache state, and what the numbers do and do not say.

Run as root on a machine with /dev/fuse:  bench/run.py [--quick] [--runs N]
Everything it starts (tmpfs, mounts, daemons, sshd, relays) is torn down at
the end, on errors and on Ctrl-C.
"""

import argparse
import atexit
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
PY = '/usr/bin/python3'  # Debian's modules (fusepy) import here
EXAMPLES = '/usr/share/doc/libfuse3-dev/examples'
MiB = 1 << 20

SYSTEMS = ['tmpfs', 'pll', 'pt', 'fusepy', 'sshfs', 'hostd', 'pyhostd']
LABELS = {
    'tmpfs': 'tmpfs',
    'pll': 'passthrough_ll cache=always',
    'pt': 'passthrough',
    'fusepy': 'fusepy',
    'sshfs': 'sshfs',
    'hostd': 'fuse-hostd',
    'pyhostd': 'fuse-hostd + Python loopback',
}
# Shorter names for ratio headers and target lines.
SHORT = dict(LABELS, pll='passthrough_ll', pyhostd='Python loopback')
RELAY_SYSTEMS = ['sshfs', 'hostd', 'pyhostd']
# The systems that run fuse-hostd (each its own daemon).
HOSTD_SYSTEMS = ('hostd', 'pyhostd')

WORKLOADS = ['find_first', 'find_dropped', 'find_warm', 'ls_lR', 'cat',
             'seqread', 'seqwrite', 'untar', 'rm',
             'relay_find_first', 'relay_find_dropped']
GROUPS = {
    'find': ['find_first', 'find_dropped', 'find_warm'],
    'meta': ['find_first', 'find_dropped', 'find_warm', 'ls_lR'],
    'io': ['cat', 'seqread', 'seqwrite'],
    'tar': ['untar', 'rm'],
    'relay': ['relay_find_first', 'relay_find_dropped'],
}


# ----------------------------------------------------------------- helpers

def log(msg):
    print('[%7.1fs] %s' % (time.monotonic() - T0, msg), file=sys.stderr,
          flush=True)


T0 = time.monotonic()


def run(cmd, check=True, **kw):
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (
            ' '.join(map(str, cmd)), r.returncode,
            (r.stderr or b'').decode(errors='replace').strip()[-600:]))
    return r


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError('%s: process exited (%s) before %s' % (
                proc.args[0], proc.returncode, what))
        time.sleep(0.02)
    raise RuntimeError('timed out waiting for ' + what)


def tcp_open(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
        return True
    except OSError:
        return False


def mountpoints():
    """Mount points from /proc/self/mountinfo (never touches the mounts)."""
    with open('/proc/self/mountinfo') as f:
        return {line.split()[4].replace('\\040', ' ') for line in f}


def is_mounted(path):
    return path in mountpoints()


def proc_status(pid, field):
    """A /proc/PID/status field in bytes (VmHWM, VmRSS), or None."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def drop_caches():
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


# ------------------------------------------------------- resource tracking

class Resources:
    """Everything started or mounted, torn down in reverse, exactly once."""

    def __init__(self):
        self.procs = []     # Popen, started with start_new_session
        self.mounts = []    # FUSE mount points
        self.late_mounts = []  # the tmpfs: after the processes using it stop
        self.closed = False

    def spawn(self, cmd, log_path, **kw):
        logf = open(log_path, 'ab')
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             **kw)
        logf.close()
        self.procs.append(p)
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def unmount(self, path):
        """umount, then lazy umount if busy; forgets the mount either way."""
        if is_mounted(path):
            r = run(['umount', path], check=False)
            if r.returncode != 0 and is_mounted(path):
                run(['umount', '-l', path], check=False)
        if path in self.mounts:
            self.mounts.remove(path)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for m in reversed(list(self.mounts)):
            try:
                self.unmount(m)
            except Exception as e:  # keep going: tear down the rest
                print('cleanup: unmount %s: %s' % (m, e), file=sys.stderr)
        for p in reversed(list(self.procs)):
            try:
                self.stop(p, grace=3.0)
            except Exception as e:
                print('cleanup: stop %s: %s' % (p.args[0], e), file=sys.stderr)
        for m in self.late_mounts:
            r = run(['umount', m], check=False)
            if r.returncode != 0 and is_mounted(m):
                run(['umount', '-l', m], check=False)


RES = Resources()


# ------------------------------------------------------------- the systems

class System:
    """One way of serving SRC. mount() returns the directory where SRC shows."""
    key = None

    def __init__(self, b):
        self.b = b              # the Bench
        self.mnt = os.path.join(b.work, 'mnt', self.key)
        self.proc = None        # the FUSE server process of the current mount
        self.peak_rss = None    # largest VmHWM seen of the server process

    def setup(self):
        os.makedirs(self.mnt, exist_ok=True)

    def mount(self):
        raise NotImplementedError

    def _spawn_and_wait(self, cmd, base):
        self.proc = RES.spawn(cmd, self.b.logpath(self.key))
        RES.mounts.append(self.mnt)
        wait_for(lambda: is_mounted(self.mnt), 20, self.key + ' mount',
                 self.proc)
        wait_for(lambda: os.path.isdir(os.path.join(base, 'tree')), 10,
                 self.key + ' tree visible', self.proc)
        return base

    def note_rss(self):
        if self.proc is not None and self.proc.poll() is None:
            hwm = proc_status(self.proc.pid, 'VmHWM')
            if hwm is not None:
                self.peak_rss = max(self.peak_rss or 0, hwm)

    def unmount(self):
        self.note_rss()
        RES.unmount(self.mnt)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            RES.stop(self.proc)
            self.proc = None

    def teardown(self):
        pass


class Tmpfs(System):
    key = 'tmpfs'

    def mount(self):
        return self.b.src

    def unmount(self):
        pass


class PassthroughLL(System):
    key = 'pll'

    def mount(self):
        return self._spawn_and_wait(
            [self.b.bin('passthrough_ll'), '-f', '-o',
             'source=%s,cache=always' % self.b.src, self.mnt], self.mnt)


class Passthrough(System):
    key = 'pt'

    def mount(self):
        # The high-level example mirrors "/" (it has no source option), so
        # SRC shows at MNT/SRC.
        return self._spawn_and_wait([self.b.bin('passthrough'), '-f', self.mnt],
                                    self.mnt + self.b.src)


class Fusepy(System):
    key = 'fusepy'

    def mount(self):
        return self._spawn_and_wait(
            [PY, os.path.join(BENCH_DIR, 'fusepy_loopback.py'), self.b.src,
             self.mnt], self.mnt)


class Sshfs(System):
    key = 'sshfs'

    def setup(self):
        super().setup()
        d = os.path.join(self.b.work, 'run', 'ssh')
        os.makedirs(d, exist_ok=True)
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)  # privsep dir
        self.key_path = os.path.join(d, 'id_ed25519')
        host_key = os.path.join(d, 'host_ed25519')
        for k in (self.key_path, host_key):
            for f in (k, k + '.pub'):
                if os.path.exists(f):
                    os.unlink(f)
            run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k])
        shutil.copy(self.key_path + '.pub', os.path.join(d, 'authorized_keys'))
        self.port = free_port()
        conf = os.path.join(d, 'sshd_config')
        with open(conf, 'w') as f:
            f.write('\n'.join([
                'Port %d' % self.port,
                'ListenAddress 127.0.0.1',
                'HostKey ' + host_key,
                'PidFile ' + os.path.join(d, 'sshd.pid'),
                'AuthorizedKeysFile ' + os.path.join(d, 'authorized_keys'),
                'PermitRootLogin prohibit-password',
                'PasswordAuthentication no',
                'KbdInteractiveAuthentication no',
                'UsePAM no',
                'StrictModes no',
                'Subsystem sftp /usr/lib/openssh/sftp-server',
                'LogLevel ERROR', '']))
        self.sshd = RES.spawn(['/usr/sbin/sshd', '-D', '-e', '-f', conf],
                              self.b.logpath('sshd'))
        wait_for(lambda: tcp_open(self.port), 10, 'sshd', self.sshd)
        r = run(['ssh'] + self._ssh_opts(self.port) + ['root@127.0.0.1', 'true'],
                check=False, timeout=20)
        if r.returncode != 0:
            raise RuntimeError('ssh to the bench sshd failed: ' +
                               r.stderr.decode(errors='replace').strip())
        self.relay_port = None

    def _ssh_opts(self, port):
        return ['-p', str(port), '-i', self.key_path, '-o', 'BatchMode=yes',
                '-o', 'StrictHostKeyChecking=no',
                '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR']

    def _mount_port(self, port):
        opts = ('IdentityFile=%s,StrictHostKeyChecking=no,'
                'UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR'
                % self.key_path)
        return self._spawn_and_wait(
            ['sshfs', '-f', '-p', str(port), '-o', opts,
             'root@127.0.0.1:' + self.b.src, self.mnt], self.mnt)

    def mount(self):
        return self._mount_port(self.port)

    def mount_relay(self):
        if self.relay_port is None:
            self.relay_port = self.b.start_relay('sshd', self.port)
        return self._mount_port(self.relay_port)


class Hostd(System):
    """fuse-hostd with a backend serving SRC; subclasses change the backend.
    Each such system has a daemon of its own, so the memory figures of one
    are not mixed with another's cache."""
    key = 'hostd'
    backend_name = 'loopback_fs'   # log names, messages
    daemon_log = 'fuse-hostd'

    def backend_cmd(self, listen):
        return [self.b.bin('loopback_fs'), '--listen=' + listen,
                '--root=' + self.b.src]

    def spawn_backend(self, listen, log_name):
        return RES.spawn(self.backend_cmd(listen), self.b.logpath(log_name))

    def setup(self):
        super().setup()
        d = os.path.join(self.b.work, 'run')
        self.ctl = os.path.join(d, '%s-control.sock' % self.key)
        self.backend_sock = os.path.join(d, '%s-backend.sock' % self.key)
        for p in (self.ctl, self.backend_sock):
            if os.path.exists(p):
                os.unlink(p)
        self.crashes = []
        self._start_daemon()
        self.backend = self.spawn_backend('unix:' + self.backend_sock,
                                          self.backend_name)
        wait_for(lambda: os.path.exists(self.backend_sock), 15,
                 self.backend_name + ' socket', self.backend)
        time.sleep(0.3)  # let the daemon settle before reading its idle RSS
        self.idle_rss = proc_status(self.daemon.pid, 'VmRSS')
        self.tcp_backend = None
        self.relay_port = None
        self.samples = []   # (VmRSS with the tree cached, stats text)
        self.baselines = []  # the same right after each mount

    def _start_daemon(self):
        if os.path.exists(self.ctl):
            os.unlink(self.ctl)
        self.daemon = RES.spawn([self.b.bin('fuse-hostd'),
                                 '--control_socket=' + self.ctl],
                                self.b.logpath(self.daemon_log))
        wait_for(lambda: os.path.exists(self.ctl), 15,
                 'fuse-hostd control socket', self.daemon)

    def ensure_daemon(self, when):
        """A crashed daemon is noted (with its log's last line) and restarted,
        so one crash costs one run's numbers, not the rest of the bench."""
        if self.daemon.poll() is None:
            return
        rc = self.daemon.returncode
        try:
            with open(self.b.logpath(self.daemon_log), errors='replace') as f:
                last = f.read().strip().splitlines()[-1]
        except (OSError, IndexError):
            last = '?'
        what = 'signal %d' % -rc if rc < 0 else 'status %d' % rc
        self.crashes.append('fuse-hostd (%s) died (%s), noticed %s; last log '
                            'line: %r; restarted' % (LABELS[self.key], what,
                                                     when, last))
        log(self.crashes[-1])
        RES.procs.remove(self.daemon)
        RES.unmount(self.mnt)
        self._start_daemon()

    def hostctl(self, *args, check=True):
        return run([self.b.bin('fuse-hostctl'), '--control_socket=' + self.ctl]
                   + list(args), check=check, timeout=60)

    def _mount_addr(self, addr):
        self.ensure_daemon('before mounting %s' % addr)
        args = ['mount', addr, self.mnt]
        if self.b.args.hostd_opts:
            args += ['-o', self.b.args.hostd_opts]
        RES.mounts.append(self.mnt)
        self.hostctl(*args)
        wait_for(lambda: is_mounted(self.mnt), 10, 'fuse-hostd mount')
        wait_for(lambda: os.path.isdir(os.path.join(self.mnt, 'tree')), 10,
                 'fuse-hostd tree visible')
        return self.mnt

    def mount(self):
        return self._mount_addr('unix:' + self.backend_sock)

    def mount_relay(self):
        if self.tcp_backend is None:
            port = free_port()
            self.tcp_backend = self.spawn_backend(
                '127.0.0.1:%d' % port, self.backend_name + '-tcp')
            wait_for(lambda: tcp_open(port), 15,
                     self.backend_name + ' on TCP', self.tcp_backend)
            self.relay_port = self.b.start_relay(self.backend_name, port)
        return self._mount_addr('127.0.0.1:%d' % self.relay_port)

    def sample_cache(self, baseline=False):
        """Daemon RSS and `fuse-hostctl stats`: right after mounting
        (`baseline`) or while the tree is cached."""
        rss = proc_status(self.daemon.pid, 'VmRSS')
        text = None
        for args in (['stats', self.mnt], ['stats']):
            r = self.hostctl(*args, check=False)
            if r.returncode == 0:
                text = r.stdout.decode(errors='replace')
                break
        (self.baselines if baseline else self.samples).append((rss, text))

    def note_rss(self):
        # The daemon outlives mounts; it may also die: keep the largest seen.
        if self.daemon.poll() is None:
            hwm = proc_status(self.daemon.pid, 'VmHWM')
            if hwm is not None:
                self.peak_rss = max(self.peak_rss or 0, hwm)

    def unmount(self):
        self.note_rss()
        if is_mounted(self.mnt) and self.daemon.poll() is None:
            r = self.hostctl('unmount', self.mnt, check=False)
            if r.returncode != 0:
                log('fuse-hostctl unmount failed (%s); trying --lazy' %
                    r.stderr.decode(errors='replace').strip())
                self.hostctl('unmount', '--lazy', self.mnt, check=False)
        RES.unmount(self.mnt)  # umount -l fallback; forgets the mount
        time.sleep(0.2)  # a crash at unmount shows up now, not next run
        self.ensure_daemon('after unmounting')

    def final_rss(self):
        self.note_rss()
        return {
            'daemon_hwm': self.peak_rss,
            'daemon_rss': proc_status(self.daemon.pid, 'VmRSS'),
            'backend_hwm': proc_status(self.backend.pid, 'VmHWM'),
        }


class PyHostd(Hostd):
    """fuse-hostd + the Python SDK's loopback example, served on a socket
    (the package and the example are copies made by build_binaries)."""
    key = 'pyhostd'
    backend_name = 'python-loopback'
    daemon_log = 'fuse-hostd-py'

    def backend_cmd(self, listen):
        return [PY, os.path.join(self.b.py_examples, 'loopback.py'),
                self.b.src, '--listen', listen]

    def spawn_backend(self, listen, log_name):
        env = dict(os.environ, PYTHONPATH=self.b.py_package,
                   PYTHONUNBUFFERED='1')
        env.pop('PYTHONHOME', None)
        return RES.spawn(self.backend_cmd(listen), self.b.logpath(log_name),
                         env=env, cwd='/')

    def note_rss(self):
        # Both processes serve this column: the Python backend is reported
        # as its file system process, its daemon next to it.
        super().note_rss()
        hwm = proc_status(self.backend.pid, 'VmHWM') \
            if self.backend.poll() is None else None
        if hwm is not None:
            self.backend_peak = max(getattr(self, 'backend_peak', 0), hwm)


SYSTEM_CLASSES = {c.key: c for c in
                  (Tmpfs, PassthroughLL, Passthrough, Fusepy, Sshfs, Hostd,
                   PyHostd)}


# --------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.tmpfs = os.path.join(self.work, 'tmpfs')
        self.src = os.path.join(self.tmpfs, 'src')
        self.tarball = os.path.join(self.tmpfs, 'untar.tar')
        self.bindir = os.path.join(self.work, 'bin')
        q = args.quick
        self.ndirs = 20 if q else 100
        self.nfiles = args.files or (2000 if q else 20000)
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if self.nfiles + self.ndirs + 500 > fd_limit:
            # passthrough_ll holds an O_PATH fd for every inode it knows.
            cut = (fd_limit - self.ndirs - 500) // self.ndirs * self.ndirs
            self.notes_early = ['tree cut from %d to %d files: the open-file '
                                'limit here is %d and cannot be raised '
                                '(no CAP_SYS_RESOURCE), and passthrough_ll '
                                'keeps one fd per inode' % (
                                    self.nfiles, cut, fd_limit)]
            self.nfiles = cut
        else:
            self.notes_early = []
        self.nfiles = max(1, self.nfiles // self.ndirs) * self.ndirs
        self.file_size = 1024
        self.ncat = 200 if q else 1000
        self.read_mib = 64 if q else 512
        self.write_mib = 32 if q else 256
        self.ntar = 500 if q else 2000
        self.relay_dirs = max(1, min(self.ndirs, self.ndirs * (
            args.relay_files or self.nfiles) // self.nfiles))
        self.cap = args.cap
        self.results = {}   # (system, workload) -> [seconds | None (capped) | 'err']
        self.errors = {}    # (system, workload) -> first error text
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
        if os.path.exists(self.tmpfs) and is_mounted(self.tmpfs):
            raise RuntimeError('%s is still mounted (another bench running? '
                               'if not: umount -l it)' % self.tmpfs)
        for d in ('tmpfs', 'mnt', 'run', 'bin'):
            os.makedirs(os.path.join(self.work, d), exist_ok=True)
        for name in os.listdir(os.path.join(self.work, 'run')):
            if name.endswith('.log'):
                os.unlink(os.path.join(self.work, 'run', name))

    def build_binaries(self, need_hostd, need_libfuse, need_python):
        if need_libfuse:
            cflags = run(['pkg-config', 'fuse3', '--cflags', '--libs']
                         ).stdout.decode().split()
            for name in ('passthrough_ll', 'passthrough'):
                log('building libfuse example %s (gcc -O2)' % name)
                # The HAVE_* macros libfuse's own (meson) build defines on
                # Linux: without them passthrough lacks utimens, xattrs, ...
                run(['gcc', '-O2', '-Wall', '-DHAVE_UTIMENSAT', '-DHAVE_SETXATTR',
                     '-DHAVE_POSIX_FALLOCATE', '-DHAVE_FALLOCATE',
                     '-DHAVE_COPY_FILE_RANGE', '-I', EXAMPLES,
                     os.path.join(EXAMPLES, name + '.c'), '-o', self.bin(name)]
                    + cflags)
        if not need_hostd:
            return
        names = ['fuse-hostd', 'fuse-hostctl', 'loopback_fs']
        layout = {'fuse-hostd': 'daemon', 'fuse-hostctl': 'daemon',
                  'loopback_fs': 'examples/loopback'}
        ws = REPO  # where the Python examples are taken from
        if self.args.hostd_bin_dir:
            d = self.args.hostd_bin_dir
            # A flat directory or a bazel-bin tree.
            src = {n: os.path.join(d, n) if os.path.exists(os.path.join(d, n))
                   else os.path.join(d, layout[n], n) for n in names}
            pkg = os.path.join(d, 'fusehost')
            if not os.path.isdir(pkg):
                pkg = os.path.join(d, 'client', 'python', 'fusehost')
            self.build_desc = 'prebuilt, from ' + os.path.abspath(d)
        else:
            ws, base = REPO, self.args.bazel_output_base
            if self.args.hostd_source == 'head':
                # The committed tree, whatever is being edited in the workspace.
                ws = os.path.join(self.work, 'head-src')
                shutil.rmtree(ws, ignore_errors=True)
                os.makedirs(ws)
                archive = run(['git', '-C', REPO, 'archive', 'HEAD']).stdout
                run(['tar', 'x', '-C', ws], input=archive)
                base += '-head'
            targets = ['//daemon:fuse-hostd', '//daemon:fuse-hostctl',
                       '//examples/loopback:loopback_fs']
            if need_python:
                # The importable package: the SDK's modules plus the
                # generated protocol modules (nothing generated is checked in).
                targets.append('//client/python:fusehost')
            log('building fuse-hostd (%s) with bazel -c opt, private output '
                'base %s' % (self.args.hostd_source, base))
            # A private output base: the team's bazel server, its lock and the
            # workspace's bazel-* symlinks are left alone.
            bazel = ['bazel', '--output_base=' + base]
            r = run(bazel + ['build', '-c', 'opt', '--noshow_progress',
                             '--experimental_convenience_symlinks=ignore']
                    + targets, cwd=ws, check=False, stdout=None, stderr=None)
            if r.returncode != 0:
                run(bazel + ['shutdown'], cwd=ws, check=False)
                raise RuntimeError(
                    'building fuse-hostd failed (see above). Someone may be '
                    'mid-edit: retry, or use --hostd-source=head, or '
                    '--hostd-bin-dir=DIR with binaries built earlier')
            out = run(bazel + ['info', '-c', 'opt', 'bazel-bin'],
                      cwd=ws).stdout.decode().strip()
            run(bazel + ['shutdown'], cwd=ws, check=False)
            src = {n: os.path.join(out, layout[n], n) for n in names}
            pkg = os.path.join(out, 'client', 'python', 'fusehost')
            self.build_desc = 'bazel build -c opt of the %s' % (
                'work tree' if self.args.hostd_source == 'worktree'
                else 'committed HEAD')
        for n in names:
            # Copies: a rebuild in the workspace mid-run changes nothing here.
            shutil.copy(src[n], self.bin(n))
        if need_python:
            self.copy_python(pkg, os.path.join(ws, 'examples', 'python'))

    def copy_python(self, pkg, examples):
        """Copies the fusehost package and the Python loopback example (with
        the command line module it imports) next to the binaries, for the
        same reason as the binaries: edits mid-run change nothing."""
        if not os.path.isfile(os.path.join(pkg, 'filesystem_pb2.py')):
            raise RuntimeError('no built fusehost package in %s' % pkg)
        self.py_package = os.path.join(self.bindir, 'python')
        self.py_examples = os.path.join(self.bindir, 'python-examples')
        for d in (self.py_package, self.py_examples):
            shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(pkg, os.path.join(self.py_package, 'fusehost'),
                        ignore=shutil.ignore_patterns('__pycache__'))
        os.makedirs(self.py_examples)
        for name in ('loopback.py', 'example_cli.py', 'tree_watch.py',
                     'own_changes.py'):
            shutil.copy(os.path.join(examples, name), self.py_examples)

    def make_tree(self):
        run(['mount', '-t', 'tmpfs', '-o', 'size=%dm,mode=0755' %
             (self.read_mib + 2 * self.write_mib + 1024), 'fhbench',
             self.tmpfs])
        RES.late_mounts.append(self.tmpfs)
        log('creating %d files of %d bytes in %d directories' %
            (self.nfiles, self.file_size, self.ndirs))
        per = self.nfiles // self.ndirs
        block = b'x' * (self.file_size - 1) + b'\n'
        tree = os.path.join(self.src, 'tree')
        self.cat_files = []
        every = max(1, self.nfiles // self.ncat)
        for d in range(self.ndirs):
            dd = os.path.join(tree, 'd%03d' % d)
            os.makedirs(dd)
            for i in range(per):
                n = d * per + i
                p = os.path.join(dd, 'f%05d' % n)
                with open(p, 'wb') as f:
                    f.write(block)
                if n % every == 0 and len(self.cat_files) < self.ncat:
                    self.cat_files.append(os.path.relpath(p, self.src))
        self.tree_entries = self.nfiles + self.ndirs + 1
        if self.relay_dirs == self.ndirs:
            self.relay_subset, self.relay_entries = ['tree'], self.tree_entries
        else:
            self.relay_subset = ['tree/d%03d' % d for d in range(self.relay_dirs)]
            self.relay_entries = self.relay_dirs * per + self.relay_dirs
        os.makedirs(os.path.join(self.src, 'scratch'))
        log('creating a %d MiB file' % self.read_mib)
        chunk = os.urandom(MiB)
        with open(os.path.join(self.src, 'big.bin'), 'wb') as f:
            for _ in range(self.read_mib):
                f.write(chunk)
        log('creating a tarball of %d files' % self.ntar)
        stage = os.path.join(self.tmpfs, 'tarstage')
        tdirs = max(1, self.ntar // 100)
        for i in range(self.ntar):
            d = os.path.join(stage, 'pkg', 'sub%02d' % (i % tdirs))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, 'file%05d.txt' % i), 'wb') as f:
                f.write(block)
        run(['tar', 'cf', self.tarball, '-C', stage, 'pkg'])
        shutil.rmtree(stage)

    def start_relay(self, name, target_port):
        delay = self.args.relay_rtt_ms / 2.0
        p = RES.spawn([PY, os.path.join(BENCH_DIR, 'delay_relay.py'),
                       '--target', '127.0.0.1:%d' % target_port,
                       '--delay-ms', str(delay)], self.logpath('relay-' + name),
                      )
        logf = self.logpath('relay-' + name)
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
        return wl in self.workloads

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

    def run_main_workloads(self, s, r):
        sysk = s.key
        base = s.mount()
        tree = os.path.join(base, 'tree')
        find = ['find', tree, '-printf', '%s\n']
        n = self.tree_entries
        if sysk == 'hostd':
            s.sample_cache(baseline=True)  # mounted, nothing listed yet
        self.timed(sysk, 'find_first', find, expect_lines=n)
        self.timed(sysk, 'find_dropped', find, expect_lines=n, drop=True)
        self.timed(sysk, 'find_warm', find, expect_lines=n)
        self.timed(sysk, 'ls_lR', ['ls', '-lR', tree])
        if sysk == 'hostd':
            s.sample_cache()
        self.timed(sysk, 'cat', ['cat'] + [os.path.join(base, f)
                                           for f in self.cat_files], drop=True)
        self.timed(sysk, 'seqread', ['dd', 'if=' + os.path.join(base, 'big.bin'),
                                     'of=/dev/null', 'bs=1M'], drop=True)
        scratch = os.path.join(base, 'scratch', '%s-%d' % (sysk, r))
        os.mkdir(scratch)
        wfile = os.path.join(scratch, 'write.bin')
        self.timed(sysk, 'seqwrite', ['dd', 'if=/dev/zero', 'of=' + wfile,
                                      'bs=1M', 'count=%d' % self.write_mib,
                                      'conv=fsync'])
        if os.path.exists(wfile):
            os.unlink(wfile)
        dest = os.path.join(scratch, 'untar')
        os.mkdir(dest)
        self.timed(sysk, 'untar', ['tar', 'xf', self.tarball, '-C', dest])
        if self.want('untar') or self.want('rm'):
            if not self.want('untar'):  # rm alone still needs the files
                run(['tar', 'xf', self.tarball, '-C', dest])
            self.timed(sysk, 'rm', ['rm', '-rf', os.path.join(dest, 'pkg')])
        shutil.rmtree(scratch, ignore_errors=True)
        s.unmount()

    def run_relay_workloads(self, s):
        base = s.mount_relay()
        find = ['find'] + [os.path.join(base, d) for d in self.relay_subset] + \
            ['-printf', '%s\n']
        n = self.relay_entries
        self.timed(s.key, 'relay_find_first', find, expect_lines=n)
        self.timed(s.key, 'relay_find_dropped', find, expect_lines=n, drop=True)
        s.unmount()

    def main(self):
        a = self.args
        self.systems_order = [k for k in SYSTEMS if k in a.only]
        self.workloads = [w for w in WORKLOADS if w in a.workloads]
        main_wls = [w for w in self.workloads if not w.startswith('relay_')]
        relay_wls = [w for w in self.workloads if w.startswith('relay_')]
        self.prepare_dirs()
        self.build_binaries(bool(set(HOSTD_SYSTEMS) & set(a.only)),
                            bool({'pll', 'pt'} & set(a.only)),
                            'pyhostd' in a.only)
        self.make_tree()
        if relay_wls:
            r = run([PY, os.path.join(BENCH_DIR, 'delay_relay.py'), '--selftest',
                     '--delay-ms', str(a.relay_rtt_ms / 2.0)]).stdout.decode()
            self.relay_selftest = r.strip()
            log('relay self-test (1-byte ping-pong medians): ' + self.relay_selftest)
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
                self.guard(s, lambda: self.run_main_workloads(s, r))
            for k in RELAY_SYSTEMS:
                s = self.systems.get(k)
                if s is None or not relay_wls or k in self.broken():
                    continue
                log('run %d/%d: %s behind the relay' % (r, a.runs, LABELS[k]))
                self.guard(s, lambda: self.run_relay_workloads(s))
        for k, s in self.systems.items():
            s.note_rss()
        if 'hostd' in self.systems:
            self.hostd_info = self.systems['hostd'].final_rss()

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


# ------------------------------------------------------------------ report

def median_of(samples):
    """Median seconds (inf if capped); None if every sample failed."""
    vals = [float('inf') if v is None else v for v in samples if v != 'err']
    if not vals:
        return None
    return statistics.median(vals)


def fmt_time(v):
    if v is None:
        return 'n/a'
    if v == float('inf'):
        return '>cap'
    if v >= 100:
        return '%.0f' % v
    if v >= 10:
        return '%.1f' % v
    if v >= 1:
        return '%.2f' % v
    return '%.3f' % v


def fmt_ratio(num, den, cap):
    """num/den; a capped numerator gives a lower bound '>x'."""
    if num is None or den is None or den == 0:
        return None, 'n/a'
    if num == float('inf'):
        if den == float('inf'):
            return None, 'n/a'
        return cap / den, '>%.1f' % (cap / den)
    if den == float('inf'):
        return num / cap, '<%.2f' % (num / cap)
    return num / den, '%.2f' % (num / den)


ROWS = [
    # workload, label, bytes moved (for MB/s) or None
    ('find_first', "find -printf '%s\\n', first mount", None),
    ('find_dropped', 'find, after drop_caches', None),
    ('find_warm', 'find, warm (again at once)', None),
    ('ls_lR', 'ls -lR (warm)', None),
    ('cat', 'cat N small files (after drop_caches)', None),
    ('seqread', 'sequential read (after drop_caches)', 'read'),
    ('seqwrite', 'sequential write + fsync', 'write'),
    ('untar', 'untar', None),
    ('rm', 'rm -rf of the untarred files', None),
    ('relay_find_first', 'relay +1 ms RTT: find, first mount', None),
    ('relay_find_dropped', 'relay +1 ms RTT: find, after drop_caches', None),
]

# The ratio columns, (numerator, denominator) of times, each shown when
# both systems ran.
RATIO_COLS = [('hostd', 'pll'), ('fusepy', 'hostd'), ('fusepy', 'pyhostd'),
              ('sshfs', 'hostd')]

# workload -> {(numerator, denominator): (kind, threshold)}
#   '<='    time(num)/time(den) <= t
#   '>='    time(num)/time(den) >= t
#   'thr>=' throughput(num)/throughput(den) = time(den)/time(num) >= t
_META = {('hostd', 'pll'): ('<=', 1.3), ('fusepy', 'hostd'): ('>=', 20),
         ('fusepy', 'pyhostd'): ('>=', 5)}
TARGETS = {
    'find_first': _META,
    'find_dropped': _META,
    'find_warm': _META,
    'ls_lR': _META,
    'seqread': {('hostd', 'pll'): ('thr>=', 0.6)},
    'seqwrite': {('hostd', 'pll'): ('<=', 1.5)},
    'untar': {('hostd', 'pll'): ('<=', 1.5)},
    'relay_find_first': {('sshfs', 'hostd'): ('>=', 20)},
    'relay_find_dropped': {('sshfs', 'hostd'): ('>=', 20)},
}


def verdict_of(num, den, kind, t, val, text):
    """(cell suffix, (what, value, ok)) for a ratio against its target."""
    if kind == 'thr>=':
        ok = (1 / val) >= t
        return (' %s (thr %.0f%%, ≥%.0f%%)' % ('PASS' if ok else 'MISS',
                                               100 / val, 100 * t),
                ('throughput ≥ %.0f%% of %s' % (100 * t, SHORT[den]),
                 '%.0f%%' % (100 / val), ok))
    ok = val <= t if kind == '<=' else val >= t
    sign = '≤' if kind == '<=' else '≥'
    return (' %s (%s%g)' % ('PASS' if ok else 'MISS', sign, t),
            ('%s/%s %s %g' % (SHORT[num], SHORT[den], sign, t), text, ok))


def report(b, cmdline):
    a = b.args
    cap = b.cap
    med = {k: median_of(v) for k, v in b.results.items()}
    cols = [k for k in b.systems_order]
    out = []
    w = out.append
    w('# fuse-hostd benchmark')
    w('')
    w('Command: `%s`' % cmdline)
    w('')
    w('Machine: %s, %d CPUs, kernel %s. libfuse %s, sshfs %s, fusepy %s. '
      'fuse-hostd %s (%s).' % (
          os.uname().nodename, os.cpu_count(), os.uname().release,
          pkg_version('libfuse3-3'), pkg_version('sshfs'),
          pkg_version('python3-fusepy'),
          git_desc('prebuilt' if a.hostd_bin_dir else a.hostd_source),
          getattr(b, 'build_desc', 'not built')))
    per = b.nfiles // b.ndirs
    w('')
    w('Tree on one tmpfs: %d files of %d B in %d directories (find prints %d '
      'lines); cat reads %d of them; sequential read %d MiB; write %d MiB with '
      'fsync; tarball of %d files. Relay rows: find over %d directories '
      '(%d files) through a TCP relay adding %.2g ms per round trip (%.2g ms '
      'each way%s). Medians of %d runs, seconds (MB/s for throughput rows); '
      'cap %gs per command.' % (
          b.nfiles, b.file_size, b.ndirs, b.tree_entries, b.ncat, b.read_mib,
          b.write_mib, b.ntar, b.relay_dirs, b.relay_dirs * per,
          a.relay_rtt_ms, a.relay_rtt_ms / 2,
          '; self-test: ' + b.relay_selftest if hasattr(b, 'relay_selftest')
          else '', a.runs, cap))
    for n in b.notes_early:
        w('')
        w('**Note: %s.**' % n)
    if a.hostd_opts:
        w('')
        w('fuse-hostd mount options: `%s`' % a.hostd_opts)
    w('')
    ratio_cols = [(num, den) for num, den in RATIO_COLS
                  if num in cols and den in cols]
    w('| workload | ' + ' | '.join(LABELS[c] for c in cols) +
      ''.join(' | %s / %s' % (SHORT[num], SHORT[den])
              for num, den in ratio_cols) + ' |')
    w('|---' * (1 + len(cols) + len(ratio_cols)) + '|')
    verdicts = []
    size = {'read': b.read_mib, 'write': b.write_mib}
    for wl, label, thr in ROWS:
        if wl not in b.workloads:
            continue
        cells = []
        for c in cols:
            samples = b.results.get((c, wl))
            if samples is None:
                cells.append('—')
                continue
            m = med.get((c, wl))
            if m is None:
                cells.append('err')
            elif thr and m not in (None, float('inf')):
                cells.append('%s (%.0f MB/s)' % (fmt_time(m),
                                                 size[thr] * MiB / 1e6 / m))
            else:
                cells.append(fmt_time(m))
        tgts = TARGETS.get(wl, {})
        for num, den in ratio_cols:
            val, text = fmt_ratio(med.get((num, wl)), med.get((den, wl)), cap)
            verdict = ''
            if val is not None and (num, den) in tgts:
                verdict, (what, shown, ok) = verdict_of(
                    num, den, *tgts[(num, den)], val, text)
                verdicts.append((label, what, shown, ok))
            cells.append(text + verdict)
        w('| %s | %s |' % (label, ' | '.join(cells)))
    # memory
    w('')

    def peak(k, s):
        if k == 'pyhostd':
            return '%s %s (its daemon %s)' % (
                LABELS[k], mib(getattr(s, 'backend_peak', None)),
                mib(s.peak_rss))
        return '%s %s' % (LABELS[k], mib(s.peak_rss))
    w('Peak RSS (VmHWM) of each file system process: ' + ', '.join(
        peak(k, s) for k, s in b.systems.items()
        if k not in ('tmpfs', 'hostd')) + (
        ' (sshfs: the sshfs client only, not sshd/sftp-server).'
        if 'sshfs' in b.systems else '.'))
    if 'hostd' in b.systems:
        h = b.systems['hostd']
        i = b.hostd_info
        w('')
        w('**fuse-hostd daemon: peak RSS (VmHWM) %s**%s; idle before any mount %s; '
          'at the end %s. loopback_fs backend peak %s.' % (
              mib(i.get('daemon_hwm')),
              ' (largest over its %d lives: it crashed, see Problems)' % (
                  len(h.crashes) + 1) if h.crashes else '',
              mib(h.idle_rss), mib(i.get('daemon_rss')),
              mib(i.get('backend_hwm'))))
        rss = [s[0] for s in h.samples if s[0]]
        texts = [s[1] for s in h.samples if s[1]]
        entries = parse_entries(texts[-1]) if texts else None
        # Growth from the fresh mount to the cached tree, per entry the
        # cache gained: the mount's fixed costs (libfuse's 1 MiB request
        # buffers, gRPC's channel) are in both samples and cancel out. The
        # largest over the runs: later mounts reuse memory the allocator
        # kept from earlier ones, and would look cheaper than they are.
        per_entry = []
        for (r0, t0), (r1, t1) in zip(h.baselines, h.samples):
            e0, e1 = parse_entries(t0 or ''), parse_entries(t1 or '')
            if r0 and r1 and e0 is not None and e1 and e1 > e0:
                per_entry.append((r1 - r0) / (e1 - e0))
        if per_entry:
            per_e = max(per_entry)
            ok = per_e < 1024
            verdicts.append(('daemon memory', '< 1 KiB per cached entry',
                             '%.0f B' % per_e, ok))
            w('')
            w('Daemon memory per cached entry: RSS growth from the fresh mount '
              'to the listed tree over the entries the cache gained (`fuse-hostctl '
              'stats`), the largest of %d runs: **%.0f B** — %s (< 1 KiB). '
              'This counts the whole daemon: cache, inode table, allocator.' % (
                  len(per_entry), per_e, 'PASS' if ok else 'MISS'))
        if rss and h.idle_rss and not per_entry:
            delta = statistics.median(rss) - h.idle_rss
            line = ('Daemon RSS with the tree just listed (after ls -lR, median '
                    'of %d samples): %s, %+.1f MiB over idle.' % (
                        len(rss), mib(statistics.median(rss)), delta / MiB))
            if entries:
                per_e = delta / entries
                ok = per_e < 1024
                line += (' `fuse-hostctl stats` reports %d cached entries: '
                         '%.0f B per cached entry (RSS growth / entries) — %s '
                         '(< 1 KiB).' % (entries, per_e, 'PASS' if ok else 'MISS'))
                verdicts.append(('daemon memory', '< 1 KiB per cached entry',
                                 '%.0f B' % per_e, ok))
            else:
                line += (' `fuse-hostctl stats` %s, so the cached-entry count is '
                         'unknown; RSS growth per tree entry would be %.0f B '
                         '(%d entries), which only means something once the '
                         'daemon caches them all.' % (
                             'printed no entry count' if texts else
                             'is not available', delta / b.tree_entries,
                             b.tree_entries))
                verdicts.append(('daemon memory', '< 1 KiB per cached entry',
                                 'unknown (no entry count)', None))
            w('')
            w(line)
        if texts:
            w('')
            w('<details><summary>fuse-hostctl stats (last sample)</summary>')
            w('')
            w('```')
            w(texts[-1].rstrip())
            w('```')
            w('</details>')
    # verdicts
    w('')
    w('## Targets')
    w('')
    for label, what, val, ok in verdicts:
        w('- %s: %s — %s: %s' % (
            label, what, val, {True: 'PASS', False: 'MISS', None: 'UNKNOWN'}[ok]))
    if not verdicts:
        w('- (none evaluated: needs fuse-hostd and the system compared with)')
    crashes = [c for k in HOSTD_SYSTEMS if k in b.systems
               for c in b.systems[k].crashes]
    if b.notes[len(b.notes_early):] or b.errors or crashes:
        w('')
        w('## Problems')
        w('')
        for n in b.notes[len(b.notes_early):] + crashes:
            w('- ' + n)
        for (k, wl), e in sorted(b.errors.items()):
            w('- %s %s: %s' % (LABELS[k], wl, e))
    w('')
    w('<details><summary>all samples (s; cap = over the cap)</summary>')
    w('')
    for (k, wl), v in sorted(b.results.items(),
                             key=lambda kv: (WORKLOADS.index(kv[0][1]),
                                             SYSTEMS.index(kv[0][0]))):
        w('- %s / %s: %s' % (wl, LABELS[k], ', '.join(
            'cap' if x is None else x if x == 'err' else '%.3f' % x for x in v)))
    w('</details>')
    return '\n'.join(out) + '\n'


def mib(n):
    return 'n/a' if not n else '%.1f MiB' % (n / MiB)


def parse_entries(text):
    """Cached-entry count from `fuse-hostctl stats`, if it prints one.

    Sums the 'cache entries N (limit M)' lines (one per mount); None when
    there is none.
    """
    total, found = 0, False
    for line in text.splitlines():
        m = re.search(r'cache entries\s+(\d+)', line)
        if m:
            total += int(m.group(1))
            found = True
    return total if found else None


def pkg_version(p):
    r = run(['dpkg-query', '-W', '-f=${Version}', p], check=False)
    return r.stdout.decode().strip() or '?'


def git_desc(source):
    r = run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], check=False)
    rev = r.stdout.decode().strip() or '?'
    if source == 'head':
        return 'HEAD ' + rev
    if source == 'prebuilt':
        return '(workspace at %s)' % rev
    r = run(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no'],
            check=False)
    return rev + ('+uncommitted changes' if r.stdout.strip() else '')


# -------------------------------------------------------------------- main

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
                    help='files in the tree, spread over 100 directories (20 '
                    'with --quick); default 20000 (2000 with --quick)')
    ap.add_argument('--out', help='also write the report (markdown) here')
    ap.add_argument('--cap', type=float, default=None,
                    help='seconds one command may take before it is recorded '
                    'as >cap (120; 60 with --quick)')
    ap.add_argument('--relay-rtt-ms', type=float, default=1.0,
                    help='latency the relay adds per round trip (1.0: 0.5 ms '
                    'each way)')
    ap.add_argument('--relay-files', type=int, default=None,
                    help='find only this many files (whole directories) in the '
                    'relay rows (default: the whole tree)')
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
