'use strict'
// Serves a filesystem as a fuse-hostd backend: the gRPC FileSystem service
// (proto/filesystem.proto) and the server it runs on.
//
// Execute goes to the Dispatcher (dispatch.js); Init calls the filesystem's
// init and answers with what the backend supports and its instance; the
// Invalidations stream takes the filesystem's notices from its hub
// (invalidations.js). All of it runs on Node's one thread: operations that
// wait (for a disk, the network) let the others run meanwhile.

const crypto = require('crypto')
const fs = require('fs')
const grpc = require('@grpc/grpc-js')
const { load } = require('./protocol')
const { ERRNO } = require('./errno')
const { invoke } = require('./invoke')

const PROTOCOL_VERSION = 1
// Ops that belong together per message (InitReply.ops_together).
const OPS_TOGETHER = 256
const MESSAGE_LIMIT = 256 << 20
const SHUTTING_DOWN = 'backend is shutting down'

// A random nonzero backend instance (InitReply.instance), from the OS's
// generator: a restarted backend must not pick its predecessor's.
function newInstance () {
  for (;;) {
    const n = crypto.randomBytes(8).readBigUInt64BE()
    if (n !== 0n) return n.toString()
  }
}

// The FileSystem service of one Dispatcher (any number of mounts).
// `onInit(mountId)` / `onDestroy(mountId)` let a Fuse follow its mount.
class Service {
  constructor (dispatcher, hub, { name, defaultTtlMs = 0, posixAcl = false, unsupportedXattrPrefixes = [], onInit = null, onDestroy = null } = {}) {
    this.dispatcher = dispatcher
    this.hub = hub
    this.name = name
    this.defaultTtlMs = defaultTtlMs
    this.posixAcl = posixAcl
    this.unsupportedXattrPrefixes = unsupportedXattrPrefixes
    this.onInit = onInit
    this.onDestroy = onDestroy
    this.streams = new Set()
    this.streamsEnded = false
    this.destroyed = new Set()
  }

  // InitReply for `request`: calls the filesystem's init(cb), which may
  // refuse the mount with an errno.
  async initReply (request) {
    const bound = this.dispatcher.bound
    let errno = 0
    if (bound.has('init')) {
      errno = (await invoke(bound.ops, 'init', [], { timeoutMs: 0, log: bound.log })).errno
      if (errno > load().MAX_ERRNO) errno = ERRNO.EIO
    }
    if (!errno && this.onInit) this.onInit(String(request.mount_id || '0'))
    return {
      posix_errno: errno,
      protocol_version: PROTOCOL_VERSION,
      posix_locks: bound.has('lock'),
      flock_locks: bound.has('flock'),
      // Without it the daemon answers ENOTTY itself, sparing a round trip.
      ioctl: bound.has('ioctl'),
      // The Dispatcher honours Batch.in_order.
      runs_batches_in_order: true,
      // And fills in handles of earlier ops (Dispatcher.execute).
      takes_handles_from_earlier_ops: true,
      // The Dispatcher answers releases among other ops at once.
      releases_after_reply: true,
      // A listing's attributes 256 to a message rather than the daemon's
      // 64: each message costs the event loop as much as many ops (straight
      // to the loopback, a getattr took 27-33 us in messages of 256 against
      // 33-41 in messages of 64).
      ops_together: OPS_TOGETHER,
      // Without opendir and releasedir, readdir gets handle 0 anyway: the
      // daemon may list a directory with readdir alone.
      lists_by_path: !bound.has('opendir') && !bound.has('releasedir'),
      name: this.name,
      default_ttl_ms: this.defaultTtlMs,
      // Names the filesystem does not keep: the daemon answers them
      // EOPNOTSUPP without a message (ls -l then stops asking every file
      // for its security label).
      unsupported_xattr_prefixes: this.unsupportedXattrPrefixes,
      // As libfuse without the callbacks: the daemon answers ENOSYS and the
      // kernel stops asking (before each write, for each file ls -l lists).
      no_xattrs: ['getxattr', 'listxattr', 'setxattr', 'removexattr'].every((op) => !bound.has(op)),
      // The kernel enforces and caches the filesystem's POSIX ACLs, where
      // the daemon offers that.
      posix_acl: this.posixAcl && Boolean(request.posix_acl_capable),
      instance: this.dispatcher.instance
    }
  }

