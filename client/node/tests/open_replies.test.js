'use strict'
// What an open's reply tells the daemon beyond the handle
// (proto/filesystem.proto, OpenReply): noflush for a filesystem without
// flush (or whose flush only calls back) that keeps no POSIX locks, and a small file whole when the daemon
// asks for it (OpenRequest.contents_up_to) on a read-only open. Nothing is
// mounted.

const test = require('node:test')
const assert = require('node:assert')

const { serviceFor, call } = require('./service_harness')

const O_RDWR = 2

// Files named by their length ("/5" holds 5 bytes); records reads.
function files (extra = {}) {
  const reads = []
  const ops = {
    open: (path, flags, cb) => cb(0, 7),
    read: (path, fd, buf, len, pos, cb) => {
      reads.push([path, len, pos, fd])
      const n = Math.max(0, Math.min(len, Number(path.slice(1)) - pos))
      buf.fill(120, 0, n)
      cb(n)
    },
    ...extra
  }
  return { ops, reads }
}

async function open (ops, path, flags, upTo) {
  const reply = await call(serviceFor(ops), 'Execute', {
    mount_id: '1',
    ops: [{ id: '1', open: { path: Buffer.from(path), flags, contents_up_to: upTo } }]
  })
  const r = reply.results[0]
  assert.strictEqual(r.posix_errno || 0, 0)
  return r.open
}

test('a filesystem without flush, or whose flush only calls back, answers noflush', async () => {
  assert.strictEqual((await open(files().ops, '/5', 0, 0)).noflush, true)
  const trivial = files({ flush: (path, fd, cb) => cb(0) }).ops
  assert.strictEqual((await open(trivial, '/5', 0, 0)).noflush, true)
})

test('one whose flush does something, or with POSIX locks, does not', async () => {
  let flushed = 0
  const flushing = files({ flush: (path, fd, cb) => { flushed++; cb(0) } }).ops
  assert.ok(!(await open(flushing, '/5', 0, 0)).noflush)
  const locking = files({ lock: (...args) => args[args.length - 1](0) }).ops
  assert.ok(!(await open(locking, '/5', 0, 0)).noflush)
  const trivialWithLocks = files({ flush: (path, fd, cb) => cb(0), lock: (...args) => args[args.length - 1](0) }).ops
  assert.ok(!(await open(trivialWithLocks, '/5', 0, 0)).noflush)
  assert.strictEqual(flushed, 0)
})

test('a small file comes whole with its read-only open when asked', async () => {
  const { ops, reads } = files()
  const reply = await open(ops, '/5', 0, 100)
  assert.deepStrictEqual(reply.contents, Buffer.from('xxxxx'))
  assert.deepStrictEqual(reads, [['/5', 101, 0, 7]])
})

test('a file larger than asked for is left to the reads', async () => {
  const { ops, reads } = files()
  const reply = await open(ops, '/200', 0, 100)
  assert.strictEqual(reply.contents, undefined)
  assert.deepStrictEqual(reads, [['/200', 101, 0, 7]])
})

test('nothing is read when not asked, or for writing', async () => {
  const { ops, reads } = files()
  await open(ops, '/5', 0, 0)
  await open(ops, '/5', O_RDWR, 100)
  assert.deepStrictEqual(reads, [])
})
