'use strict'
// Fan-out of a filesystem's invalidation notices (fuse.notifyChanged & co.)
// to the open Invalidations streams, as the other SDKs do
// (client/invalidation_hub.h, client/python/src/fusehost/_invalidations.py):
// each stream has its own bounded queue, filled by whoever notifies and
// drained by the stream's writer.
//
// Why a queue per stream rather than writing at once: the daemon may not
// be reading (gRPC flow control), and a notifier must never wait for it.
// The bound keeps a stalled daemon from costing unbounded memory: a stream
// further behind has its queue replaced by one SUBTREE notice for "/",
// which covers every later notice until the writer takes it.
//
// Everything here runs on Node's one thread; the writer is told through
// `onReady` (called after each push) that something is queued.

const { load } = require('./protocol')
const { encode } = require('./names')

class InvalidationHub {
  constructor () {
    this.subscriptions = new Set()
  }

  // Queues the notice on every open subscription but those of mount
  // `exceptMount` (when given); with none open it is dropped (the daemon
  // drops all it cached whenever it opens a stream, so nothing is lost).
  publish (kind, path, exceptMount = null) {
    for (const subscription of this.subscriptions) {
      if (exceptMount === null || subscription.mountId !== exceptMount) subscription.push(kind, path)
    }
  }

  // A queue for the stream of mount `mountId` (a decimal string, as
  // InvalidationsRequest carries it), holding at most `maxQueued` notices.
  subscribe (maxQueued = load().MAX_QUEUED_INVALIDATIONS, mountId = '0', onReady = null) {
    const subscription = new Subscription(this, Math.max(1, maxQueued), String(mountId), onReady)
    this.subscriptions.add(subscription)
    return subscription
  }
}

class Subscription {
  constructor (hub, maxQueued, mountId, onReady) {
    this.hub = hub
    this.maxQueued = maxQueued
    this.mountId = mountId
    this.onReady = onReady
    this.queue = []
    // The queue holds only SUBTREE "/" after an overflow.
    this.collapsed = false
    this.closed = false
  }

  push (kind, path) {
    if (this.closed || this.collapsed) return
    if (this.queue.length >= this.maxQueued) {
      this.queue = [{ kind: load().SUBTREE, path: '/' }]
      this.collapsed = true
    } else {
      this.queue.push({ kind, path })
    }
    if (this.onReady) this.onReady()
  }

  // The queued notices, oldest first, emptying the queue; null once closed.
  take () {
    if (this.closed) return null
    const notices = this.queue
    this.queue = []
    this.collapsed = false
    return notices
  }

  // Ends the subscription; queued notices are dropped.
  close () {
    this.closed = true
    this.queue = []
    this.hub.subscriptions.delete(this)
  }
}

// The path of a notice as the protocol's bytes: absolute, without NUL.
// Throws in the notifying code, where the mistake is.
function noticePath (path) {
  const bytes = encode(path)
  if (bytes.length === 0 || bytes[0] !== 0x2f) {
    throw new TypeError(`fusehost: a notice needs an absolute path inside the filesystem ("/" for the root), not ${JSON.stringify(String(path))}`)
  }
  if (bytes.includes(0)) throw new TypeError('fusehost: a notice\'s path contains NUL')
  return bytes
}

module.exports = { InvalidationHub, Subscription, noticePath }
