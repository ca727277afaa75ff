'use strict'
// does_nothing.js: which flush functions provably only call back, so that
// opens may answer noflush. Strict: anything else is taken to do something.

const test = require('node:test')
const assert = require('node:assert')

const { onlyCallsBack } = require('../lib/does_nothing')

test('functions that only call their last parameter with nothing or 0', () => {
  const yes = [
    function (path, fd, cb) { cb(0) },
    function flush (path, fd, cb) { return cb(0) },
    (path, fd, cb) => cb(0),
    (path, fd, cb) => { cb() },
    (p, f, done) => done(null),
    { flush (path, fd, cb) { cb(0) } }.flush,
    { flush: function (path, fd, cb) { cb(undefined); } }.flush
  ]
  for (const f of yes) assert.ok(onlyCallsBack(f), String(f))
})

test('anything else', () => {
  const no = [
    function (path, fd, cb) { cb(1) },
    function (path, fd, cb) { path.trim(); cb(0) },
    (path, fd, cb) => cb(0, 1),
    async (path, fd, cb) => cb(0),
    { async flush (path, fd, cb) { cb(0) } }.flush,
    function (path, fd, cb) { path(0) },
    (path, fd, cb) => { /* a comment */ cb(0) },
    function (path, fd, cb = () => {}) { cb(0) },
    (function (path, fd, cb) { cb(0) }).bind(null),
    function * (path, fd, cb) { cb(0) },
    (path, fd, cb) => cb,
    class { flush (path, fd, cb) { cb(0) } },
    'cb(0)',
    undefined
  ]
  for (const f of no) assert.ok(!onlyCallsBack(f), String(f))
})
