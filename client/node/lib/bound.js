'use strict'
// The filesystem's operations object (fuse-native's `ops`), bound once to
// the options it is served with, for the translations (ops_metadata.js,
// ops_files.js) to call: which operations exist, calling one with its
// timeout, and the conversions they all share (wire paths to strings,
// handles to numbers, stat objects to Attr messages).

const { AsyncLocalStorage } = require('async_hooks')
const { ERRNO } = require('./errno')
const { AttrPolicy } = require('./convert')
const { invoke, timeoutFor } = require('./invoke')
const { decode } = require('./names')
const { onlyCallsBack } = require('./does_nothing')

// The caller of the operation running, for Fuse.context(): each operation
// runs inside it, and the callbacks and promises it starts keep it.
const callers = new AsyncLocalStorage()

// What getattr answers when the filesystem has none, as in fuse-native: the
// root is an empty directory, anything else EPERM.
const DEFAULT_ROOT_STAT = { mode: 0o40755, size: 4096, mtime: new Date(0), atime: new Date(0), ctime: new Date(0) }

class Bound {
  // `options`: useIno, uid, gid, umask (attributes, see convert.js),
  // directIo, kernelCache (every open), getattrIsCheap, timeout
  // (fuse-native's), log(text).
  constructor (ops, options = {}) {
    this.ops = ops || {}
    this.options = options
    this.policy = new AttrPolicy(options)
    this.cheapGetattr = Boolean(options.getattrIsCheap)
    this.log = options.log || ((text) => process.stderr.write('fusehost: ' + text + '\n'))
    this.timeouts = new Map()
    // Opens then answer noflush (ops_files.js).
    this.flushDoesNothing = !this.has('flush') || onlyCallsBack(this.ops.flush)
  }

  has (name) {
    return typeof this.ops[name] === 'function'
  }

  // Calls operation `name` with `args` (fuse-native's, without the
  // callback); resolves to { errno, values }. `counts`: the answer is a
  // byte count or a negative errno (read, write, copyFileRange).
  call (name, args, counts = false) {
    let timeoutMs = this.timeouts.get(name)
    if (timeoutMs === undefined) {
      timeoutMs = timeoutFor(this.options.timeout, name)
      this.timeouts.set(name, timeoutMs)
    }
    return invoke(this.ops, name, args, { timeoutMs, counts, log: this.log })
  }

  // A wire path as the string operations get (names.js: bytes that are
  // not UTF-8 survive as escapes); null for the empty path of a file whose
  // name is gone (unlinked or renamed away while open).
  path (raw) {
    return raw && raw.length ? decode(raw) : null
  }

  text (raw) {
    return raw ? decode(raw) : ''
  }

  // A handle as fuse-native passes it: a number (a BigInt beyond 2^53,
  // so that a handle comes back exactly as it was given).
  fh (raw) {
    if (raw === undefined || raw === null) return 0
    const n = Number(raw)
    return Number.isSafeInteger(n) ? n : BigInt(raw)
  }

  // The optional handle of getattr, chmod, chown, truncate and utimens:
  // set when the kernel asked through an open file.
  optFh (req) {
    return req.fh === undefined || req.fh === null ? null : this.fh(req.fh)
  }

  attr (stat) {
    return this.policy.attr(stat)
  }

  // { errno, attr } of getattr of `path`: through fgetattr when asked
  // through an open file (fh not null) and the filesystem has it.
  async getattrOf (path, fh) {
    let answer
    if (fh !== null && this.has('fgetattr')) {
      answer = await this.call('fgetattr', [path, fh])
    } else if (this.has('getattr')) {
      answer = await this.call('getattr', [path])
    } else if (path === '/') {
      answer = { errno: 0, values: [DEFAULT_ROOT_STAT] }
    } else {
      answer = { errno: ERRNO.EPERM, values: [] }
    }
    if (answer.errno) return { errno: answer.errno }
    try {
      return { errno: 0, attr: this.attr(answer.values[0]) }
    } catch (e) {
      this.log(`getattr of ${path}: ${e.message}; answering EIO`)
      return { errno: ERRNO.EIO }
    }
  }

  // The Attr of `path` after an operation, or null when getattr fails (the
  // operation itself succeeded; the daemon then asks on its own).
  async attrOf (path, fh) {
    if (path === null && fh === null) return null
    const { errno, attr } = await this.getattrOf(path, fh)
    return errno ? null : attr
  }
}

module.exports = { Bound, callers }
