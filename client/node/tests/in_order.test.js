'use strict'
// Batches the daemon asks to run in order (Batch.in_order in
// proto/filesystem.proto): this SDK runs their ops one after the other, in
// the order given, each whatever the previous one's answer, and says so in
// its InitReply (runs_batches_in_order). Other batches still start all
// their ops at once.
//
// Each batch goes, as the bytes gRPC would carry, to the Service's Execute
// handler (as conformance.test.js sends them), and Init likewise; nothing
// is mounted.

const test = require('node:test')
const assert = require('node:assert')

const Fuse = require('../')
const { serviceFor, call } = require('./service_harness')

const SET = 2 // TimeSet.Kind
const FILE = { mode: 0o100644, size: 0, mtime: new Date(5000), atime: new Date(5000), ctime: new Date(5000) }
// How long each recorded change takes: long enough that ops started at
// once would overlap.
const SLOW_MS = 30

// A fuse-native filesystem whose chmod, chown and utimens record when they
// start and end, each answering after SLOW_MS; those named in `failing`
// answer EPERM. `meet`: each change first waits until `meet` changes have
// started (so that a batch finishes only if its ops run at once), failing
// with EIO if they have not within a second.
function recording ({ failing = [], meet = 0 } = {}) {
  const fs = { events: [], running: 0, overlapped: false, met: false }
  const waiting = []
  let started = 0
  const change = (name) => (path, ...args) => {
    const cb = args[args.length - 1]
    const go = () => {
      fs.running++
      if (fs.running > 1) fs.overlapped = true
      fs.events.push(['start', name, path])
      setTimeout(() => {
        fs.running--
        fs.events.push(['end', name, path])
        cb(failing.includes(name) ? Fuse.EPERM : 0)
      }, SLOW_MS)
    }
    if (!meet) return go()
    started++
    if (started === meet) {
      fs.met = true
      for (const wake of waiting.splice(0)) wake()
      return go()
    }
    const timer = setTimeout(() => cb(Fuse.EIO), 1000)
    waiting.push(() => { clearTimeout(timer); go() })
  }
  fs.ops = {
    getattr: (path, cb) => cb(0, FILE),
    chmod: change('chmod'),
    chown: change('chown'),
    utimens: change('utimens')
  }
  return fs
}

const REQUESTS = {
  chmod: (path) => ({ chmod: { path, mode: 0o600 } }),
  chown: (path) => ({ chown: { path, uid: 1000 } }),
  utimens: (path) => ({
    utimens: { path, atime: { kind: SET, time: { sec: '7' } }, mtime: { kind: SET, time: { sec: '7' } } }
  })
}

// The results of one batch of `names` ops on /f (ids 1, 2, ...).
async function execute (fs, names, inOrder) {
  const path = Buffer.from('/f')
  const batch = {
    mount_id: '1',
    in_order: inOrder,
    ops: names.map((name, i) => ({ id: String(i + 1), ...REQUESTS[name](path) }))
  }
  const reply = await call(serviceFor(fs.ops), 'Execute', batch)
  assert.strictEqual(String(reply.instance), '5')
  return reply.results
}

function sequential (names) {
  return names.flatMap((name) => [['start', name, '/f'], ['end', name, '/f']])
}

const errnos = (results) => results.map((r) => [String(r.id), r.posix_errno || 0])

test('an in-order batch runs its ops one after the other, in the order given', async () => {
  for (const names of [['chmod', 'chown', 'utimens'], ['utimens', 'chown', 'chmod']]) {
    const fs = recording()
    const results = await execute(fs, names, true)
    assert.deepStrictEqual(fs.events, sequential(names))
    assert.strictEqual(fs.overlapped, false)
    assert.deepStrictEqual(errnos(results), [['1', 0], ['2', 0], ['3', 0]])
    for (const r of results) assert.strictEqual(r.result, 'entry')
  }
})

