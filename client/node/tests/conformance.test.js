'use strict'
// Runs the SDK conformance cases (tests/conformance/cases, the files the C++
// and Python runners read) against this SDK, with Node's test runner.
//
// Batch cases: the scripted filesystem (scripted_fs.js) is served as a Fuse
// serves it (the same Bound, Dispatcher and Service), and the case's Batch
// goes, as the bytes gRPC would carry, to the service's Execute handler, so
// ops run as they do when served; only the socket is left out. The reply is
// serialized as gRPC would send it and compared, decoded, with the case's
// expectation, every field. Invalidation cases: notices go through
// fuse.notifyChanged & co., and each stream is a subscription of the Fuse's
// hub, as an Invalidations call holds it.
//
// The case files are protobuf text format; `protoc --encode` (Debian's
// protobuf-compiler, which the build uses anyway) turns each into the binary
// CaseFile this runner decodes.

const test = require('node:test')
const assert = require('node:assert')
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')
const protobuf = require('protobufjs')

const Fuse = require('../')
const { scripted } = require('./scripted_fs')
const { Bound } = require('../lib/bound')
const { Dispatcher } = require('../lib/dispatch')
const { InvalidationHub } = require('../lib/invalidations')
const { Service, newInstance } = require('../lib/server')
const { load } = require('../lib/protocol')

const REPO = path.resolve(__dirname, '..', '..', '..')
const CASE_DIR = path.join(REPO, 'tests', 'conformance', 'cases')
const SCHEMA = 'tests/conformance/conformance.proto'

// protobufjs types of the schema, imports resolved from the repository.
const root = new protobuf.Root()
root.resolvePath = (origin, target) => path.isAbsolute(target) ? target : path.join(REPO, target)
root.loadSync(SCHEMA, { keepCase: true })
const CaseFile = root.lookupType('fusehost.conformance.CaseFile')
const BatchResult = root.lookupType('fusehost.v1.BatchResult')
const Batch = root.lookupType('fusehost.v1.Batch')
const OBJECT = { longs: String, bytes: Buffer, defaults: false, oneofs: false }

function loadCases () {
  const files = fs.readdirSync(CASE_DIR).filter((f) => f.endsWith('.textproto')).sort()
  const batchCases = []
  const invalidationCases = []
  for (const file of files) {
    const binary = execFileSync('protoc', [`--encode=fusehost.conformance.CaseFile`, `-I${REPO}`, SCHEMA], {
      input: fs.readFileSync(path.join(CASE_DIR, file)),
      maxBuffer: 64 << 20
    })
    const caseFile = CaseFile.decode(binary)
    batchCases.push(...caseFile.batch_case)
    invalidationCases.push(...caseFile.invalidation_case)
  }
  return { files, batchCases, invalidationCases }
}

const { files, batchCases, invalidationCases } = loadCases()

// The service a Fuse would serve `spec` with (use_ino as the C++ SDK
// always does, so that both send the same attributes).
function serviceFor (spec, instance) {
  const bound = new Bound(scripted(spec), { useIno: true, getattrIsCheap: spec.getattr_is_cheap, log: () => {} })
  return new Service(new Dispatcher(bound, instance), new InvalidationHub(), { name: 'conformance' })
}

// Calls a unary handler as gRPC does: request bytes in, reply bytes out.
function callExecute (service, batchMessage) {
  const method = load().FileSystem.service.Execute
  const request = method.requestDeserialize(Buffer.from(Batch.encode(batchMessage).finish()))
  return new Promise((resolve, reject) => {
    service.handlers().Execute({ request }, (err, reply) => {
      if (err) reject(new Error(err.details || String(err)))
      else resolve(BatchResult.decode(method.responseSerialize(reply)))
    })
  })
}

// The limits README.md sets on cases: every node has times.
function checkRunnable (spec) {
  for (const node of spec.node) {
    for (const t of [node.attr && node.attr.atime, node.attr && node.attr.mtime, node.attr && node.attr.ctime]) {
      assert.ok(t && (Number(t.sec) || t.nsec), `${node.path}: every node needs atime, mtime and ctime`)
    }
  }
}

