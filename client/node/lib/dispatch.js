'use strict'
// Runs the ops of one Batch against the filesystem and answers the
// BatchResult: the protocol's rules that hold for every operation, around
// the op-by-op translations (ops_metadata.js, ops_files.js). They mirror
// the C++ SDK's client/op_dispatcher.cc and the Python SDK's _dispatch.py:
//
// * every result echoes its op's id; an unset op, or one newer than this
//   SDK, answers ENOSYS;
// * an op carrying a handle issued by another backend instance (its
//   handle_instance neither 0 nor ours) answers EBADF without reaching the
//   filesystem: the number may name another file now;
// * errnos above the protocol's largest become EIO; a failed result
//   carries nothing but its id and errno, and one op's failure never
//   touches the others of its batch;
// * each operation runs with Fuse.context() telling its caller;
// * after an op that added or removed a name, when the filesystem says
//   getattr is cheap, the result carries the directory's attributes.
//
// The ops of a batch all start at once (the protocol lets a backend run
// them in any order); the reply goes out when the last has answered. A
// batch with in_order (changes the daemon answered early, which must reach
// the filesystem as they were made) runs its ops one after the other in the
// order given: each starts when the previous one has answered, whatever its
// answer (InitReply.runs_batches_in_order says this SDK does so). A
// release among other ops is answered at once and runs after
// (InitReply.releases_after_reply).

const { ERRNO } = require('./errno')
const { load } = require('./protocol')
const { callers } = require('./bound')
const metadata = require('./ops_metadata')
const files = require('./ops_files')

const TRANSLATIONS = { ...metadata.TRANSLATIONS, ...files.TRANSLATIONS }

// Ops that carry a handle the backend issued (fh, fh_in, fh_out): those on
// open files always, the attribute ops only when their optional fh is set.
const HANDLE_OPS = new Set([
  'read', 'write', 'flush', 'release', 'fsync', 'readdir', 'releasedir',
  'fsyncdir', 'lock', 'flock', 'fallocate', 'copy_file_range', 'lseek'])
const OPTIONAL_HANDLE_OPS = new Set(['getattr', 'chmod', 'chown', 'truncate', 'utimens', 'ioctl'])
// Ops whose one handle is their request's `fh`.
const FH_OPS = new Set([...HANDLE_OPS, ...OPTIONAL_HANDLE_OPS].filter((k) => k !== 'copy_file_range'))

class Dispatcher {
  // `bound`: the Bound filesystem; `instance`: this backend instance, a
  // nonzero decimal string (InitReply.instance).
  constructor (bound, instance) {
    this.bound = bound
    this.instance = instance
    this.maxErrno = load().MAX_ERRNO
    this.debug = Boolean(bound.options.debug)
  }

  // The BatchResult of `batch` (a promise).
  async execute (batch) {
    const ops = batch.ops || []
    const mountId = batch.mount_id || '0'
    if (batch.in_order) {
      // run() never rejects: a failed op answers its errno and the next
      // one runs all the same. An op may act on the handle an earlier one
      // returned (fh_from_op: the daemon sends a create it answered early
      // with the writes and release of the new file;
      // InitReply.takes_handles_from_earlier_ops).
      const results = []
      const handles = new Map()  // op id -> handle its create or open returned
      for (let op of ops) {
        const from = op.fh_from_op
        if (from && from !== '0') {
          const fh = handles.get(String(from))
          if (fh === undefined || !FH_OPS.has(op.op)) {
            results.push(withoutDefaults({ id: op.id || '0', posix_errno: ERRNO.EBADF }))
            continue
          }
          op = { ...op, fh_from_op: '0', [op.op]: { ...op[op.op], fh } }
        }
        const result = await this.run(op, mountId)
        results.push(result)
        if (result.posix_errno) continue
        const opened = result.create ? result.create.open : result.open
        if (opened) handles.set(String(op.id || '0'), opened.fh || '0')
      }
      return { results, instance: this.instance }
    }
    if (ops.length > 1) {
      // A release that comes with other ops is answered at once and runs
      // after (InitReply.releases_after_reply): the daemon sends releases,
      // which nothing waits for, with later ops, whose reply must not wait
      // for them. run() never rejects.
      const results = ops.map((op) => {
        const foreign = op.handle_instance && op.handle_instance !== '0' &&
          op.handle_instance !== this.instance  // answered EBADF as usual
        if ((op.op !== 'release' && op.op !== 'releasedir') || foreign) return this.run(op, mountId)
        setImmediate(() => { this.run(op, mountId) })
        return { id: op.id || '0' }
      })
      return { results: await Promise.all(results), instance: this.instance }
    }
    const results = await Promise.all(ops.map((op) => this.run(op, mountId)))
    return { results, instance: this.instance }
  }

