'use strict'
// fuse-native's API as this package offers it, without mounting: the errno
// constants, the options, how operations may answer (callback, async,
// thrown errors, timeouts), fuse-native's defaults for missing operations,
// and Fuse.context() inside an operation. Mounting is tested by the
// integration suite (tests/integration/test_node_sdk.py).

const test = require('node:test')
const assert = require('node:assert')
const os = require('os')

const Fuse = require('../')
const { invoke, timeoutFor } = require('../lib/invoke')
const { mountOptions } = require('../lib/control')
const { Bound } = require('../lib/bound')
const { Dispatcher } = require('../lib/dispatch')

test('errno constants are negative Linux values, as fuse-native has them', () => {
  assert.strictEqual(Fuse.EPERM, -1)
  assert.strictEqual(Fuse.ENOENT, -2)
  assert.strictEqual(Fuse.EIO, -5)
  assert.strictEqual(Fuse.EBADF, -9)
  assert.strictEqual(Fuse.ENOSYS, -38)
  assert.strictEqual(Fuse.ENODATA, -61)
  assert.strictEqual(Fuse.ENOTCONN, -107)
  assert.strictEqual(Fuse.EDEADLOCK, -35)
  assert.strictEqual(Fuse.EMEDIUMTYPE, -124)
  for (const [name, value] of Object.entries(os.constants.errno)) assert.strictEqual(Fuse[name], -value, name)
  const fuse = new Fuse('/mnt', {})
  assert.strictEqual(fuse.errno('enoent'), -2)
  assert.strictEqual(fuse.errno('nonsense'), -1)
})

test('the class has fuse-native\'s lifecycle and static methods', () => {
  const fuse = new Fuse('relative/mnt', {}, {})
  assert.strictEqual(fuse.mnt, require('path').resolve('relative/mnt'))
  for (const m of ['mount', 'unmount', 'open', 'close', 'errno']) assert.strictEqual(typeof fuse[m], 'function', m)
  for (const m of ['unmount', 'isConfigured', 'configure', 'unconfigure', 'beforeMount', 'beforeUnmount']) {
    assert.strictEqual(typeof Fuse[m], 'function', m)
  }
  assert.strictEqual(new Fuse('/m', {}, { timeout: false }).timeout, 0)
  assert.strictEqual(new Fuse('/m', {}, {}).timeout, 15000)
})

test('options become the daemon\'s mount options; others are named', () => {
  const { options, ignored } = mountOptions({
    allowOther: true, defaultPermissions: true, fsname: 'x', attrTimeout: 2, ro: false,
    debug: true, force: true, mkdir: true, displayFolder: 'F', autoCache: true, blksize: 512
  })
  assert.strictEqual(options, 'default_permissions,allow_other,fsname=x,attr_timeout=2')
  assert.deepStrictEqual(ignored.sort(), ['autoCache', 'blksize'])
  assert.strictEqual(mountOptions({}).options, 'no_default_permissions')
})

test('per-operation timeouts follow fuse-native\'s timeout option', () => {
  assert.strictEqual(timeoutFor(undefined, 'read'), 15000)
  assert.strictEqual(timeoutFor(false, 'read'), 0)
  assert.strictEqual(timeoutFor(500, 'read'), 500)
  assert.strictEqual(timeoutFor({ default: 100, read: 7, write: false }, 'read'), 7)
  assert.strictEqual(timeoutFor({ default: 100, read: 7, write: false }, 'write'), 0)
  assert.strictEqual(timeoutFor({ default: 100 }, 'open'), 100)
})

