'use strict'
// Ops that belong together (InitReply.ops_together in
// proto/filesystem.proto): the SDK asks the daemon for a listing's
// attributes 256 to a message, and a message of that many is answered
// whole, in order.
//
// Batches go, as the bytes gRPC would carry, to the Service's Execute
// handler (see service_harness.js); nothing is mounted.

const test = require('node:test')
const assert = require('node:assert')

const { serviceFor, call } = require('./service_harness')

const FILE = { mode: 0o100644, size: 3, mtime: new Date(5000), atime: new Date(5000), ctime: new Date(5000) }

test('the init reply asks for 256 ops together, and such a batch is answered whole', async () => {
  const service = serviceFor({ getattr: (path, cb) => cb(0, FILE) })
  const init = await call(service, 'Init', { mount_id: '1' })
  assert.strictEqual(init.ops_together, 256)
  const ops = []
  for (let i = 1; i <= 256; i++) {
    ops.push({ id: String(i), getattr: { path: Buffer.from('/f' + i) } })
  }
  const reply = await call(service, 'Execute', { mount_id: '1', ops })
  assert.deepStrictEqual(reply.results.map((r) => String(r.id)), ops.map((o) => o.id))
  assert.ok(reply.results.every((r) => !r.posix_errno && String(r.getattr.attr.size) === '3'))
})
