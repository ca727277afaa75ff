'use strict'
// Filesystems in the shape of fuse-native's README example and of its own
// tests (read, write, links, statfs, xattrs, big files, mount and unmount),
// written against fuse-native's API, each mounted for real through
// fuse-hostd ($FUSE_HOSTD_CONTROL_SOCKET) and used with Node's fs from this
// same process, as fuse-native's tests do; plus what fusehost adds: the
// async form, per-operation timeouts, notices and Fuse.context().
//
// Only asynchronous fs calls touch the mounts: a synchronous one would
// block the thread that has to answer it (as with fuse-native).
//
// Run as root by tests/integration/test_node_sdk.py, with MOUNT_BASE a
// directory for mountpoints.

const test = require('node:test')
const assert = require('node:assert')
const fs = require('fs')
const path = require('path')
const { execFile } = require('child_process')
const { promisify } = require('util')

const Fuse = require('../../../client/node')

const run = promisify(execFile)
let counter = 0

function mountpoint () {
  const mnt = path.join(process.env.MOUNT_BASE, `mnt${++counter}`)
  fs.mkdirSync(mnt, { recursive: true })
  return mnt
}

// fuse-native's test helper: stat objects from a short description.
function stat (st) {
  return {
    mtime: st.mtime || new Date(),
    atime: st.atime || new Date(),
    ctime: st.ctime || new Date(),
    size: st.size !== undefined ? st.size : 0,
    mode: st.mode === 'dir' ? 16877 : (st.mode === 'file' ? 33188 : (st.mode === 'link' ? 41453 : st.mode)),
    uid: st.uid !== undefined ? st.uid : process.getuid(),
    gid: st.gid !== undefined ? st.gid : process.getgid()
  }
}

function simpleFs (tests = {}) {
  return {
    readdir: function (path, cb) {
      if (path === '/') return process.nextTick(cb, null, ['test'])
      return process.nextTick(cb, Fuse.ENOENT)
    },
    getattr: function (path, cb) {
      if (path === '/') return process.nextTick(cb, null, stat({ mode: 'dir', size: 4096 }))
      if (path === '/test') return process.nextTick(cb, null, stat({ mode: 'file', size: 11 }))
      return process.nextTick(cb, Fuse.ENOENT)
    },
    open: function (path, flags, cb) {
      return process.nextTick(cb, 0, 42)
    },
    release: function (path, fd, cb) {
      if (tests.release) tests.release(path, fd)
      return process.nextTick(cb, 0)
    },
    read: function (path, fd, buf, len, pos, cb) {
      const str = 'hello world'.slice(pos, pos + len)
      if (!str) return process.nextTick(cb, 0)
      buf.write(str)
      return process.nextTick(cb, str.length)
    }
  }
}

function mounted (mnt, ops, opts = {}) {
  const fuse = new Fuse(mnt, ops, opts)
  return new Promise((resolve, reject) => fuse.mount((err) => err ? reject(err) : resolve(fuse)))
}

function unmount (fuse) {
  return new Promise((resolve, reject) => fuse.unmount((err) => err ? reject(err) : resolve()))
}

function readRange (file, start, end) {
  return new Promise((resolve, reject) => {
    const chunks = []
    fs.createReadStream(file, { start, end })
      .on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
  })
}

test('the README example: hello world', async () => {
  const mnt = mountpoint()
  const fuse = await mounted(mnt, simpleFs(), { debug: false })
  try {
    assert.deepStrictEqual(await fs.promises.readdir(mnt), ['test'])
    assert.strictEqual(await fs.promises.readFile(path.join(mnt, 'test'), 'utf8'), 'hello world')
  } finally {
    await unmount(fuse)
  }
  assert.ok(!fs.readFileSync('/proc/self/mounts', 'utf8').includes(mnt + ' '), 'unmounted')
})