test('a failed op does not stop the rest of an in-order batch', async () => {
  const fs = recording({ failing: ['chown'] })
  const names = ['chmod', 'chown', 'utimens']
  const results = await execute(fs, names, true)
  assert.deepStrictEqual(fs.events, sequential(names))
  assert.strictEqual(fs.overlapped, false)
  assert.deepStrictEqual(errnos(results), [['1', 0], ['2', 1], ['3', 0]])
  assert.strictEqual(results[0].result, 'entry')
  assert.strictEqual(results[1].result, undefined)
  assert.strictEqual(results[2].result, 'entry')
})

test('the first and last op failing do not stop an in-order batch', async () => {
  const fs = recording({ failing: ['chmod', 'utimens'] })
  const names = ['chmod', 'chown', 'utimens', 'chmod']
  const results = await execute(fs, names, true)
  assert.deepStrictEqual(fs.events, sequential(names))
  assert.deepStrictEqual(errnos(results), [['1', 1], ['2', 0], ['3', 1], ['4', 1]])
})

test('a batch without in_order still starts its ops at once', async () => {
  const fs = recording({ meet: 3 })
  const results = await execute(fs, ['chmod', 'chown', 'utimens'], false)
  assert.strictEqual(fs.met, true)
  assert.strictEqual(fs.overlapped, true)
  assert.deepStrictEqual(errnos(results), [['1', 0], ['2', 0], ['3', 0]])
  assert.deepStrictEqual(fs.events.slice(0, 3).map((e) => e[0]), ['start', 'start', 'start'])
})

test('the InitReply says batches run in order', async () => {
  const reply = await call(serviceFor(recording().ops), 'Init', { mount_id: '1' })
  assert.strictEqual(reply.posix_errno || 0, 0)
  assert.strictEqual(reply.runs_batches_in_order, true)
})

// A fuse-native filesystem whose create hands out handles from 41 on; write
// and release record the handle they get. A create of /refused fails.
function files () {
  const fs = { calls: [], next: 40 }
  fs.ops = {
    getattr: (path, cb) => cb(0, FILE),
    create: (path, mode, cb) => {
      if (path === '/refused') return cb(Fuse.EEXIST)
      fs.calls.push(['create', path, ++fs.next])
      cb(0, fs.next)
    },
    write: (path, fd, buf, len, pos, cb) => { fs.calls.push(['write', path, fd]); cb(len) },
    release: (path, fd, cb) => { fs.calls.push(['release', path, fd]); cb(0) }
  }
  return fs
}

// A create of each path, and a write and release naming it (fh_from_op).
function fileOps (paths) {
  const ops = []
  for (const p of paths) {
    const path = Buffer.from(p)
    const create = String(ops.length + 1)
    ops.push({ id: create, create: { path, flags: 0o101, mode: 0o100644 } })
    ops.push({ id: String(ops.length + 1), fh_from_op: create, write: { path, data: Buffer.from('x') } })
    ops.push({ id: String(ops.length + 1), fh_from_op: create, release: { path } })
  }
  return ops
}

test('ops in order act on the handle of the earlier create they name', async () => {
  const fs = files()
  const service = serviceFor(fs.ops)
  const init = await call(service, 'Init', { mount_id: '1' })
  assert.strictEqual(init.takes_handles_from_earlier_ops, true)
  const reply = await call(service, 'Execute', { mount_id: '1', in_order: true, ops: fileOps(['/a', '/refused', '/b']) })
  assert.deepStrictEqual(reply.results.map((r) => r.posix_errno || 0),
    [0, 0, 0, Fuse.EEXIST, Fuse.EBADF, Fuse.EBADF, 0, 0, 0].map(Math.abs))
  assert.deepStrictEqual(fs.calls, [
    ['create', '/a', 41], ['write', '/a', 41], ['release', '/a', 41],
    ['create', '/b', 42], ['write', '/b', 42], ['release', '/b', 42]])

  // Outside a batch run in order nothing says which handle.
  const unordered = await call(service, 'Execute', { mount_id: '1', ops: fileOps(['/c']).slice(0, 2) })
  assert.deepStrictEqual(unordered.results.map((r) => [String(r.id), r.posix_errno || 0]),
    [['1', 0], ['2', Math.abs(Fuse.EBADF)]])
  assert.strictEqual(fs.calls.length, 7)
})
