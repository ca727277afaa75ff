'use strict'
// The system calls a loopback needs that Node's fs module does not offer:
// the l*xattr family, mknodat (FIFOs, sockets, devices), renameat2 with
// flags, utimensat with nanoseconds and UTIME_OMIT, fallocate, and lseek
// with SEEK_DATA / SEEK_HOLE.
//
// They are made by one long-lived perl process (perl-base is part of every
// Debian system) through perl's syscall(): no native addon. Requests go to
// its stdin one per line, answers come back in the same order, one per
// line: the errno (0 for success) and the result. A process per call would
// cost several milliseconds each (ls -l asks every file for its ACL); the
// coprocess costs a pipe round trip. Open files are reached through
// /proc/PID/fd/N, which opens the very file a descriptor holds, even when
// it has no name any more.

const { spawn } = require('child_process')
const os = require('os')

// Linux system call numbers by architecture (asm/unistd.h).
const NUMBERS = {
  x64: { lsetxattr: 189, lgetxattr: 192, llistxattr: 195, lremovexattr: 198, mknodat: 259, utimensat: 280, fallocate: 285, renameat2: 316, lseek: 8 },
  arm64: { lsetxattr: 6, lgetxattr: 9, llistxattr: 12, lremovexattr: 15, mknodat: 33, utimensat: 88, fallocate: 47, renameat2: 276, lseek: 62 }
}[os.arch()]

const EIO = 5
const ENOSYS = 38
const UTIME_OMIT = (1 << 30) - 2
const XATTR_MAX = 65536

function program (n) {
  // Every argument arrives hex-encoded (any bytes, no tabs or newlines);
  // the answer is "ERRNO<TAB>HEX RESULT". errno is read right after the
  // call, before anything else can change it.
  return `
$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my ($op, @a) = map { pack('H*', $_) } split(/\\t/, $line, -1);
  my ($r, $e, $out) = (-1, ${ENOSYS}, '');
  if ($op eq 'lsetxattr') {
    $r = syscall(${n.lsetxattr}, $a[0], $a[1], $a[2], length($a[2]), $a[3] + 0); $e = $! + 0;
  } elsif ($op eq 'lgetxattr') {
    my $b = "\\0" x ${XATTR_MAX};
    $r = syscall(${n.lgetxattr}, $a[0], $a[1], $b, ${XATTR_MAX}); $e = $! + 0;
    $out = substr($b, 0, $r) if $r >= 0;
  } elsif ($op eq 'llistxattr') {
    my $b = "\\0" x ${XATTR_MAX};
    $r = syscall(${n.llistxattr}, $a[0], $b, ${XATTR_MAX}); $e = $! + 0;
    $out = substr($b, 0, $r) if $r >= 0;
  } elsif ($op eq 'llistxattr_many') {
    # One answer for many paths (a whole listing): per path its errno and
    # the length of its names, 32 bits each, then the names.
    my $b = "\\0" x ${XATTR_MAX};
    $r = 0; $e = 0;
    for my $p (@a) {
      my $n = syscall(${n.llistxattr}, $p, $b, ${XATTR_MAX});
      $out .= $n >= 0 ? pack('NN', 0, $n) . substr($b, 0, $n) : pack('NN', ($! + 0) || ${EIO}, 0);
    }
  } elsif ($op eq 'lremovexattr') {
    $r = syscall(${n.lremovexattr}, $a[0], $a[1]); $e = $! + 0;
  } elsif ($op eq 'mknodat') {
    $r = syscall(${n.mknodat}, -100, $a[0], $a[1] + 0, $a[2] + 0); $e = $! + 0;
  } elsif ($op eq 'renameat2') {
    $r = syscall(${n.renameat2}, -100, $a[0], -100, $a[1], $a[2] + 0); $e = $! + 0;
  } elsif ($op eq 'utimensat') {
    my $t = pack('q4', $a[1], $a[2], $a[3], $a[4]);
    $r = syscall(${n.utimensat}, -100, $a[0], $t, 0x100); $e = $! + 0;
  } elsif ($op eq 'fallocate' || $op eq 'lseek') {
    if (open(my $fh, $op eq 'fallocate' ? '+<' : '<', $a[0])) {
      if ($op eq 'fallocate') {
        $r = syscall(${n.fallocate}, fileno($fh), $a[1] + 0, $a[2] + 0, $a[3] + 0); $e = $! + 0;
      } else {
        $r = syscall(${n.lseek}, fileno($fh), $a[1] + 0, $a[2] + 0); $e = $! + 0;
        $out = $r if $r >= 0;
      }
      close($fh);
    } else {
      $e = $! + 0;
    }
  }
  print(($r == -1 ? ($e || ${EIO}) : 0), "\\t", unpack('H*', $out), "\\n");
}
`
}