test('read: whole, again, and partial with offsets; release gets the fd', async () => {
  const mnt = mountpoint()
  const released = []
  const fuse = await mounted(mnt, simpleFs({ release: (p, fd) => released.push(fd) }))
  try {
    const file = path.join(mnt, 'test')
    assert.deepStrictEqual(await fs.promises.readFile(file), Buffer.from('hello world'))
    assert.deepStrictEqual(await fs.promises.readFile(file), Buffer.from('hello world'))
    assert.deepStrictEqual(await readRange(file, 0, 4), Buffer.from('hello'))
    assert.deepStrictEqual(await readRange(file, 6, 10), Buffer.from('world'))
  } finally {
    await unmount(fuse)
  }
  assert.ok(released.length > 0 && released.every((fd) => fd === 42), `release got ${released}`)
})

test('write: create, then the data arrives', async () => {
  const mnt = mountpoint()
  let created = false
  const data = Buffer.alloc(1024)
  let size = 0
  const ops = {
    readdir: (p, cb) => p === '/' ? process.nextTick(cb, null, created ? ['hello'] : [], []) : process.nextTick(cb, Fuse.ENOENT),
    truncate: (p, size, cb) => process.nextTick(cb, 0),
    getattr: (p, cb) => {
      if (p === '/') return process.nextTick(cb, null, stat({ mode: 'dir', size: 4096 }))
      if (p === '/hello' && created) return process.nextTick(cb, 0, stat({ mode: 'file', size }))
      return process.nextTick(cb, Fuse.ENOENT)
    },
    create: (p, flags, cb) => {
      assert.ok(!created, 'file not created yet')
      created = true
      process.nextTick(cb, 0, 42)
    },
    release: (p, fd, cb) => process.nextTick(cb, 0),
    write: (p, fd, buf, len, pos, cb) => {
      buf.slice(0, len).copy(data, pos)
      size = Math.max(pos + len, size)
      process.nextTick(cb, buf.length)
    }
  }
  const fuse = await mounted(mnt, ops)
  try {
    await fs.promises.writeFile(path.join(mnt, 'hello'), 'hello world')
    assert.deepStrictEqual(data.slice(0, size), Buffer.from('hello world'))
  } finally {
    await unmount(fuse)
  }
})

test('readlink: lstat, readlink and reading through the link', async () => {
  const mnt = mountpoint()
  const ops = {
    ...simpleFs(),
    readdir: (p, cb) => p === '/' ? process.nextTick(cb, null, ['hello', 'link']) : process.nextTick(cb, Fuse.ENOENT),
    readlink: (p, cb) => process.nextTick(cb, 0, 'hello'),
    getattr: (p, cb) => {
      if (p === '/') return process.nextTick(cb, null, stat({ mode: 'dir', size: 4096 }))
      if (p === '/hello') return process.nextTick(cb, null, stat({ mode: 'file', size: 11 }))
      if (p === '/link') return process.nextTick(cb, null, stat({ mode: 'link', size: 5 }))
      return process.nextTick(cb, Fuse.ENOENT)
    }
  }
  const fuse = await mounted(mnt, ops)
  try {
    assert.strictEqual((await fs.promises.lstat(path.join(mnt, 'link'))).size, 5)
    assert.strictEqual((await fs.promises.stat(path.join(mnt, 'hello'))).size, 11)
    assert.strictEqual(await fs.promises.readlink(path.join(mnt, 'link')), 'hello')
    assert.deepStrictEqual(await fs.promises.readFile(path.join(mnt, 'link')), Buffer.from('hello world'))
  } finally {
    await unmount(fuse)
  }
})

test('statfs: df works and sees the numbers; no getattr needed for the root', async () => {
  const mnt = mountpoint()
  const n = 1000000
  const ops = {
    statfs: (p, cb) => cb(0, { bsize: n, frsize: n, blocks: n, bfree: n, bavail: n, files: n, ffree: n, favail: n, fsid: n, flag: n, namemax: n })
  }
  const fuse = await mounted(mnt, ops)
  try {
    await run('df', [mnt])
    const st = await fs.promises.statfs(mnt)
    assert.deepStrictEqual([st.blocks, st.bfree, st.files], [n, n, n])
  } finally {
    await unmount(fuse)
  }
})

