'use strict'
// The scripted filesystem of the SDK conformance cases
// (tests/conformance/README.md), written against this SDK's API: fuse-native's
// callback operations, plus the fusehost extensions the cases need
// (renameat2, utimensNs, readdirFrom, lock, flock, fallocate, copyFileRange,
// lseek). Stats carry BigInt nanosecond times (atimeNs, ...), as Node's
// BigIntStats do, since the cases compare times to the nanosecond.

const Fuse = require('../')

const F_GETLK = 5
const F_UNLCK = 2
const RENAME_NOREPLACE = 1
const NS = 1000000000n

function ns (t) {
  return BigInt(t && t.sec ? t.sec : 0) * NS + BigInt(t && t.nsec ? t.nsec : 0)
}

function timespec (value) {
  return { sec: (value / NS).toString(), nsec: Number(value % NS) }
}

// The stat object of a case's Attr (protobufjs object, longs as strings).
function statOf (attr) {
  return {
    ino: Number(attr.ino || 0),
    mode: attr.mode || 0,
    nlink: attr.nlink || 0,
    uid: attr.uid || 0,
    gid: attr.gid || 0,
    rdev: Number(attr.rdev || 0),
    size: Number(attr.size || 0),
    blocks: Number(attr.blocks || 0),
    blksize: attr.blksize || 0,
    atimeNs: ns(attr.atime),
    mtimeNs: ns(attr.mtime),
    ctimeNs: ns(attr.ctime)
  }
}

// Operations a case's `unimplemented` name covers.
const COVERS = {
  readdir: ['readdir', 'readdirFrom'],
  rename: ['rename', 'renameat2'],
  utimens: ['utimens', 'utimensNs'],
  truncate: ['truncate', 'ftruncate'],
  copy_file_range: ['copyFileRange']
}

