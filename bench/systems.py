"""The systems compared, one class each: how each is set up once, mounted
fresh for every run (and, for sshfs and fuse-hostd, behind the relay),
unmounted, and what memory its processes used.

  tmpfs    the tree itself, no FUSE (the floor)
  pll      libfuse's passthrough_ll example, -o cache=always (low-level API)
  pt       libfuse's passthrough example (high-level API, its defaults)
  fusepy   bench/fusepy_loopback.py (python3-fusepy, libfuse 2)
  fusepyhostd  the same file with only its import changed to fusehost's,
           mounting itself through a fuse-hostd of its own
  fusepywbhostd  the same port run with FUSE_HOSTD_MOUNT_OPTIONS=
           write_behind,default_permissions (the file unchanged)
  sshfs    sshfs to an sshd started here on 127.0.0.1
  hostd    fuse-hostd + examples/loopback's loopback_fs on a Unix socket
  shostd   hostd with the mount option session: the backend's messages on
           one Session stream instead of an Execute call each
  kept     the same, with fuse-hostd under its keeper (--supervise): the
           mount journals its state so that it survives the daemon
  wbhostd  hostd with the mount option write_behind: chmod, chown, utimens,
           unlink, rmdir, and create of a name known absent with that
           file's writes, flush and release (not passed through), answered
           by the daemon, sent to the backend after
  uhostd   hostd with the mount option uring: kernel requests through a
           FUSE-over-io_uring queue per CPU (the fuse module's enable_uring
           is set for the bench and put back after)
  pyhostd  fuse-hostd + examples/python/loopback.py (the Python SDK) on a
           Unix socket
  nodehostd  fuse-hostd + examples/node/loopback.js (the Node.js SDK) on a
           Unix socket

Every process is started through RES, so that it is stopped at the end
whatever happens.
"""

import os
import shutil
import subprocess
import time

from common import (BENCH_DIR, PY, RES, TLS_NAME, fhlib, free_port,
                    is_mounted, log, proc_status, run, tcp_open, wait_for)

REPO_DIR = os.path.dirname(BENCH_DIR)

SYSTEMS = ['tmpfs', 'pll', 'pt', 'fusepy', 'fusepyhostd', 'fusepywbhostd',
           'sshfs', 'hostd', 'shostd', 'uhostd', 'wbhostd', 'wchostd', 'kept',
           'pyhostd', 'nodehostd']
LABELS = {
    'tmpfs': 'tmpfs',
    'pll': 'passthrough_ll cache=always',
    'pt': 'passthrough',
    'fusepy': 'fusepy',
    'fusepyhostd': 'fusepy_loopback.py through fuse-hostd',
    'fusepywbhostd': 'the same with write_behind',
    'sshfs': 'sshfs',
    'hostd': 'fuse-hostd',
    'shostd': 'fuse-hostd session',
    'uhostd': 'fuse-hostd uring',
    'wbhostd': 'fuse-hostd write_behind',
    'wchostd': 'fuse-hostd writeback_cache',
    'kept': 'fuse-hostd under its keeper',
    'pyhostd': 'fuse-hostd + Python loopback',
    'nodehostd': 'fuse-hostd + Node loopback',
}
# Shorter names for ratio headers and target lines.
SHORT = dict(LABELS, pll='passthrough_ll', kept='kept', shostd='session',
             wbhostd='write_behind', wchostd='writeback_cache', uhostd='uring', pyhostd='Python loopback',
             nodehostd='Node loopback', fusepyhostd='fusepy port',
             fusepywbhostd='fusepy port write_behind')
# Systems that need fuse-hostd built (the fusepy port mounts itself through
# a daemon of its own, like the SDK systems).
NEEDS_HOSTD = ('hostd', 'shostd', 'uhostd', 'wbhostd', 'wchostd', 'kept',
               'pyhostd', 'nodehostd', 'fusepyhostd', 'fusepywbhostd')
NEEDS_PYTHON_SDK = ('pyhostd', 'fusepyhostd', 'fusepywbhostd')
RELAY_SYSTEMS = ['sshfs', 'hostd', 'shostd', 'uhostd', 'wbhostd', 'wchostd',
                 'pyhostd', 'nodehostd']
# The systems that run fuse-hostd (each its own daemon).
HOSTD_SYSTEMS = ('hostd', 'shostd', 'uhostd', 'wbhostd', 'wchostd', 'kept',
                 'pyhostd', 'nodehostd')