test('an operation answers by callback, promise or return value', async () => {
  const ops = {
    cb: (a, cb) => process.nextTick(cb, 0, a + 1),
    syncCb: (a, cb) => cb(Fuse.ENOENT),
    asyncForm: async (a) => a * 2,
    asyncFail: async () => { throw Object.assign(new Error('x'), { code: 'EACCES' }) },
    nodeError: (a, cb) => require('fs').stat('/does/not/exist', (err) => cb(err)),
    promiseReturning: (a) => Promise.resolve(a + 10),
    thrower: () => { throw new Error('bug') },
    throwsErrno: () => { throw Fuse.EEXIST },
    twice: (a, cb) => { cb(0, 1); cb(0, 2) },
    count: (a, cb) => cb(a),
    asyncCount: async (a) => a
  }
  const logged = []
  const log = (t) => logged.push(t)
  assert.deepStrictEqual(await invoke(ops, 'cb', [1]), { errno: 0, values: [2] })
  assert.deepStrictEqual(await invoke(ops, 'syncCb', [1]), { errno: 2, values: [] })
  assert.deepStrictEqual(await invoke(ops, 'asyncForm', [4]), { errno: 0, values: [8] })
  assert.deepStrictEqual(await invoke(ops, 'asyncFail', []), { errno: 13, values: [] })
  assert.deepStrictEqual(await invoke(ops, 'nodeError', [0]), { errno: 2, values: [] })
  assert.deepStrictEqual(await invoke(ops, 'promiseReturning', [1]), { errno: 0, values: [11] })
  assert.deepStrictEqual(await invoke(ops, 'thrower', [], { log }), { errno: 5, values: [] })
  assert.match(logged[0], /operation thrower threw Error: bug/)
  assert.deepStrictEqual(await invoke(ops, 'throwsErrno', [], { log }), { errno: 17, values: [] })
  assert.strictEqual(logged.length, 1, 'an errno thrown on purpose is not logged')
  assert.deepStrictEqual(await invoke(ops, 'twice', [0]), { errno: 0, values: [1] })
  assert.deepStrictEqual(await invoke(ops, 'count', [7], { counts: true }), { errno: 0, values: [7] })
  assert.deepStrictEqual(await invoke(ops, 'count', [-13], { counts: true }), { errno: 13, values: [] })
  assert.deepStrictEqual(await invoke(ops, 'asyncCount', [3], { counts: true }), { errno: 0, values: [3] })
})

test('an operation that never answers fails with ETIMEDOUT after its timeout', async () => {
  const ops = { hang: (cb) => {} }
  const t0 = Date.now()
  assert.deepStrictEqual(await invoke(ops, 'hang', [], { timeoutMs: 50 }), { errno: 110, values: [] })
  assert.ok(Date.now() - t0 >= 45)
})

// One op through the dispatcher, as the daemon sends it.
function runOp (ops, op, options = {}) {
  const bound = new Bound(ops, { log: () => {}, ...options })
  return new Dispatcher(bound, '99').run({ id: '1', ...op }, '5')
}

test('without getattr the root is a directory and anything else EPERM, as in fuse-native', async () => {
  const root = await runOp({}, { op: 'getattr', getattr: { path: Buffer.from('/') } })
  assert.strictEqual(root.getattr.attr.mode, 0o40755)
  assert.strictEqual(root.getattr.attr.size, 4096)
  const other = await runOp({}, { op: 'getattr', getattr: { path: Buffer.from('/x') } })
  assert.strictEqual(other.posix_errno, 1)
})

test('stats take Dates, milliseconds or BigInt nanoseconds; nlink defaults to 1', async () => {
  const stat = { mode: 0o100644, size: 3, mtime: new Date(1500), atime: 2500.5, ctimeNs: 3000000007n }
  const r = await runOp({ getattr: (p, cb) => cb(0, stat) }, { op: 'getattr', getattr: { path: Buffer.from('/f') } })
  const a = r.getattr.attr
  assert.deepStrictEqual([a.mode, a.size, a.nlink], [0o100644, 3, 1])
  assert.deepStrictEqual(a.mtime, { sec: '1', nsec: 500000000 })
  assert.deepStrictEqual(a.atime, { sec: '2', nsec: 500500000 })
  assert.deepStrictEqual(a.ctime, { sec: '3', nsec: 7 })
  assert.strictEqual(a.ino, undefined, 'st_ino only with useIno')
})

test('uid, gid and umask options override every file\'s', async () => {
  const ops = { getattr: (p, cb) => cb(0, { mode: 0o100777, uid: 5, gid: 6, mtime: 0 }) }
  const r = await runOp(ops, { op: 'getattr', getattr: { path: Buffer.from('/f') } }, { uid: 7, gid: 8, umask: '022' })
  assert.deepStrictEqual([r.getattr.attr.mode, r.getattr.attr.uid, r.getattr.attr.gid], [0o100755, 7, 8])
})

