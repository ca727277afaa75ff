'use strict'
// Releases that come with other ops (InitReply.releases_after_reply in
// proto/filesystem.proto): the daemon sends a release, which nothing waits
// for, in the next message that goes out; this SDK answers it at once and
// runs it after, so that the other ops' reply never waits for it. Alone, or
// in a batch to run in order, a release is answered when it has run.
//
// Batches go, as the bytes gRPC would carry, to the Service's Execute
// handler (see service_harness.js); nothing is mounted.

const test = require('node:test')
const assert = require('node:assert')

const { serviceFor, call } = require('./service_harness')

const FILE = { mode: 0o100644, size: 0, mtime: new Date(5000), atime: new Date(5000), ctime: new Date(5000) }

// release answers only when `open()` is called; `released` counts answers.
function gated () {
  const fs = { released: 0, pending: [] }
  fs.open = () => { for (const go of fs.pending.splice(0)) go() }
  fs.ops = {
    getattr: (path, cb) => cb(0, FILE),
    release: (path, fd, cb) => {
      fs.pending.push(() => { fs.released++; cb(0) })
    }
  }
  return fs
}

const path = Buffer.from('/f')
const getattr = (id) => ({ id: String(id), getattr: { path } })
const release = (id) => ({ id: String(id), release: { path, fh: '7' } })
const errnos = (results) => results.map((r) => [String(r.id), r.posix_errno || 0])

test('a release among other ops does not hold their reply', async () => {
  const fs = gated()
  const service = serviceFor(fs.ops)
  const init = await call(service, 'Init', { mount_id: '1' })
  assert.strictEqual(init.releases_after_reply, true)
  const reply = await call(service, 'Execute', { mount_id: '1', ops: [getattr(1), release(2)] })
  assert.deepStrictEqual(errnos(reply.results), [['1', 0], ['2', 0]])
  assert.strictEqual(fs.released, 0)
  // It was started after the reply, and finishes when the filesystem says.
  await new Promise((resolve) => setImmediate(resolve))
  fs.open()
  assert.strictEqual(fs.released, 1)
})

test('alone, or in order, a release is answered when it has run', async () => {
  const fs = gated()
  const service = serviceFor(fs.ops)
  for (const batch of [{ ops: [release(1)] }, { in_order: true, ops: [release(2), getattr(3)] }]) {
    let answered = false
    const reply = call(service, 'Execute', { mount_id: '1', ...batch }).then((r) => { answered = true; return r })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.strictEqual(answered, false)
    fs.open()
    await reply
  }
  assert.strictEqual(fs.released, 2)
})