test('xattrs: set, get, list and remove with Buffers', async () => {
  const mnt = mountpoint()
  const attrs = new Map()
  const ops = {
    ...simpleFs(),
    getxattr: (p, name, position, cb) => process.nextTick(cb, 0, attrs.get(name) || null),
    setxattr: (p, name, value, position, flags, cb) => {
      attrs.set(name, Buffer.from(value))
      process.nextTick(cb, 0)
    },
    listxattr: (p, cb) => process.nextTick(cb, 0, [...attrs.keys()]),
    removexattr: (p, name, cb) => {
      attrs.delete(name)
      process.nextTick(cb, 0)
    }
  }
  const fuse = await mounted(mnt, ops)
  const file = path.join(mnt, 'test')
  try {
    await assert.rejects(run('getfattr', ['-n', 'user.attr', file]), 'no attribute yet')
    await run('setfattr', ['-n', 'user.attr', '-v', 'value', file])
    assert.strictEqual((await run('getfattr', ['--only-values', '-n', 'user.attr', file])).stdout, 'value')
    await run('setfattr', ['-n', 'user.other_attr', '-v', 'value2', file])
    await run('setfattr', ['-x', 'user.attr', file])
    assert.match((await run('getfattr', ['-d', file])).stdout, /^user\.other_attr="value2"$/m)
    assert.deepStrictEqual([...attrs.keys()], ['user.other_attr'])
  } finally {
    await unmount(fuse)
  }
})

test('big files: sizes and offsets beyond 4 GiB', async () => {
  const mnt = mountpoint()
  const G = 1024 * 1024 * 1024
  let size = 0
  const reads = []
  const writes = []
  const ops = {
    readdir: (p, cb) => p === '/' ? process.nextTick(cb, null, ['test']) : process.nextTick(cb, Fuse.ENOENT),
    getattr: (p, cb) => {
      if (p === '/') return process.nextTick(cb, null, stat({ mode: 'dir', size: 4096 }))
      if (p === '/test') return process.nextTick(cb, null, stat({ mode: 'file', size, mtime: new Date() }))
      return process.nextTick(cb, Fuse.ENOENT)
    },
    open: (p, flags, cb) => process.nextTick(cb, 0, 42),
    release: (p, fd, cb) => process.nextTick(cb, 0),
    read: (p, fd, buf, len, pos, cb) => {
      reads.push(pos)
      buf.fill(0)
      cb(Math.max(Math.min(len, size - pos), 0))
    },
    ftruncate: (p, fd, len, cb) => { size = len; cb(0) },
    truncate: (p, len, cb) => { size = len; cb(0) },
    write: (p, fd, buf, len, pos, cb) => {
      writes.push(pos)
      size = Math.max(pos + len, size)
      cb(len)
    }
  }
  const fuse = await mounted(mnt, ops, { directIo: true })
  const file = path.join(mnt, 'test')
  try {
    const fh = await fs.promises.open(file, 'r+')
    await fh.truncate(4 * G + 1)
    assert.strictEqual((await fh.stat()).size, 4 * G + 1)
    await fs.promises.truncate(file, 6 * G + 2)
    assert.strictEqual((await fh.stat()).size, 6 * G + 2)
    for (const at of [0, 4 * G, 6 * G]) await fh.write(Buffer.alloc(4096), 0, 4096, at)
    assert.strictEqual((await fh.stat()).size, 6 * G + 4096)
    for (const at of [0, 4 * G, 6 * G]) assert.strictEqual((await fh.read(Buffer.alloc(4096), 0, 4096, at)).bytesRead, 4096)
    await fh.close()
    assert.deepStrictEqual(writes, [0, 4 * G, 6 * G])
    assert.deepStrictEqual(reads, [0, 4 * G, 6 * G])
  } finally {
    await unmount(fuse)
  }
})

