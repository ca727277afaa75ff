'use strict'
// The options that tell the daemon how a filesystem keeps extended
// attributes (fusehost extensions): unsupportedXattrPrefixes, names the
// daemon answers EOPNOTSUPP itself, and posixAcl, ACLs the kernel enforces
// and caches (InitReply in proto/filesystem.proto). Init goes, as the bytes
// gRPC would carry, to the Service of a Fuse that is never mounted.

const test = require('node:test')
const assert = require('node:assert')

const Fuse = require('..')
const { call } = require('./service_harness')

function initOf (opts, request = { mount_id: '1', posix_acl_capable: true }) {
  const fuse = new Fuse('/nonexistent', { getattr: (p, cb) => cb(Fuse.ENOENT) }, opts)
  return call(fuse._backend.service, 'Init', request)
}

test('by default the init reply declares no prefix unsupported and no ACLs', async () => {
  const init = await initOf({})
  assert.deepStrictEqual(init.unsupported_xattr_prefixes || [], [])
  assert.strictEqual(init.posix_acl, false)
  assert.strictEqual(init.no_xattrs, true)
})

test('unsupportedXattrPrefixes reach the init reply as bytes, strings or Buffers', async () => {
  const init = await initOf({ unsupportedXattrPrefixes: ['security.selinux', Buffer.from('user.\xff', 'latin1')] })
  assert.deepStrictEqual(init.unsupported_xattr_prefixes.map((b) => Buffer.from(b)),
    [Buffer.from('security.selinux'), Buffer.from([0x75, 0x73, 0x65, 0x72, 0x2e, 0xff])])
})

test('prefixes the daemon would ignore are refused when the Fuse is made', () => {
  const make = (prefixes) => new Fuse('/nonexistent', {}, { unsupportedXattrPrefixes: prefixes })
  for (const bad of ['security.', [''], ['a\0b'], ['x'.repeat(256)], new Array(17).fill('user.')]) {
    assert.throws(() => make(bad), TypeError, JSON.stringify(bad))
  }
  make(new Array(16).fill('user.'))
  make(['x'.repeat(255)])
})

test('a filesystem without xattr operations says it keeps none', async () => {
  const init = (ops) => call(new Fuse('/nonexistent', ops, {})._backend.service, 'Init', { mount_id: '1' })
  const getattr = (p, cb) => cb(Fuse.ENOENT)
  assert.strictEqual((await init({ getattr })).no_xattrs, true)
  assert.strictEqual((await init({ getattr, getxattr: (p, n, cb) => cb(0, null) })).no_xattrs, false)
  assert.strictEqual((await init({ getattr, setxattr: (p, n, v, pos, f, cb) => cb(0) })).no_xattrs, false)
})

test('posixAcl is declared only where the daemon offers it', async () => {
  assert.strictEqual((await initOf({ posixAcl: true })).posix_acl, true)
  assert.strictEqual((await initOf({ posixAcl: true }, { mount_id: '1' })).posix_acl, false)
})
