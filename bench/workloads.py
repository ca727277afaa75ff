"""The workloads: the tree they run over, made once on a tmpfs of the
bench's own, and the commands of one run on one system, in order, each
timed by Bench.timed. bench/README.md says what each does and in which
cache state.
"""

import os
import resource
import shutil

from common import RES, MiB, drop_caches, log, run

RELAY_WORKLOADS = ['relay_find_first', 'relay_find_dropped', 'relay_ls_lR',
                   'relay_cat', 'relay_seqread', 'relay_seqwrite',
                   'relay_appends', 'relay_untar', 'relay_rm']
WORKLOADS = ['find_first', 'find_dropped', 'find_warm', 'find_names', 'ls_lR',
             'ls_lR_again', 'cat',
             'seqread', 'seqwrite', 'appends', 'untar', 'rm'] + RELAY_WORKLOADS
GROUPS = {
    'find': ['find_first', 'find_dropped', 'find_warm', 'find_names'],
    'meta': ['find_first', 'find_dropped', 'find_warm', 'find_names',
             'ls_lR', 'ls_lR_again'],
    'io': ['cat', 'seqread', 'seqwrite', 'appends'],
    'tar': ['untar', 'rm'],
    'relay': RELAY_WORKLOADS,
    'relayfind': ['relay_find_first', 'relay_find_dropped'],
    'relaywrite': ['relay_seqwrite', 'relay_appends'],
}


