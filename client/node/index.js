'use strict'
// fusehost: fuse-native's API, served through fuse-hostd.
//
// A filesystem written for fuse-native runs with `require('fuse-native')`
// changed to `require('fusehost')`: the same `new Fuse(mnt, ops, opts)`,
// `fuse.mount(cb)`, `fuse.unmount(cb)`, `Fuse.unmount(mnt, cb)`, errno
// constants and operation signatures. Instead of linking libfuse into the
// process, the operations are served over gRPC on a private Unix socket and
// the running fuse-hostd daemon is asked to mount them; no native addon, no
// root. What differs, and why, is in the repository's README ("Writing a
// backend in Node.js").

const path = require('path')
const { ERRNO } = require('./lib/errno')
const { Bound, callers } = require('./lib/bound')
const { Dispatcher } = require('./lib/dispatch')
const { InvalidationHub, noticePath } = require('./lib/invalidations')
const { load } = require('./lib/protocol')
const { encode, decode } = require('./lib/names')
const { Service, startServer, stopServer, newInstance } = require('./lib/server')
const { Session } = require('./lib/session')
const { ControlClient, controlSocket, controlError, mountOptions } = require('./lib/control')

const U32 = 0xffffffff

// Fuses mounted by this process, unmounted when it is told to stop.
const mounted = new Set()

function log (text) {
  process.stderr.write('fusehost: ' + text + '\n')
}

function debugFromEnv () {
  return /\*|(^|,)fuse-bindings(,|$)/.test(process.env.DEBUG || '')
}

// InitReply.default_ttl_ms of the defaultTtl option (seconds).
function ttlMs (seconds) {
  if (seconds === undefined || seconds === null || seconds === false) return 0
  if (typeof seconds !== 'number' || !(seconds >= 0)) {
    throw new TypeError('defaultTtl must be a number of seconds >= 0')
  }
  return Math.min(Math.ceil(seconds * 1000), U32)
}

// A callback-or-promise helper: calls `cb` when given, else returns a
// promise (the async form of mount and unmount).
function settle (work, cb) {
  if (typeof cb === 'function') {
    work.then(() => process.nextTick(cb, null), (err) => process.nextTick(cb, err))
    return undefined
  }
  return work
}

// The option unsupportedXattrPrefixes: extended attribute names the
// filesystem does not keep, which the daemon answers EOPNOTSUPP itself.
// Checked here, where a mistake is the caller's, rather than ignored by the
// daemon (InitReply.unsupported_xattr_prefixes takes at most 16, of 1 to
// 255 bytes without NUL).
function xattrPrefixes (prefixes) {
  if (prefixes === undefined) return []
  const bad = () => new TypeError('unsupportedXattrPrefixes must be an array of at most 16 names of 1 to 255 bytes without NUL')
  if (!Array.isArray(prefixes) || prefixes.length > 16) throw bad()
  return prefixes.map((p) => {
    const b = encode(p)
    if (b.length < 1 || b.length > 255 || b.includes(0)) throw bad()
    return b
  })
}

// The backend a Fuse serves: the operations bound to its options, its
// dispatcher and its gRPC service. `name` is shown by `fuse-hostctl list`.
function makeBackend (ops, opts, hub, name) {
  const debug = Boolean(opts.debug) || debugFromEnv()
  const bound = new Bound(ops, { ...opts, debug, log })
  const dispatcher = new Dispatcher(bound, newInstance())
  const service = new Service(dispatcher, hub, {
    name,
    defaultTtlMs: ttlMs(opts.defaultTtl),
    posixAcl: Boolean(opts.posixAcl),
    unsupportedXattrPrefixes: xattrPrefixes(opts.unsupportedXattrPrefixes)
  })
  return { bound, dispatcher, service }
}

class Fuse {
  constructor (mnt, ops, opts = {}) {
    this.opts = opts
    this.mnt = path.resolve(mnt)
    this.ops = ops
    this.timeout = opts.timeout === false ? 0 : (opts.timeout || 15 * 1000)
    this.opened = false
    this.opening = false
    this.closed = false
    this.closing = false
    this._hub = new InvalidationHub()
    this._backend = makeBackend(ops, opts, this._hub, 'fusehost-node:' + path.basename(this.mnt))
    this._session = null
    this._opening = null
    this._closing = null
  }

  // Mounts (fuse-native: open). Calls back once the kernel has the mount,
  // or with an Error; without a callback, returns a promise.
  mount (cb) {
    return this.open(cb)
  }

  unmount (cb) {
    return this.close(cb)
  }

  open (cb) {
    if (!this._opening) this._opening = this._open()
    return settle(this._opening, cb)
  }

  close (cb) {
    if (!this._closing) this._closing = this._close()
    return settle(this._closing, cb)
  }