// The operations object of `spec` (a ScriptedFileSystem as a plain object:
// bytes as Buffers, 64-bit numbers as strings).
function scripted (spec) {
  const order = (spec.node || []).map((n) => n.path.toString('utf8'))
  const nodes = new Map()
  for (const n of spec.node || []) {
    nodes.set(n.path.toString('utf8'), {
      attr: JSON.parse(JSON.stringify(n.attr || {})),
      data: Buffer.from(n.data || []),
      target: Buffer.from(n.target || []),
      xattr: (n.xattr || []).map((x) => ({ name: x.name.toString('utf8'), value: Buffer.from(x.value || []) })),
      fh: Number.isSafeInteger(Number(n.fh || 0)) ? Number(n.fh || 0) : BigInt(n.fh),
      absent: Boolean(n.absent)
    })
  }
  const failures = spec.failure || []

  // The scripted errno (negative, fuse-native's) of `op` naming one of
  // `paths`, or 0.
  function failure (op, ...paths) {
    for (const f of failures) {
      if ((f.op || '') !== '' && f.op !== op) continue
      if (paths.some((p) => p !== null && p !== undefined && Buffer.from(p, 'utf8').equals(f.path || Buffer.alloc(0)))) {
        return -f.posix_errno
      }
    }
    return 0
  }

  function existing (p) {
    const n = nodes.get(p)
    return n && !n.absent ? n : null
  }

  // A status operation: the scripted failure, else ENOENT for a missing
  // node, else `fn(node)`'s answer (0 by default).
  function onNode (op, p, cb, fn = () => 0) {
    const err = failure(op, p)
    if (err) return process.nextTick(cb, err)
    const n = existing(p)
    if (!n) return process.nextTick(cb, Fuse.ENOENT)
    const answer = fn(n)
    return Array.isArray(answer) ? process.nextTick(cb, ...answer) : process.nextTick(cb, answer)
  }

  function make (op, p, cb) {
    const err = failure(op, p)
    if (err) return cb(err)
    const n = nodes.get(p)
    if (!n) return cb(Fuse.ENOENT)
    if (!n.absent) return cb(Fuse.EEXIST)
    n.absent = false
    cb(0)
  }

  function children (dir) {
    const out = []
    for (const p of order) {
      const n = nodes.get(p)
      if (n.absent || p === '/') continue
      const slash = p.lastIndexOf('/')
      if ((p.slice(0, slash) || '/') !== dir) continue
      out.push([p.slice(slash + 1), n])
    }
    return out
  }

  function listing (p, offset, cb) {
    const err = failure('readdir', p)
    if (err) return cb(err)
    if (!existing(p)) return cb(Fuse.ENOENT)
    const names = []
    const stats = []
    const cookies = []
    children(p).forEach(([name, n], i) => {
      if (i + 1 <= offset) return
      names.push(Buffer.from(name, 'utf8'))
      const st = statOf(n.attr)
      if (spec.readdir_lists_xattrs) st.xattrNames = n.xattr.map((x) => x.name)
      stats.push(st)
      cookies.push(spec.resumable_readdir ? i + 1 : 0)
    })
    cb(0, names, stats, cookies)
  }

  const ops = {
    getattr: (p, cb) => onNode('getattr', p, cb, (n) => [0, statOf(n.attr)]),
    readlink: (p, cb) => onNode('readlink', p, cb, (n) => [0, n.target]),
    mknod: (p, mode, dev, cb) => make('mknod', p, cb),
    mkdir: (p, mode, cb) => make('mkdir', p, cb),
    symlink: (target, p, cb) => {
      const err = failure('symlink', target)
      return err ? cb(err) : make('symlink', p, cb)
    },
    link: (src, dest, cb) => {
      const err = failure('link', src)
      if (err) return cb(err)
      if (!existing(src)) return cb(Fuse.ENOENT)
      make('link', dest, cb)
    },
    unlink: (p, cb) => onNode('unlink', p, cb, (n) => { n.absent = true; return 0 }),
    rmdir: (p, cb) => onNode('rmdir', p, cb, (n) => { n.absent = true; return 0 }),
    renameat2: (src, dest, flags, cb) => {
      const err = failure('rename', src, dest)
      if (err) return cb(err)
      if (flags !== 0 && flags !== RENAME_NOREPLACE) return cb(Fuse.EINVAL)
      const old = existing(src)
      if (!old) return cb(Fuse.ENOENT)
      if (src === dest) return cb(0)
      const target = nodes.get(dest)
      if (!target) return cb(Fuse.ENOENT)
      if (flags === RENAME_NOREPLACE && !target.absent) return cb(Fuse.EEXIST)
      nodes.set(dest, { ...old, absent: false })
      old.absent = true
      cb(0)
    },
    chmod: (p, mode, cb) => onNode('chmod', p, cb, (n) => {
      n.attr.mode = (n.attr.mode & 0o170000) | (mode & 0o7777)
      return 0
    }),
    chown: (p, uid, gid, cb) => onNode('chown', p, cb, (n) => {
      if (uid !== -1) n.attr.uid = uid
      if (gid !== -1) n.attr.gid = gid
      return 0
    }),
    truncate: (p, size, cb) => onNode('truncate', p, cb, (n) => {
      const data = Buffer.alloc(size)
      n.data.copy(data, 0, 0, Math.min(size, n.data.length))
      n.data = data
      n.attr.size = String(size)
      return 0
    }),
    utimensNs: (p, atime, mtime, cb) => onNode('utimens', p, cb, (n) => {
      if (atime !== null) n.attr.atime = timespec(atime)
      if (mtime !== null) n.attr.mtime = timespec(mtime)
      return 0
    }),
    open: (p, flags, cb) => onNode('open', p, cb, (n) => [0, n.fh]),
    opendir: (p, flags, cb) => onNode('opendir', p, cb, (n) => [0, n.fh]),
    create: (p, mode, cb) => make('create', p, (err) => err ? cb(err) : onNode('create', p, cb, (n) => [0, n.fh])),
    read: (p, fd, buf, len, pos, cb) => onNode('read', p, cb, (n) => {
      const rest = n.data.subarray(Math.min(pos, n.data.length))
      const copied = rest.copy(buf, 0, 0, Math.min(len, rest.length))
      return spec.read_ignores_size ? rest.length : copied
    }),
    write: (p, fd, buf, len, pos, cb) => onNode('write', p, cb, (n) => {
      const end = Math.max(n.data.length, pos + len)
      const data = Buffer.alloc(end)
      n.data.copy(data)
      buf.copy(data, pos, 0, len)
      n.data = data
      n.attr.size = String(end)
      return len + (spec.overclaim || 0)
    }),
    statfs: (p, cb) => onNode('statfs', p, cb, () => {
      const st = {}
      for (const [k, v] of Object.entries(spec.statfs || {})) st[k] = Number(v)
      return [0, st]
    }),
    flush: (p, fd, cb) => onNode('flush', p, cb),
    release: (p, fd, cb) => onNode('release', p, cb),
    fsync: (p, datasync, fd, cb) => onNode('fsync', p, cb),
    releasedir: (p, fd, cb) => onNode('releasedir', p, cb),
    fsyncdir: (p, datasync, fd, cb) => onNode('fsyncdir', p, cb),
    access: (p, mode, cb) => onNode('access', p, cb),
    setxattr: (p, name, value, position, flags, cb) => onNode('setxattr', p, cb, (n) => {
      const x = n.xattr.find((e) => e.name === name)
      if (x) x.value = Buffer.from(value)
      else n.xattr.push({ name, value: Buffer.from(value) })
      return 0
    }),
    getxattr: (p, name, position, cb) => onNode('getxattr', p, cb, (n) => {
      const x = n.xattr.find((e) => e.name === name)
      return x ? [0, x.value] : Fuse.ENODATA
    }),
    listxattr: (p, cb) => onNode('listxattr', p, cb, (n) => [0, n.xattr.map((x) => x.name)]),
    removexattr: (p, name, cb) => onNode('removexattr', p, cb, (n) => {
      const i = n.xattr.findIndex((e) => e.name === name)
      if (i < 0) return Fuse.ENODATA
      n.xattr.splice(i, 1)
      return 0
    }),
    readdir: (p, cb) => listing(p, 0, (err, names, stats) => err ? cb(err) : cb(0, names, stats)),
    lock: (p, fd, cmd, lk, cb) => onNode('lock', p, cb, () => {
      if (cmd === F_GETLK) lk.type = F_UNLCK
      return 0
    }),
    flock: (p, fd, op, cb) => onNode('flock', p, cb),
    fallocate: (p, fd, mode, offset, length, cb) => onNode('fallocate', p, cb),
    copyFileRange: (pIn, fdIn, offIn, pOut, fdOut, offOut, length, flags, cb) => {
      const err = failure('copy_file_range', pIn, pOut)
      if (err) return process.nextTick(cb, err)
      process.nextTick(cb, length + (spec.overclaim || 0))
    },
    lseek: (p, fd, offset, whence, cb) => onNode('lseek', p, cb, () => [0, offset]),
    // Size and direction from the command number, as a filesystem serving
    // a real command knows them: what is read back is each byte passed in
    // plus one; the result is the argument's low byte.
    ioctl: (p, fd, cmd, arg, flags, data, cb) => {
      const err = failure('ioctl', p)
      if (err) return process.nextTick(cb, err)
      const size = (cmd >>> 16) & 0x3fff
      if ((cmd >>> 30) & 2) {
        for (let i = 0; i < size && i < data.length; i++) data[i] = (data[i] + 1) % 256
      }
      process.nextTick(cb, arg % 256)
    }
  }
  if (spec.resumable_readdir) {
    ops.readdirFrom = (p, fd, offset, cb) => listing(p, offset, cb)
  }
  for (const name of spec.unimplemented || []) {
    for (const op of COVERS[name] || [name]) delete ops[op]
  }
  return ops
}

module.exports = { scripted }