test('mount, unmount; mount another on the same place; bad mountpoints fail', async () => {
  const mnt = mountpoint()
  const first = await mounted(mnt, {}, { force: true })
  await unmount(first)
  const second = await mounted(mnt, {}, { force: true, debug: false })
  await unmount(second)
  await assert.rejects(mounted(path.join(mnt, '.does-not-exist'), {}), /Mountpoint does not exist/)
  await assert.rejects(mounted(__filename, {}), /Mountpoint is not a directory/)
  const made = path.join(mnt, 'made', 'here')
  await unmount(await mounted(made, {}, { mkdir: true }))
  assert.ok(fs.statSync(made).isDirectory())
})

test('Fuse.unmount(mnt, cb) unmounts; the Fuse then counts as closed', async () => {
  const mnt = mountpoint()
  const fuse = await mounted(mnt, simpleFs())
  await new Promise((resolve, reject) => Fuse.unmount(mnt, (err) => err ? reject(err) : resolve()))
  assert.ok(!fs.readFileSync('/proc/self/mounts', 'utf8').includes(mnt + ' '))
  for (let i = 0; i < 100 && !fuse.closed; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(fuse.closed, 'the Fuse learned that its mount is gone')
})

test('the async form: operations as async functions, errors thrown', async () => {
  const mnt = mountpoint()
  const ops = {
    async getattr (p) {
      if (p === '/') return stat({ mode: 'dir', size: 4096 })
      if (p === '/a') return stat({ mode: 'file', size: 3 })
      throw Object.assign(new Error('no'), { code: 'ENOENT' })
    },
    async readdir (p) { return ['a'] },
    async open (p, flags) { return 7 },
    async read (p, fd, buf, len, pos) { return buf.write('abc'.slice(pos, pos + len)) }
  }
  const fuse = await mounted(mnt, ops)
  try {
    assert.deepStrictEqual(await fs.promises.readdir(mnt), ['a'])
    assert.strictEqual(await fs.promises.readFile(path.join(mnt, 'a'), 'utf8'), 'abc')
    await assert.rejects(fs.promises.stat(path.join(mnt, 'b')), { code: 'ENOENT' })
  } finally {
    await unmount(fuse)
  }
})

test('an operation that never calls back fails with ETIMEDOUT after `timeout`', async () => {
  const mnt = mountpoint()
  const ops = { ...simpleFs(), open: (p, flags, cb) => {} }
  const fuse = await mounted(mnt, ops, { timeout: 300 })
  try {
    await assert.rejects(fs.promises.readFile(path.join(mnt, 'test')), { code: 'ETIMEDOUT' })
  } finally {
    await unmount(fuse)
  }
})

test('notices: a change announced shows at once despite long caching', async () => {
  const mnt = mountpoint()
  let size = 1
  const ops = {
    getattr: (p, cb) => {
      if (p === '/') return cb(0, stat({ mode: 'dir', size: 4096 }))
      if (p === '/f') return cb(0, stat({ mode: 'file', size }))
      cb(Fuse.ENOENT)
    }
  }
  const fuse = await mounted(mnt, ops, { defaultTtl: 600 })
  try {
    const file = path.join(mnt, 'f')
    assert.strictEqual((await fs.promises.stat(file)).size, 1)
    size = 2
    assert.strictEqual((await fs.promises.stat(file)).size, 1, 'cached for the lifetime given')
    fuse.notifyChanged('/f')
    let seen = 1
    for (let i = 0; i < 100 && seen !== 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      seen = (await fs.promises.stat(file)).size
    }
    assert.strictEqual(seen, 2)
  } finally {
    await unmount(fuse)
  }
})

test('Fuse.context() tells who asks', async () => {
  const mnt = mountpoint()
  let who = null
  const ops = {
    ...simpleFs(),
    open: (p, flags, cb) => {
      who = Fuse.context()
      cb(0, 1)
    }
  }
  const fuse = await mounted(mnt, ops, { allowOther: true })
  try {
    await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path.join(mnt, 'test')])
    assert.strictEqual(who.uid, 65534)
    assert.strictEqual(who.gid, 65534)
    assert.ok(who.pid > 0)
  } finally {
    await unmount(fuse)
  }
})
