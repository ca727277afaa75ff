"""The report: medians of the samples, ratios between systems with PASS/MISS
against the benchmark issue's targets, memory figures, problems, and every
sample, as the Markdown that run.py prints (and writes to --out).
"""

import os
import re
import statistics

from common import REPO, MiB, run
from systems import HOSTD_SYSTEMS, LABELS, SDK_SYSTEMS, SHORT, SYSTEMS
from workloads import WORKLOADS


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
    ('find_names', 'find (names only), after drop_caches', None),
    ('ls_lR', 'ls -lR (warm)', None),
    ('ls_lR_again', 'ls -lR, again at once', None),
    ('cat', 'cat N small files (after drop_caches)', None),
    ('seqread', 'sequential read (after drop_caches)', 'read'),
    ('seqwrite', 'sequential write + fsync', 'write'),
    ('appends', 'appends: N writes of 100 B', None),
    ('untar', 'untar', None),
    ('rm', 'rm -rf of the untarred files', None),
]
# Through the relay, once per added latency (rows WORKLOAD@RTT).
RELAY_ROWS = [
    ('relay_find_first', 'find, first mount', None),
    ('relay_find_dropped', 'find, after drop_caches', None),
    ('relay_ls_lR', 'ls -lR (warm)', None),
    ('relay_cat', 'cat N small files (after drop_caches)', None),
    ('relay_seqread', 'sequential read (after drop_caches)', 'read'),
    ('relay_seqwrite', 'sequential write + fsync', 'relay_write'),
    ('relay_appends', 'appends: N writes of 100 B', None),
    ('relay_untar', 'untar', None),
    ('relay_rm', 'rm -rf of the untarred files', None),
]


def rows_of(b):
    """(row key, base workload, label, bytes) of every row, in order."""
    out = [(wl, wl, label, thr) for wl, label, thr in ROWS]
    for rtt in getattr(b, 'relay_rtts', []):
        out += [('%s@%g' % (wl, rtt), wl, 'relay +%g ms RTT: %s' % (rtt, label),
                 thr) for wl, label, thr in RELAY_ROWS]
    return out

# The ratio columns, (numerator, denominator) of times, each shown when
# both systems ran.
RATIO_COLS = [('hostd', 'pll'), ('hostd', 'tmpfs'), ('shostd', 'pll'),
              ('shostd', 'hostd'), ('uhostd', 'pll'),
              ('uhostd', 'hostd'), ('wbhostd', 'pll'), ('wchostd', 'pll'),
              ('kept', 'hostd'),
              ('pyhostd', 'hostd'),
              ('fusepy', 'hostd'), ('fusepy', 'pyhostd'),
              ('fusepyhostd', 'fusepy'), ('fusepywbhostd', 'fusepy'),
              ('sshfs', 'hostd'),
              ('sshfs', 'uhostd'), ('sshfs', 'wbhostd'), ('sshfs', 'wchostd')]

# workload -> {(numerator, denominator): (kind, threshold)}
#   '<='    time(num)/time(den) <= t
#   '>='    time(num)/time(den) >= t
#   'thr>=' throughput(num)/throughput(den) = time(den)/time(num) >= t
# Walking a tree: the daemon's caches make it faster than passthrough_ll
# (find), or nearly as fast (ls -lR, which also asks extended attributes);
# a Python filesystem through the daemon beats the same one under fusepy.
_PY = {('fusepy', 'hostd'): ('>=', 20), ('fusepy', 'pyhostd'): ('>=', 5),
       ('fusepyhostd', 'fusepy'): ('<=', 0.5)}
_FIND = {**_PY, ('hostd', 'pll'): ('<=', 0.6)}
# The daemon's memory per cached entry (cache, inode table, allocator).
MAX_BYTES_PER_ENTRY = 300
PER_ENTRY_TARGET = '≤ %d B per cached entry' % MAX_BYTES_PER_ENTRY