  // The OpResult of one op (a promise that never rejects).
  async run (op, mountId) {
    const id = op.id || '0'
    const kind = op.op
    const translate = kind ? TRANSLATIONS[kind] : undefined
    if (!translate) return withoutDefaults({ id, posix_errno: ERRNO.ENOSYS })
    const req = op[kind] || {}
    const foreign = op.handle_instance
    // Or a handle an earlier op was to bring (fh_from_op), outside a batch
    // run in order (execute() fills those in).
    const fromOp = op.fh_from_op && op.fh_from_op !== '0'
    if (fromOp || (foreign && foreign !== '0' && foreign !== this.instance &&
        (HANDLE_OPS.has(kind) || (OPTIONAL_HANDLE_OPS.has(kind) && req.fh !== undefined && req.fh !== null)))) {
      return withoutDefaults({ id, posix_errno: ERRNO.EBADF })
    }
    const caller = op.caller || {}
    const context = {
      uid: caller.uid || 0,
      gid: caller.gid || 0,
      pid: caller.pid || 0,
      umask: caller.umask || 0,
      groups: caller.groups || [],
      mountId: String(mountId)
    }
    if (this.debug) this.bound.log(`op ${id} ${kind} ${describe(req)} caller=${context.uid}/${context.gid}/${context.pid}`)
    let outcome
    try {
      outcome = await callers.run(context, () => translate(this.bound, req))
    } catch (e) {
      // A fault of this SDK's own code, not of the filesystem (invoke()
      // catches those): report it, and fail only this op.
      this.bound.log(`${kind}: ${e && e.stack ? e.stack : e}`)
      outcome = { errno: ERRNO.EIO }
    }
    let errno = outcome.errno || 0
    if (errno) {
      if (errno > this.maxErrno || errno < 0) errno = ERRNO.EIO
      if (this.debug) this.bound.log(`op ${id} ${kind} -> errno ${errno}`)
      return withoutDefaults({ id, posix_errno: errno })
    }
    const result = { id, ...outcome.reply }
    if (this.bound.cheapGetattr && metadata.NAME_CHANGES[kind]) {
      await callers.run(context, () => metadata.fillParentAttrs(this.bound, kind, req, result))
    }
    return withoutDefaults(result)
  }
}

// `message` without the fields that hold their default value (0, "0",
// false, empty bytes), which protobufjs would otherwise put on the wire;
// messages stay, empty or not (an empty `entry {}` says "set"). In place.
function withoutDefaults (message) {
  for (const key of Object.keys(message)) {
    const value = message[key]
    if (value === 0 || value === '0' || value === false || value === undefined || value === null ||
        (Buffer.isBuffer(value) && value.length === 0)) {
      delete message[key]
    } else if (Array.isArray(value)) {
      for (const item of value) if (item && typeof item === 'object' && !Buffer.isBuffer(item)) withoutDefaults(item)
    } else if (typeof value === 'object' && !Buffer.isBuffer(value)) {
      withoutDefaults(value)
    }
  }
  return message
}

// A request for the debug log: paths as text, large data by its length.
function describe (req) {
  const parts = []
  for (const [key, value] of Object.entries(req)) {
    if (Buffer.isBuffer(value)) {
      parts.push(`${key}=${value.length > 64 ? `<${value.length} bytes>` : JSON.stringify(value.toString('utf8'))}`)
    } else if (value && typeof value === 'object') {
      parts.push(`${key}=${JSON.stringify(value)}`)
    } else {
      parts.push(`${key}=${value}`)
    }
  }
  return parts.join(' ')
}

module.exports = { Dispatcher }