test('read hands a zeroed buffer of the size asked, and never sends more', async () => {
  let seen
  const ops = { read: (p, fd, buf, len, pos, cb) => { seen = [p, fd, buf.length, len, pos, buf.every((b) => b === 0)]; buf.write('abcdef'); cb(100) } }
  const r = await runOp(ops, { op: 'read', read: { path: Buffer.from('/f'), fh: '3', offset: '10', size: 4 } })
  assert.deepStrictEqual(seen, ['/f', 3, 4, 4, 10, true])
  assert.strictEqual(r.read.data.toString(), 'abcd')
})

test('utimens gets milliseconds, and the current time for an omitted one', async () => {
  let seen
  const ops = {
    getattr: (p, cb) => cb(0, { mode: 0o100644, atime: 1000, mtime: 2000, ctime: 3000 }),
    utimens: (p, atime, mtime, cb) => { seen = [atime, mtime]; cb(0) }
  }
  await runOp(ops, { op: 'utimens', utimens: { path: Buffer.from('/f'), atime: { kind: 2, time: { sec: '5', nsec: 250000000 } } } })
  assert.deepStrictEqual(seen, [5250, 2000])
})

test('Fuse.context() tells the caller inside an operation, through its callbacks', async () => {
  let inside
  const ops = {
    access: (p, mode, cb) => setImmediate(() => { inside = Fuse.context(); cb(0) })
  }
  await runOp(ops, { op: 'access', caller: { uid: 1001, gid: 1002, pid: 33, umask: 0o22, groups: [4, 5] }, access: { path: Buffer.from('/f'), mask: 4 } })
  assert.deepStrictEqual(inside, { uid: 1001, gid: 1002, pid: 33, umask: 0o22, groups: [4, 5], mountId: '5' })
  assert.strictEqual(Fuse.context(), null)
})

test('getxattr answering null is ENODATA; listxattr names are NUL-terminated', async () => {
  const ops = {
    getxattr: (p, name, position, cb) => cb(0, name === 'user.a' ? Buffer.from('v') : null),
    listxattr: (p, cb) => cb(0, ['user.a', 'user.b'])
  }
  const a = await runOp(ops, { op: 'getxattr', getxattr: { path: Buffer.from('/f'), name: Buffer.from('user.a') } })
  assert.strictEqual(a.xattr.data.toString(), 'v')
  const none = await runOp(ops, { op: 'getxattr', getxattr: { path: Buffer.from('/f'), name: Buffer.from('user.z') } })
  assert.strictEqual(none.posix_errno, 61)
  const list = await runOp(ops, { op: 'listxattr', listxattr: { path: Buffer.from('/f') } })
  assert.strictEqual(list.xattr.data.toString(), 'user.a\0user.b\0')
})

test('readdir sends complete stats as attributes and partial ones as types', async () => {
  const ops = {
    readdir: (p, cb) => cb(0, ['.', '..', 'a', 'b'], [{}, {}, { mode: 0o100644, mtime: new Date(0) }, { mode: 0o40755 }])
  }
  const r = await runOp(ops, { op: 'readdir', readdir: { path: Buffer.from('/'), fh: '0' } })
  const entries = r.readdir.entries
  assert.deepStrictEqual(entries.map((e) => e.name.toString()), ['a', 'b'])
  assert.strictEqual(entries[0].attr.mode, 0o100644)
  assert.strictEqual(entries[1].attr, undefined)
  assert.strictEqual(entries[1].type, 0o40000)
  assert.strictEqual(r.readdir.eof, true)
})

test('notices need an absolute path without NUL', () => {
  const fuse = new Fuse('/m', {})
  assert.throws(() => fuse.notifyChanged('relative'), /absolute path/)
  assert.throws(() => fuse.notifyRemoved('/a\0b'), /NUL/)
  fuse.notifySubtreeChanged('/') // no stream open: dropped
})

test('names that are not UTF-8 survive the round trip through strings', () => {
  for (const bytes of [Buffer.from('caf\xe9', 'latin1'), Buffer.from('café'), Buffer.from([0xff, 0x41, 0xed, 0xa0, 0x80, 0xc0, 0x80]), Buffer.from('😀 plain')]) {
    const name = Fuse.fromBuffer(bytes)
    assert.ok(Fuse.toBuffer(name).equals(bytes), bytes.toString('hex'))
  }
  assert.strictEqual(Fuse.fromBuffer(Buffer.from('café')), 'café', 'UTF-8 decodes as usual')
  assert.strictEqual(Fuse.fromBuffer(Buffer.from('caf\xe9', 'latin1')), 'caf\udce9')
})