test('every case file has cases', () => {
  assert.ok(files.length > 0, `no case files in ${CASE_DIR}`)
  assert.ok(batchCases.length > 0 && invalidationCases.length > 0)
})

for (const c of batchCases) {
  test(`batch case ${c.name}`, async () => {
    const spec = protobuf.util.toObject
      ? root.lookupType('fusehost.conformance.ScriptedFileSystem').toObject(c.fs || {}, OBJECT)
      : c.fs
    checkRunnable(c.fs || { node: [] })
    const instance = Number(c.instance) ? String(c.instance) : newInstance()
    const reply = await callExecute(serviceFor(spec, instance), c.batch)
    if (Number(c.instance)) {
      assert.strictEqual(String(reply.instance), String(c.expected.instance), c.description)
    } else {
      assert.notStrictEqual(String(reply.instance), '0', 'the reply carries no instance')
    }
    const OpResult = root.lookupType('fusehost.v1.OpResult')
    const actual = new Map()
    for (const r of reply.results) {
      const id = String(r.id)
      assert.ok(!actual.has(id), `two results for op ${id}`)
      actual.set(id, OpResult.toObject(r, OBJECT))
    }
    assert.strictEqual(reply.results.length, c.batch.ops.length, c.description)
    for (const e of c.expected.results) {
      const want = OpResult.toObject(e, OBJECT)
      const id = String(want.id || 0)
      assert.ok(actual.has(id), `no result for op ${id}: ${c.description}`)
      assert.deepStrictEqual(normalize(actual.get(id)), normalize(want), `${c.description} (op ${id})`)
      actual.delete(id)
    }
    assert.strictEqual(actual.size, 0, `unexpected results: ${JSON.stringify([...actual.values()])}`)
  })
}

// A decoded message for comparison: ids as strings either way, Buffers as
// hex.
function normalize (value) {
  if (Buffer.isBuffer(value)) return 'bytes:' + value.toString('hex')
  if (Array.isArray(value)) return value.map(normalize)
  if (value && typeof value === 'object') {
    const out = {}
    for (const key of Object.keys(value).sort()) out[key] = normalize(value[key])
    return out
  }
  return value
}

const KINDS = { 0: 'notifyChanged', 1: 'notifyRemoved', 2: 'notifySubtreeChanged' }

function expand (runs) {
  const out = []
  for (const run of runs) {
    for (let i = 0; i < Math.max(run.repeat || 0, 1); i++) {
      out.push([run.kind || 0, Buffer.from(run.path || []).toString('hex')])
    }
  }
  return out
}

for (const c of invalidationCases) {
  test(`invalidation case ${c.name}`, () => {
    const fuse = new Fuse('/nowhere', {}, {})
    const hub = fuse._hub
    const streams = []
    c.step.forEach((step, i) => {
      const where = `${c.description}, step ${i}`
      if (step.subscribe) {
        const max = step.subscribe.max_queued !== undefined && step.subscribe.max_queued !== null &&
          Object.prototype.hasOwnProperty.call(step.subscribe, 'max_queued')
          ? step.subscribe.max_queued
          : undefined
        streams.push(hub.subscribe(max, String(step.subscribe.mount_id || 0)))
      } else if (step.notify) {
        const n = step.notify
        const opts = Object.prototype.hasOwnProperty.call(n, 'except_mount') && n.except_mount !== null
          ? { exceptMount: String(n.except_mount) }
          : {}
        for (let k = 0; k < Math.max(n.repeat || 0, 1); k++) fuse[KINDS[n.kind || 0]](Buffer.from(n.path), opts)
      } else if (step.take) {
        const taken = streams[step.take.stream || 0].take()
        if (step.take.closed) {
          assert.strictEqual(taken, null, where)
          return
        }
        assert.notStrictEqual(taken, null, where)
        const sent = taken.map(({ kind, path: p }) => [kind, Buffer.from(p).toString('hex')])
        assert.deepStrictEqual(sent, expand(step.take.expect), where)
      } else if (step.close !== undefined && step.close !== null && Object.prototype.hasOwnProperty.call(step, 'close')) {
        streams[step.close].close()
      } else {
        assert.fail(`${where}: empty step`)
      }
    })
  })
}