# The systems whose backend is a process of an SDK (its memory is reported
# next to its daemon's).
SDK_SYSTEMS = ('pyhostd', 'nodehostd')


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
        return self.b.tree.src

    def unmount(self):
        pass


class PassthroughLL(System):
    key = 'pll'

    def mount(self):
        return self._spawn_and_wait(
            [self.b.bin('passthrough_ll'), '-f', '-o',
             'source=%s,cache=always' % self.b.tree.src, self.mnt], self.mnt)


class Passthrough(System):
    key = 'pt'

    def mount(self):
        # The high-level example mirrors "/" (it has no source option), so
        # SRC shows at MNT/SRC.
        return self._spawn_and_wait([self.b.bin('passthrough'), '-f', self.mnt],
                                    self.mnt + self.b.tree.src)


class Fusepy(System):
    key = 'fusepy'

    def mount(self):
        return self._spawn_and_wait(
            [PY, os.path.join(BENCH_DIR, 'fusepy_loopback.py'),
             self.b.tree.src, self.mnt], self.mnt)


class FusepyHostd(System):
    """bench/fusepy_loopback.py with only its fusepy import replaced by
    fusehost's, mounting itself through a fuse-hostd of its own: the port a
    fusepy user makes."""
    key = 'fusepyhostd'
    # FUSE_HOSTD_MOUNT_OPTIONS for the port, which adds them to its FUSE()
    # call's.
    mount_options = None

    def setup(self):
        super().setup()
        d = os.path.join(self.b.work, 'run')
        os.makedirs(d, exist_ok=True)
        self.ctl = os.path.join(d, self.key + '-control.sock')
        if os.path.exists(self.ctl):
            os.unlink(self.ctl)
        self.daemon = RES.spawn([self.b.bin('fuse-hostd'),
                                 '--control_socket=' + self.ctl],
                                self.b.logpath('fuse-hostd-' + self.key))
        wait_for(lambda: os.path.exists(self.ctl), 15,
                 'fuse-hostd control socket', self.daemon)
        self.script = fhlib.port_fusepy_loopback(
            os.path.join(self.b.work, 'run', 'fusepy_loopback_port.py'))

    def mount(self):
        env = dict(os.environ, PYTHONPATH=self.b.py_package,
                   PYTHONUNBUFFERED='1', FUSE_HOSTD_CONTROL_SOCKET=self.ctl)
        env.pop('PYTHONHOME', None)
        env.pop('FUSE_HOSTD_MOUNT_OPTIONS', None)
        if self.mount_options:
            env['FUSE_HOSTD_MOUNT_OPTIONS'] = self.mount_options
        self.proc = RES.spawn([PY, self.script, self.b.tree.src, self.mnt],
                              self.b.logpath(self.key), env=env, cwd='/')
        RES.mounts.append(self.mnt)
        wait_for(lambda: is_mounted(self.mnt), 20, self.key + ' mount',
                 self.proc)
        wait_for(lambda: os.path.isdir(os.path.join(self.mnt, 'tree')), 10,
                 self.key + ' tree visible', self.proc)
        return self.mnt

    def unmount(self):
        if is_mounted(self.mnt):
            run([self.b.bin('fuse-hostctl'), '--control_socket=' + self.ctl,
                 'unmount', self.mnt], check=False, timeout=60)
        super().unmount()


class FusepyWriteBehindHostd(FusepyHostd):
    """The fusepy port, unchanged, with write-behind asked for by whoever
    runs it (write_behind needs default_permissions)."""
    key = 'fusepywbhostd'
    mount_options = 'write_behind,default_permissions'


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
        self.relay_ports = {}  # added latency (ms) -> relay port

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
             'root@127.0.0.1:' + self.b.tree.src, self.mnt], self.mnt)

    def mount(self):
        return self._mount_port(self.port)

    def mount_relay(self, rtt):
        if rtt not in self.relay_ports:
            self.relay_ports[rtt] = self.b.start_relay('sshd', self.port, rtt)
        return self._mount_port(self.relay_ports[rtt])