class Tree:
    """The source tree every system serves: its sizes (from the options)
    and, once made, the files the workloads name."""

    def __init__(self, args, work):
        self.tmpfs = os.path.join(work, 'tmpfs')
        self.src = os.path.join(self.tmpfs, 'src')
        self.tarball = os.path.join(self.tmpfs, 'untar.tar')
        q = args.quick
        self.nfiles = args.files or (2000 if q else 20000)
        # 200 files a directory (100 directories at least): 20,000 files
        # are 100 x 200, 200,000 are 1,000 x 200.
        self.ndirs = 20 if q else max(100, self.nfiles // 200)
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        keeps_fds = bool({'pll', 'pt'} & set(args.only))
        if keeps_fds and self.nfiles + self.ndirs + 500 > fd_limit:
            # passthrough_ll holds an O_PATH fd for every inode it knows.
            cut = (fd_limit - self.ndirs - 500) // self.ndirs * self.ndirs
            self.notes = ['tree cut from %d to %d files: the open-file '
                          'limit here is %d and cannot be raised '
                          '(no CAP_SYS_RESOURCE), and passthrough_ll '
                          'keeps one fd per inode' % (
                              self.nfiles, cut, fd_limit)]
            self.nfiles = cut
        else:
            self.notes = []
        self.nfiles = max(1, self.nfiles // self.ndirs) * self.ndirs
        self.file_size = 1024
        self.ncat = 200 if q else 1000
        self.read_mib = 64 if q else 512
        self.write_mib = 32 if q else 256
        self.ntar = 500 if q else 2000
        # 100-byte writes, each its own write(2), as a log appends.
        self.nappends = 2000 if q else 20000
        # Through the relay: a write and appends each round trip may cost.
        self.relay_write_mib = 16 if q else 64
        self.relay_nappends = 200 if q else 2000
        self.relay_dirs = max(1, min(self.ndirs, self.ndirs * (
            args.relay_files or self.nfiles) // self.nfiles))

    def make(self):
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
        self.entries = self.nfiles + self.ndirs + 1
        if self.relay_dirs == self.ndirs:
            self.relay_subset, self.relay_entries = ['tree'], self.entries
        else:
            self.relay_subset = ['tree/d%03d' % d
                                 for d in range(self.relay_dirs)]
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


def run_main_workloads(b, s, r):
    """Run r of the main workloads on system s: mount, time each, unmount."""
    t = b.tree
    sysk = s.key
    base = s.mount()
    tree = os.path.join(base, 'tree')
    find = ['find', tree, '-printf', '%s\n']
    n = t.entries
    # The daemon's memory per cached entry, from samples around the
    # listings; without them (e.g. --workloads tar) there is nothing to
    # divide by.
    sample = sysk == 'hostd' and any(
        b.want(wl) for wl in ('find_first', 'find_dropped', 'find_warm',
                              'find_names', 'ls_lR', 'ls_lR_again'))
    if sample:
        s.sample_cache(baseline=True)  # mounted, nothing listed yet
    b.timed(sysk, 'find_first', find, expect_lines=n)
    b.timed(sysk, 'find_dropped', find, expect_lines=n, drop=True)
    b.timed(sysk, 'find_warm', find, expect_lines=n)
    # A find that looks at no file (-name, -type, or none): names and types
    # are all it needs of a listing.
    b.timed(sysk, 'find_names', ['find', tree], expect_lines=n, drop=True)
    b.timed(sysk, 'ls_lR', ['ls', '-lR', tree])
    # What the kernel kept from the first (ACLs, with FUSE_CAP_POSIX_ACL)
    # and what ls learnt of the mount are used the second time.
    b.timed(sysk, 'ls_lR_again', ['ls', '-lR', tree])
    if sample:
        s.sample_cache()
    b.timed(sysk, 'cat', ['cat'] + [os.path.join(base, f)
                                    for f in t.cat_files], drop=True)
    b.timed(sysk, 'seqread', ['dd', 'if=' + os.path.join(base, 'big.bin'),
                              'of=/dev/null', 'bs=1M'], drop=True)
    scratch = os.path.join(base, 'scratch', '%s-%d' % (sysk, r))
    os.mkdir(scratch)
    wfile = os.path.join(scratch, 'write.bin')
    b.timed(sysk, 'seqwrite', ['dd', 'if=/dev/zero', 'of=' + wfile,
                               'bs=1M', 'count=%d' % t.write_mib,
                               'conv=fsync'])
    if os.path.exists(wfile):
        os.unlink(wfile)
    afile = os.path.join(scratch, 'appended.log')
    b.timed(sysk, 'appends', ['dd', 'if=/dev/zero', 'of=' + afile, 'bs=100',
                              'count=%d' % t.nappends])
    if os.path.exists(afile):
        os.unlink(afile)
    dest = os.path.join(scratch, 'untar')
    os.mkdir(dest)
    # From dropped caches: passthrough_ll holds a descriptor for every inode
    # the kernel knows, and the listed tree and the untarred files together
    # would pass the open-file limit the tree was cut to (without a
    # workload that drops them in between, such as cat).
    b.timed(sysk, 'untar', ['tar', 'xf', t.tarball, '-C', dest], drop=True)
    if b.want('untar') or b.want('rm'):
        if not b.want('untar'):  # rm alone still needs the files
            drop_caches()
            run(['tar', 'xf', t.tarball, '-C', dest])
        b.timed(sysk, 'rm', ['rm', '-rf', os.path.join(dest, 'pkg')])
    shutil.rmtree(scratch, ignore_errors=True)
    s.unmount()


def run_relay_workloads(b, s, rtt):
    """The workloads through the relay adding `rtt` ms, on system s (sshfs
    or fuse-hostd), recorded as WORKLOAD@RTT: finds over the relay's part
    of the tree, then the main workloads' reads and writes."""
    t = b.tree
    base = s.mount_relay(rtt)

    def key(wl):
        return '%s@%g' % (wl, rtt)
    find = ['find'] + [os.path.join(base, d) for d in t.relay_subset] + \
        ['-printf', '%s\n']
    n = t.relay_entries
    b.timed(s.key, key('relay_find_first'), find, expect_lines=n)
    b.timed(s.key, key('relay_find_dropped'), find, expect_lines=n, drop=True)
    b.timed(s.key, key('relay_ls_lR'),
            ['ls', '-lR'] + [os.path.join(base, d) for d in t.relay_subset])
    b.timed(s.key, key('relay_cat'),
            ['cat'] + [os.path.join(base, f) for f in t.cat_files], drop=True)
    b.timed(s.key, key('relay_seqread'),
            ['dd', 'if=' + os.path.join(base, 'big.bin'), 'of=/dev/null',
             'bs=1M'], drop=True)
    if b.want('relay_seqwrite') or b.want('relay_appends'):
        written = os.path.join(base, 'scratch', 'relay-w-%s-%g' % (s.key, rtt))
        shutil.rmtree(written, ignore_errors=True)
        os.mkdir(written)
        b.timed(s.key, key('relay_seqwrite'),
                ['dd', 'if=/dev/zero', 'of=' + os.path.join(written, 'w.bin'),
                 'bs=1M', 'count=%d' % t.relay_write_mib, 'conv=fsync'])
        b.timed(s.key, key('relay_appends'),
                ['dd', 'if=/dev/zero', 'of=' + os.path.join(written, 'a.log'),
                 'bs=100', 'count=%d' % t.relay_nappends])
        shutil.rmtree(written, ignore_errors=True)
    stats = None
    if b.want('relay_untar') or b.want('relay_rm'):
        name = os.path.join('scratch', 'relay-%s-%g' % (s.key, rtt))
        scratch = os.path.join(base, name)
        shutil.rmtree(scratch, ignore_errors=True)
        os.mkdir(scratch)
        b.timed(s.key, key('relay_untar'), ['tar', 'xf', t.tarball, '-C',
                                            scratch])
        untarred = b.want('relay_untar') and not b.capped_before(
            s.key, key('relay_untar'))
        if b.want('relay_rm') and not untarred:
            # rm alone, or after an untar that went past the cap (so every
            # system removes the same files): the tree is made in the
            # backing directory and seen through a fresh mount.
            if b.want('relay_untar'):
                note = ('%s relay rm@%g: its untar went past the cap, so it '
                        'removed a tree made beside the mount, through a '
                        'fresh mount' % (s.key, rtt))
                if note not in b.notes:
                    b.notes.append(note)
            run(['tar', 'xf', t.tarball, '-C', os.path.join(t.src, name)])
            if hasattr(s, 'relay_stats'):
                stats = s.stats_text()
            s.unmount()
            base = s.mount_relay(rtt)
            scratch = os.path.join(base, name)
        b.timed(s.key, key('relay_rm'),
                ['rm', '-rf', os.path.join(scratch, 'pkg')])
        shutil.rmtree(scratch, ignore_errors=True)
    if hasattr(s, 'relay_stats'):
        # What the daemon did for the relay rows: messages, ops per
        # message, cache hits, listings fetched ahead (before a fresh mount
        # for rm, if there was one).
        s.relay_stats[rtt] = stats if stats is not None else s.stats_text()
    s.unmount()