let child = null
let pending = [] // { resolve, reject } in request order
let buffered = ''

function start () {
  child = spawn('perl', ['-e', program(NUMBERS)], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdout.setEncoding('latin1')
  child.stdout.on('data', (text) => {
    buffered += text
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      const [errno, hex] = line.split('\t')
      const waiter = pending.shift()
      if (!waiter) continue
      if (Number(errno)) waiter.reject(-Number(errno))
      else waiter.resolve(Buffer.from(hex || '', 'hex'))
    }
  })
  const fail = () => {
    const waiting = pending
    pending = []
    child = null
    buffered = ''
    for (const w of waiting) w.reject(-EIO)
  }
  child.on('error', fail)
  child.on('exit', fail)
  // The coprocess never keeps the program alive by itself.
  child.unref()
  child.stdin.unref && child.stdin.unref()
  child.stdout.unref && child.stdout.unref()
}

// Resolves to the result bytes; rejects with a negative errno
// (fuse-native's failure value).
function call (op, ...args) {
  if (!NUMBERS) return Promise.reject(-ENOSYS) // an architecture not listed
  if (child === null) start()
  return new Promise((resolve, reject) => {
    pending.push({ resolve, reject })
    const hex = [op, ...args].map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8')).toString('hex'))
    child.stdin.write(hex.join('\t') + '\n')
  })
}

// llistxattr's answer, NUL-terminated names, as Buffers.
function splitNames (b) {
  const names = []
  let start = 0
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0) {
      if (i > start) names.push(b.subarray(start, i))
      start = i + 1
    }
  }
  return names
}

function fdPath (fd) {
  return `/proc/${process.pid}/fd/${fd}`
}

module.exports = {
  lsetxattr: (path, name, value, flags) => call('lsetxattr', path, name, Buffer.from(value), flags).then(() => {}),
  // The value; rejects with -ENODATA when there is none.
  lgetxattr: (path, name) => call('lgetxattr', path, name),
  // The names, as Buffers (any bytes).
  llistxattr: (path) => call('llistxattr', path).then(splitNames),
  // The names of many paths in one round trip to the coprocess: for each
  // path, its names or null where llistxattr failed (the file is gone, its
  // filesystem has no xattrs).
  llistxattrMany: (paths) => paths.length === 0
    ? Promise.resolve([])
    : call('llistxattr_many', ...paths).then((b) => {
      const lists = []
      let at = 0
      while (at + 8 <= b.length && lists.length < paths.length) {
        const errno = b.readUInt32BE(at)
        const length = b.readUInt32BE(at + 4)
        at += 8
        lists.push(errno ? null : splitNames(b.subarray(at, at + length)))
        at += length
      }
      if (lists.length !== paths.length) throw -EIO
      return lists
    }),
  lremovexattr: (path, name) => call('lremovexattr', path, name).then(() => {}),
  // `dev` as the kernel encodes it (what FUSE's mknod carries).
  mknod: (path, mode, dev) => call('mknodat', path, mode, dev).then(() => {}),
  renameat2: (src, dest, flags) => call('renameat2', src, dest, flags).then(() => {}),
  // Times as BigInt nanoseconds, null to leave one unchanged; never
  // follows a symlink at `path`.
  utimensat: (path, atime, mtime) => {
    const parts = (t) => t === null ? [0, UTIME_OMIT] : [t / 1000000000n, t % 1000000000n]
    return call('utimensat', path, ...parts(atime), ...parts(mtime)).then(() => {})
  },
  fallocate: (fd, mode, offset, length) => call('fallocate', fdPath(fd), mode, offset, length).then(() => {}),
  // The offset lseek answers for SEEK_DATA / SEEK_HOLE.
  lseek: (fd, offset, whence) => call('lseek', fdPath(fd), offset, whence).then((b) => Number(b.toString())),
  stop: () => { if (child) child.kill() }
}