class Hostd(System):
    """fuse-hostd with a backend serving SRC; subclasses change the backend.
    Each such system has a daemon of its own, so the memory figures of one
    are not mixed with another's cache."""
    key = 'hostd'
    backend_name = 'loopback_fs'   # log names, messages
    daemon_log = 'fuse-hostd'
    daemon_flags = ()
    mount_opts = ''   # options of this system's own, before --hostd-opts

    def backend_cmd(self, listen):
        return [self.b.bin('loopback_fs'), '--listen=' + listen,
                '--root=' + self.b.tree.src]

    def spawn_backend(self, listen, log_name, extra=()):
        return RES.spawn(self.backend_cmd(listen) + list(extra),
                         self.b.logpath(log_name))

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
        self.idle_rss = proc_status(self.daemon_pid(), 'VmRSS')
        self.tcp_backend = None
        self.relay_ports = {}  # added latency (ms) -> relay port
        self.samples = []   # (VmRSS with the tree cached, stats text)
        self.baselines = []  # the same right after each mount
        self.relay_stats = {}  # added latency (ms) -> stats text, last run

    def _start_daemon(self):
        if os.path.exists(self.ctl):
            os.unlink(self.ctl)
        self.daemon = RES.spawn([self.b.bin('fuse-hostd'),
                                 '--control_socket=' + self.ctl] +
                                list(self.daemon_flags),
                                self.b.logpath(self.daemon_log))
        wait_for(lambda: os.path.exists(self.ctl), 15,
                 'fuse-hostd control socket', self.daemon)

    def daemon_pid(self):
        return self.daemon.pid

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

    def _mount_addr(self, addr, transport_opts=''):
        self.ensure_daemon('before mounting %s' % addr)
        args = ['mount', addr, self.mnt]
        opts = ','.join(o for o in (transport_opts, self.mount_opts,
                                    self.b.args.hostd_opts) if o)
        if opts:
            args += ['-o', opts]
        RES.mounts.append(self.mnt)
        self.hostctl(*args)
        wait_for(lambda: is_mounted(self.mnt), 10, 'fuse-hostd mount')
        wait_for(lambda: os.path.isdir(os.path.join(self.mnt, 'tree')), 10,
                 'fuse-hostd tree visible')
        return self.mnt

    def mount(self):
        return self._mount_addr('unix:' + self.backend_sock)

    def backend_tls_args(self, tls):
        """The backend's command-line arguments for mutual TLS with the
        files of Bench.tls_files(), or None if it cannot serve TLS."""
        cert, key = tls['server']
        return ['--tls_cert=' + cert, '--tls_key=' + key,
                '--tls_client_ca=' + tls['ca']]

    def relay_transport(self):
        """(backend arguments, mount options) of the relay rows: mutual
        TLS unless --relay-tls=off or the backend has no TLS (then plain
        TCP, said in the notes)."""
        if self.b.args.relay_tls == 'off':
            return [], 'insecure'
        tls = self.b.tls_files()
        args = self.backend_tls_args(tls)
        if args is None:
            self.b.notes.append('%s relay rows over plain TCP: its backend '
                                'has no TLS' % self.key)
            return [], 'insecure'
        opts = 'tls_ca=%s,tls_server_name=%s,tls_cert=%s,tls_key=%s' % (
            tls['ca'], TLS_NAME, tls['client'][0], tls['client'][1])
        return args, opts

    def mount_relay(self, rtt):
        if self.tcp_backend is None:
            self.tcp_port = free_port()
            extra, self.relay_opts = self.relay_transport()
            self.tcp_backend = self.spawn_backend(
                '127.0.0.1:%d' % self.tcp_port, self.backend_name + '-tcp',
                extra)
            wait_for(lambda: tcp_open(self.tcp_port), 15,
                     self.backend_name + ' on TCP', self.tcp_backend)
        if rtt not in self.relay_ports:
            self.relay_ports[rtt] = self.b.start_relay(self.backend_name,
                                                       self.tcp_port, rtt)
        return self._mount_addr('127.0.0.1:%d' % self.relay_ports[rtt],
                                self.relay_opts)

    def sample_cache(self, baseline=False):
        """Daemon RSS and `fuse-hostctl stats`: right after mounting
        (`baseline`) or while the tree is cached."""
        rss = proc_status(self.daemon_pid(), 'VmRSS')
        (self.baselines if baseline else self.samples).append(
            (rss, self.stats_text()))

    def stats_text(self):
        """`fuse-hostctl stats` of the mount (of all mounts if that
        fails), or None."""
        for args in (['stats', self.mnt], ['stats']):
            r = self.hostctl(*args, check=False)
            if r.returncode == 0:
                return r.stdout.decode(errors='replace')
        return None

    def note_rss(self):
        # The daemon outlives mounts; it may also die: keep the largest seen.
        if self.daemon.poll() is None:
            hwm = proc_status(self.daemon_pid(), 'VmHWM')
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
            'daemon_rss': proc_status(self.daemon_pid(), 'VmRSS'),
            'backend_hwm': proc_status(self.backend.pid, 'VmHWM'),
        }