  // The handlers gRPC calls.
  handlers () {
    return {
      Init: (call, callback) => {
        this.initReply(call.request).then((reply) => callback(null, reply))
      },
      Destroy: (call, callback) => {
        this.destroy(String(call.request.mount_id || '0'))
        callback(null, {})
      },
      Execute: (call, callback) => {
        this.dispatcher.execute(call.request).then(
          (reply) => callback(null, reply),
          (e) => callback({ code: grpc.status.INTERNAL, details: String(e && e.message) }))
      },
      Invalidations: (call) => this.stream(call)
    }
  }

  // Tells onDestroy of `mountId`, once.
  destroy (mountId) {
    if (this.destroyed.has(mountId)) return
    this.destroyed.add(mountId)
    if (this.onDestroy) this.onDestroy(mountId)
  }

  // An Invalidations call: the filesystem's notices for its mount, until
  // the daemon cancels it or endStreams() runs.
  stream (call) {
    if (this.streamsEnded) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: SHUTTING_DOWN })
      return
    }
    let waiting = false // for 'drain'
    let scheduled = false
    const flush = () => {
      scheduled = false
      if (waiting) return
      const notices = subscription.take()
      if (notices === null) return
      for (const { kind, path } of notices) {
        if (!call.write({ kind, path })) waiting = true
      }
    }
    const onReady = () => {
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    }
    const subscription = this.hub.subscribe(undefined, String(call.request.mount_id || '0'), onReady)
    const entry = { call, subscription }
    this.streams.add(entry)
    call.on('drain', () => {
      waiting = false
      flush()
    })
    const end = () => {
      subscription.close()
      this.streams.delete(entry)
    }
    call.on('cancelled', end)
    call.on('close', end)
    call.on('error', end)
    // gRPC would otherwise send the headers with the first notice; the
    // daemon waits for them to know that from now on no change is missed.
    call.sendMetadata(new grpc.Metadata())
  }

  // Ends every open Invalidations stream (UNAVAILABLE) and refuses new ones:
  // a stream only ends when asked, so a server's shutdown would wait for it.
  endStreams () {
    this.streamsEnded = true
    for (const { call, subscription } of this.streams) {
      subscription.close()
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: SHUTTING_DOWN })
    }
    this.streams.clear()
  }
}

// The socket path of a "unix:" address, or null.
function socketPath (address) {
  if (!address.startsWith('unix:')) return null
  let p = address.slice('unix:'.length)
  if (p.startsWith('//')) p = p.slice(2)
  return p
}

// Starts a gRPC server for `service` on `address` ("unix:/path" or
// "host:port"); resolves to the server. A Unix socket is made owner-only
// (0600): whoever can connect can send operations in any caller's name.
function startServer (service, address) {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MESSAGE_LIMIT,
    'grpc.max_send_message_length': MESSAGE_LIMIT,
    // The daemon pings TCP connections every few seconds, idle or not
    // (mount option keepalive=); answer them rather than refuse them.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.max_ping_strikes': 0
  })
  server.addService(load().FileSystem.service, service.handlers())
  const sock = socketPath(address)
  if (sock !== null) {
    try {
      if (fs.lstatSync(sock).isSocket()) fs.unlinkSync(sock) // a stale socket of an earlier run
    } catch (e) {
      if (e.code !== 'ENOENT') throw e
    }
  }
  // The umask holds while the socket is bound (bindAsync binds before it
  // calls back), so the socket is never open to others.
  const oldUmask = sock !== null ? process.umask(0o177) : null
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
      if (oldUmask !== null) process.umask(oldUmask)
      if (err) return reject(new Error(`cannot listen on ${address}: ${err.message}`))
      resolve(server) // grpc-js serves once bound (no start() since 1.10)
    })
  })
}

// Stops a server of startServer(): open streams end at once, calls in
// progress get `graceMs`.
function stopServer (server, service, graceMs = 1000) {
  service.endStreams()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown()
      resolve()
    }, graceMs)
    server.tryShutdown(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

module.exports = { Service, startServer, stopServer, newInstance, socketPath }