TARGETS = {
    'find_first': _FIND,
    'find_dropped': _FIND,
    'find_warm': _FIND,
    'find_names': _FIND,
    'ls_lR': {**_PY, ('hostd', 'pll'): ('<=', 1.2)},
    'ls_lR_again': {**_PY, ('hostd', 'pll'): ('<=', 1.2)},
    # With kernel passthrough (the loopbacks hand over their descriptors):
    # file data within 1.5x of the tmpfs itself and at least as fast as
    # passthrough_ll, the Python loopback's as fast as the C++ one's (1.2:
    # noise); cat of small files, which costs an open each, within 1.5x.
    # The fusepy port: half fusepy's time where the work is metadata (cat
    # of small files is mostly opens), no more than fusepy's where it is
    # data.
    'cat': {('hostd', 'pll'): ('<=', 1.5), ('fusepyhostd', 'fusepy'): ('<=', 0.5)},
    'seqread': {('hostd', 'pll'): ('thr>=', 1.0),
                ('hostd', 'tmpfs'): ('<=', 1.5),
                ('pyhostd', 'hostd'): ('<=', 1.2),
                ('fusepyhostd', 'fusepy'): ('<=', 1.0)},
    'seqwrite': {('hostd', 'pll'): ('thr>=', 1.0),
                 ('hostd', 'tmpfs'): ('<=', 1.5),
                 ('pyhostd', 'hostd'): ('<=', 1.2),
                 ('fusepyhostd', 'fusepy'): ('<=', 1.0)},
    # Changes wait for the backend (3x), or are answered by the daemon
    # (write_behind: no slower than passthrough_ll). The fusepy port's, half
    # fusepy's time, with its defaults and with write-behind.
    'untar': {('hostd', 'pll'): ('<=', 3.0), ('wbhostd', 'pll'): ('<=', 1.0),
              ('fusepyhostd', 'fusepy'): ('<=', 0.5),
              ('fusepywbhostd', 'fusepy'): ('<=', 0.5)},
    'rm': {('hostd', 'pll'): ('<=', 1.5), ('wbhostd', 'pll'): ('<=', 1.5),
           ('fusepyhostd', 'fusepy'): ('<=', 0.5),
           ('fusepywbhostd', 'fusepy'): ('<=', 0.5)},
    # Through a link with latency, with TLS: an order of magnitude better
    # than sshfs where caching and fetching ahead can hide the latency,
    # twice as good where data must cross it.
    'relay_find_first': {('sshfs', 'hostd'): ('>=', 10)},
    'relay_find_dropped': {('sshfs', 'hostd'): ('>=', 10)},
    'relay_cat': {('sshfs', 'hostd'): ('>=', 10)},
    'relay_seqread': {('sshfs', 'hostd'): ('>=', 2)},
    'relay_untar': {('sshfs', 'hostd'): ('>=', 2),
                    ('sshfs', 'wbhostd'): ('>=', 2)},
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
    """The whole report, as Markdown text."""
    out = []
    verdicts = []   # (row label, target, value shown, True/False/None)
    header(out.append, b, cmdline)
    table(out.append, b, verdicts)
    memory(out.append, b, verdicts)
    roundtrip_table(out.append, b)
    relay_stats(out.append, b)
    ending(out.append, b, verdicts)
    return '\n'.join(out) + '\n'


def header(w, b, cmdline):
    """Title, command, machine and versions, the tree, notes."""
    a, t = b.args, b.tree
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
    per = t.nfiles // t.ndirs
    w('')
    w('Tree on one tmpfs: %d files of %d B in %d directories (find prints %d '
      'lines); cat reads %d of them; sequential read %d MiB; write %d MiB with '
      'fsync; %d appends of 100 B; tarball of %d files. Relay rows: find over %d directories '
      '(%d files), then the same cat and read, a write of %d MiB with fsync, '
      '%d appends of 100 B, the same untar and rm, through a TCP relay '
      'adding %s ms per round trip (half each way%s; fuse-hostd over %s, sshfs '
      'over SSH). Medians of %d runs, seconds (MB/s for throughput rows); '
      'cap %gs per command.' % (
          t.nfiles, t.file_size, t.ndirs, t.entries, t.ncat, t.read_mib,
          t.write_mib, t.nappends, t.ntar, t.relay_dirs, t.relay_dirs * per,
          t.relay_write_mib, t.relay_nappends,
          ' and '.join('%g' % r for r in getattr(b, 'relay_rtts', [])),
          ''.join('; self-test at %g ms: %s' % kv
                  for kv in getattr(b, 'relay_selftest', {}).items()),
          'mutual TLS' if getattr(a, 'relay_tls', 'off') == 'on'
          else 'plain TCP', a.runs, b.cap))
    for n in b.notes_early:
        w('')
        w('**Note: %s.**' % n)
    if a.hostd_opts:
        w('')
        w('fuse-hostd mount options: `%s`' % a.hostd_opts)


def table(w, b, verdicts):
    """The table of medians and ratios; adds the ratios' verdicts."""
    cap = b.cap
    med = {k: median_of(v) for k, v in b.results.items()}
    cols = [k for k in b.systems_order]
    w('')
    ratio_cols = [(num, den) for num, den in RATIO_COLS
                  if num in cols and den in cols]
    w('| workload | ' + ' | '.join(LABELS[c] for c in cols) +
      ''.join(' | %s / %s' % (SHORT[num], SHORT[den])
              for num, den in ratio_cols) + ' |')
    w('|---' * (1 + len(cols) + len(ratio_cols)) + '|')
    size = {'read': b.tree.read_mib, 'write': b.tree.write_mib,
            'relay_write': b.tree.relay_write_mib}
    for key, wl, label, thr in rows_of(b):
        if wl not in b.workloads:
            continue
        cells = []
        for c in cols:
            samples = b.results.get((c, key))
            if samples is None:
                cells.append('—')
                continue
            m = med.get((c, key))
            if m is None:
                cells.append('err')
            elif thr and m not in (None, float('inf')):
                cells.append('%s (%.0f MB/s)' % (fmt_time(m),
                                                 size[thr] * MiB / 1e6 / m))
            else:
                cells.append(fmt_time(m))
        tgts = TARGETS.get(wl, {})
        for num, den in ratio_cols:
            val, text = fmt_ratio(med.get((num, key)), med.get((den, key)), cap)
            verdict = ''
            if val is not None and (num, den) in tgts:
                verdict, (what, shown, ok) = verdict_of(
                    num, den, *tgts[(num, den)], val, text)
                verdicts.append((label, what, shown, ok))
            cells.append(text + verdict)
        w('| %s | %s |' % (label, ' | '.join(cells)))


def memory(w, b, verdicts):
    """Peak RSS of every file system process; the fuse-hostd daemon's
    memory and its memory per cached entry (a verdict)."""
    w('')

    def peak(k, s):
        if k in SDK_SYSTEMS:
            return '%s %s (its daemon %s)' % (
                LABELS[k], mib(getattr(s, 'backend_peak', None)),
                mib(s.peak_rss))
        return '%s %s' % (LABELS[k], mib(s.peak_rss))
    w('Peak RSS (VmHWM) of each file system process: ' + ', '.join(
        peak(k, s) for k, s in b.systems.items()
        if k not in ('tmpfs', 'hostd')) + (
        ' (sshfs: the sshfs client only, not sshd/sftp-server).'
        if 'sshfs' in b.systems else '.'))
    if 'hostd' not in b.systems:
        return
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
        ok = per_e <= MAX_BYTES_PER_ENTRY
        verdicts.append(('daemon memory', PER_ENTRY_TARGET, '%.0f B' % per_e,
                         ok))
        w('')
        w('Daemon memory per cached entry: RSS growth from the fresh mount '
          'to the listed tree over the entries the cache gained (`fuse-hostctl '
          'stats`), the largest of %d runs: **%.0f B** — %s (≤ %d B). '
          'This counts the whole daemon: cache, inode table, allocator.' % (
              len(per_entry), per_e, 'PASS' if ok else 'MISS',
              MAX_BYTES_PER_ENTRY))
    if rss and h.idle_rss and not per_entry:
        delta = statistics.median(rss) - h.idle_rss
        line = ('Daemon RSS with the tree just listed (after ls -lR, median '
                'of %d samples): %s, %+.1f MiB over idle.' % (
                    len(rss), mib(statistics.median(rss)), delta / MiB))
        if entries:
            per_e = delta / entries
            ok = per_e <= MAX_BYTES_PER_ENTRY
            line += (' `fuse-hostctl stats` reports %d cached entries: '
                     '%.0f B per cached entry (RSS growth / entries) — %s '
                     '(≤ %d B).' % (entries, per_e, 'PASS' if ok else 'MISS',
                                    MAX_BYTES_PER_ENTRY))
            verdicts.append(('daemon memory', PER_ENTRY_TARGET,
                             '%.0f B' % per_e, ok))
        else:
            line += (' `fuse-hostctl stats` %s, so the cached-entry count is '
                     'unknown; RSS growth per tree entry would be %.0f B '
                     '(%d entries), which only means something once the '
                     'daemon caches them all.' % (
                         'printed no entry count' if texts else
                         'is not available', delta / b.tree.entries,
                         b.tree.entries))
            verdicts.append(('daemon memory', PER_ENTRY_TARGET,
                             'unknown (no entry count)', None))
        w('')
        w(line)
    if texts:
        stats_block(w, 'fuse-hostctl stats (last sample)', texts[-1])


def stats_block(w, summary, text):
    """`text` verbatim, folded under `summary`."""
    w('')
    w('<details><summary>%s</summary>' % summary)
    w('')
    w('```')
    w(text.rstrip())
    w('```')
    w('</details>')


def roundtrip_table(w, b):
    """The backend round trip itself (bench/roundtrip.py), per SDK."""
    if not b.roundtrip:
        return
    w('')
    w('## The backend round trip')
    w('')
    w('One message at a time, straight to each SDK\'s loopback on a Unix '
      'socket (no kernel, no daemon), %d calls per getattr row, a tenth of '
      'that for reads; µs.' % b.args.roundtrip_calls)
    w('')
    w('| SDK | message | p50 | p90 | p99 |')
    w('|---|---|---|---|---|')
    for sdk, label, p in b.roundtrip:
        cells = ['%.0f' % x for x in p] if p else ['failed'] * 3
        w('| %s | %s | %s |' % (sdk, label, ' | '.join(cells)))


def relay_stats(w, b):
    """The daemon's own counts after each system's relay rows."""
    for k, sysm in b.systems.items():
        for rtt, text in sorted(getattr(sysm, 'relay_stats', {}).items()):
            if not text:
                continue
            stats_block(w, 'fuse-hostctl stats of %s after the relay rows '
                        'at +%g ms (last run)' % (LABELS[k], rtt), text)


def ending(w, b, verdicts):
    """The targets' verdicts, the problems met, and every sample."""
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
    def order(kv):
        (k, key), _ = kv
        wl, _, rtt = key.partition('@')
        return (WORKLOADS.index(wl), float(rtt or 0), SYSTEMS.index(k))
    for (k, wl), v in sorted(b.results.items(), key=order):
        w('- %s / %s: %s' % (wl, LABELS[k], ', '.join(
            'cap' if x is None else x if x == 'err' else '%.3f' % x for x in v)))
    w('</details>')


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