class KeptHostd(Hostd):
    """hostd with the daemon under its keeper: what journaling every
    mount's node table and handles costs."""
    key = 'kept'
    daemon_log = 'fuse-hostd-kept'
    daemon_flags = ('--supervise',)

    def daemon_pid(self):
        # The keeper's child (its memory figures are the daemon's).
        return fhlib.child_pid(self.daemon.pid) or self.daemon.pid


class SessionHostd(Hostd):
    """hostd with the mount option session: the backend's messages on one
    stream per connection instead of an Execute call each."""
    key = 'shostd'
    daemon_log = 'fuse-hostd-session'
    mount_opts = 'session'


class WriteBehindHostd(Hostd):
    """hostd with write-behind on: what answering changes early saves."""
    key = 'wbhostd'
    daemon_log = 'fuse-hostd-wb'
    mount_opts = 'write_behind'


class WritebackCacheHostd(Hostd):
    """hostd with the mount option writeback_cache: writes gathered in the
    kernel's page cache (and no passthrough)."""
    key = 'wchostd'
    daemon_log = 'fuse-hostd-wc'
    mount_opts = 'writeback_cache'


class UringHostd(Hostd):
    """hostd with the mount option uring: what a queue per CPU saves."""
    key = 'uhostd'
    daemon_log = 'fuse-hostd-uring'
    mount_opts = 'uring'
    enable_uring = '/sys/module/fuse/parameters/enable_uring'

    def setup(self):
        # The kernel offers the rings only with the module parameter set.
        RES.set_param(self.enable_uring, 'Y')
        super().setup()


class PyHostd(Hostd):
    """fuse-hostd + the Python SDK's loopback example, served on a socket
    (the package and the example are copies made by build_binaries)."""
    key = 'pyhostd'
    backend_name = 'python-loopback'
    daemon_log = 'fuse-hostd-py'

    def backend_cmd(self, listen):
        return [PY, os.path.join(self.b.py_examples, 'loopback.py'),
                self.b.tree.src, '--listen', listen]

    def backend_tls_args(self, tls):
        cert, key = tls['server']
        return ['--tls-cert', cert, '--tls-key', key,
                '--tls-client-ca', tls['ca']]

    def spawn_backend(self, listen, log_name, extra=()):
        env = dict(os.environ, PYTHONPATH=self.b.py_package,
                   PYTHONUNBUFFERED='1')
        env.pop('PYTHONHOME', None)
        return RES.spawn(self.backend_cmd(listen) + list(extra),
                         self.b.logpath(log_name), env=env, cwd='/')

    def note_rss(self):
        # Both processes serve this column: the Python backend is reported
        # as its file system process, its daemon next to it.
        super().note_rss()
        hwm = proc_status(self.backend.pid, 'VmHWM') \
            if self.backend.poll() is None else None
        if hwm is not None:
            self.backend_peak = max(getattr(self, 'backend_peak', 0), hwm)


class NodeHostd(PyHostd):
    """fuse-hostd + the Node.js SDK's loopback example (examples/node in
    the work tree, on the npm dependencies scripts/setup.sh installs),
    served on a socket."""
    key = 'nodehostd'
    backend_name = 'node-loopback'
    daemon_log = 'fuse-hostd-node'

    def backend_cmd(self, listen):
        return ['node', os.path.join(REPO_DIR, 'examples', 'node',
                                     'loopback.js'),
                self.b.tree.src, '--listen', listen]

    def backend_tls_args(self, tls):
        return None  # the Node.js SDK serves plain TCP only

    def spawn_backend(self, listen, log_name, extra=()):
        return RES.spawn(self.backend_cmd(listen) + list(extra),
                         self.b.logpath(log_name), cwd='/')


SYSTEM_CLASSES = {c.key: c for c in
                  (Tmpfs, PassthroughLL, Passthrough, Fusepy, FusepyHostd,
                   FusepyWriteBehindHostd,
                   Sshfs, Hostd, SessionHostd, UringHostd, WriteBehindHostd,
                   WritebackCacheHostd,
                   KeptHostd, PyHostd, NodeHostd)}
