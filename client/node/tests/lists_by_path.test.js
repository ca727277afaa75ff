'use strict'
// Listing by path (InitReply.lists_by_path in proto/filesystem.proto): a
// filesystem without opendir and releasedir is listed with a readdir alone,
// which needs no handle; one that opens its directories says no, so that
// the daemon keeps calling opendir and releasedir. Nothing is mounted.

const test = require('node:test')
const assert = require('node:assert')

const { serviceFor, call } = require('./service_harness')

const DIR = { mode: 0o40755, size: 0, mtime: new Date(5000), atime: new Date(5000), ctime: new Date(5000) }

function names (extra = {}) {
  return {
    getattr: (path, cb) => cb(0, DIR),
    readdir: (path, cb) => cb(0, ['a', 'b']),
    ...extra
  }
}

async function initReply (ops) {
  const reply = await call(serviceFor(ops), 'Init', { mount_id: '1' })
  assert.strictEqual(reply.posix_errno || 0, 0)
  return reply
}

test('a filesystem without opendir lists by path, with readdir alone', async () => {
  const ops = names()
  assert.strictEqual((await initReply(ops)).lists_by_path, true)
  const reply = await call(serviceFor(ops), 'Execute', {
    mount_id: '1',
    ops: [{ id: '1', readdir: { path: Buffer.from('/') } }]
  })
  const listed = reply.results[0]
  assert.strictEqual(listed.posix_errno || 0, 0)
  assert.deepStrictEqual(listed.readdir.entries.map((e) => e.name.toString()), ['a', 'b'])
  assert.strictEqual(listed.readdir.eof, true)
})

test('a filesystem that opens its directories does not', async () => {
  const opening = names({ opendir: (path, flags, cb) => cb(0, 42), releasedir: (path, fd, cb) => cb(0) })
  assert.strictEqual((await initReply(opening)).lists_by_path || false, false)
  const releasing = names({ releasedir: (path, fd, cb) => cb(0) })
  assert.strictEqual((await initReply(releasing)).lists_by_path || false, false)
})