  async _open () {
    if (this.closing || this.closed) throw new Error('Resource is closed')
    this.opening = true
    const { options, unknown, ignored } = mountOptions(this.opts)
    if (ignored.length) log(`options with no use through fuse-hostd, ignored: ${ignored.join(', ')}`)
    if (unknown.length) log(`(unknown to fuse-native too: ${unknown.join(', ')})`)
    const session = new Session(this._backend.service, this.mnt, options,
      controlSocket(this.opts.controlSocket), log, () => this._gone())
    // Counted as mounted from before the request: the kernel has the mount
    // a moment before the daemon's answer arrives, and a stop signal in
    // between must still unmount it (close() waits for the opening).
    mounted.add(this)
    installStopHandlers()
    try {
      await session.start({ mkdir: Boolean(this.opts.mkdir), force: Boolean(this.opts.force) })
    } catch (e) {
      mounted.delete(this)
      throw e
    } finally {
      this.opening = false
    }
    this._session = session
    this.opened = true
  }

  async _close () {
    if (this._opening) await this._opening.catch(() => {})
    if (!this._session) {
      this.closed = true
      return
    }
    this.closing = true
    try {
      await this._session.stop()
    } finally {
      this.closing = false
    }
  }

  // The mount is gone (unmounted by anyone, or the daemon went away).
  _gone () {
    this.closed = true
    this.opened = false
    mounted.delete(this)
  }

  // fuse-native's: the (negative) errno of a name such as 'ENOENT'.
  errno (code) {
    return (code && Fuse[code.toUpperCase()]) || -1
  }

  // Invalidation notices (fusehost extension): the daemon and the kernel
  // cache attributes, listings, symlink targets and absent names; when
  // files change other than through this mount, say so and they drop what
  // they cached about `path` (absolute, "/" for the root; string or
  // Buffer). Any time, from anywhere, also inside an operation: notices
  // only queue. `exceptMount`: the mount that made the change itself
  // (Fuse.context().mountId in that operation) is not told.
  notifyChanged (p, { exceptMount = null } = {}) {
    this._hub.publish(load().CHANGED, noticePath(p), exceptMount === null ? null : String(exceptMount))
  }

  notifyRemoved (p, { exceptMount = null } = {}) {
    this._hub.publish(load().REMOVED, noticePath(p), exceptMount === null ? null : String(exceptMount))
  }

  notifySubtreeChanged (p, { exceptMount = null } = {}) {
    this._hub.publish(load().SUBTREE, noticePath(p), exceptMount === null ? null : String(exceptMount))
  }

  // Unmounts whatever fuse-hostd mounted at `mnt` (lazily, as fuse-native's
  // `fusermount -uz`), also a mount of another process of this user.
  static unmount (mnt, cb) {
    const control = new ControlClient(controlSocket())
    const work = control.unmount(path.resolve(mnt), true)
      .catch((e) => { throw controlError(`unmounting ${mnt} failed`, e) })
      .finally(() => control.close())
    return settle(work, cb)
  }

  // A path or name an operation got, as the bytes it stands for (fusehost
  // extension): names that are not UTF-8 reach operations with escapes
  // (lone surrogates), which this turns back into their bytes, e.g. for
  // Node's fs. And the other way round, for names read from the host.
  static toBuffer (name) {
    return encode(name)
  }

  static fromBuffer (buf) {
    return decode(buf)
  }

  // The caller of the operation running (fusehost extension): { uid, gid,
  // pid, umask, groups, mountId }, or null outside an operation. Follows
  // the operation through its callbacks and awaits.
  static context () {
    return callers.getStore() || null
  }

  // fuse-native's configuration helpers: nothing to configure here (the
  // daemon owns /dev/fuse); isConfigured says whether it answers.
  static isConfigured (cb) {
    const control = new ControlClient(controlSocket())
    const work = control.list().then(() => true, () => false).finally(() => control.close())
    if (typeof cb === 'function') {
      work.then((ok) => process.nextTick(cb, null, ok))
      return undefined
    }
    return work
  }

  static configure (cb) { return settle(Promise.resolve(), cb) }
  static unconfigure (cb) { return settle(Promise.resolve(), cb) }
  static beforeMount (cb) { return settle(Promise.resolve(), cb) }
  static beforeUnmount (cb) { return settle(Promise.resolve(), cb) }

  // Serves `ops` on `address` ("unix:/path.sock") without mounting, for
  // `fuse-hostctl mount unix:/path.sock MOUNTPOINT` (fusehost extension).
  // Resolves to { fuse, close() }; `fuse` takes the notices.
  static async serve (ops, address, opts = {}) {
    const fuse = new Fuse('/', ops, opts)
    const { service } = fuse._backend
    const server = await startServer(service, address)
    return { fuse, close: () => stopServer(server, service) }
  }
}

for (const [name, value] of Object.entries(ERRNO)) Fuse[name] = -value

// SIGINT, SIGTERM and SIGHUP unmount this process's mounts first (lazily if
// busy), then take their usual course: a mount never outlives its process
// with nobody serving it. Only when the program has no handler of its own
// for the signal.
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']
let handlersInstalled = false

function installStopHandlers () {
  if (handlersInstalled) return
  handlersInstalled = true
  for (const sig of STOP_SIGNALS) {
    if (process.listenerCount(sig) > 0) continue
    const handler = () => {
      process.removeListener(sig, handler)
      Promise.allSettled([...mounted].map((f) => f.close()))
        .then(() => process.kill(process.pid, sig))
    }
    process.on(sig, handler)
  }
}

module.exports = Fuse
