'use strict'
// One mount of a Fuse through fuse-hostd, from start to end:
//   1. the mountpoint is checked (and made, with `mkdir`; a dead mount on
//      it is detached first, with `force`);
//   2. the filesystem is served on a private Unix socket (a fresh 0700
//      directory under $XDG_RUNTIME_DIR or the temp dir);
//   3. Control.Mount(that socket, mountpoint, options): the daemon calls
//      Init (the filesystem's init) and then makes the mount;
//   4. the mount is watched: when it goes away (the daemon's Destroy, or
//      its List stops showing it, or the daemon is gone) the server stops;
//   5. stop(): unmount (lazily if busy), wait a little for Destroy, stop
//      serving, remove the socket's directory.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { ControlClient, controlError, grpcStatus } = require('./control')
const { startServer, stopServer } = require('./server')

const POLL_MS = 1000
const DESTROY_WAIT_MS = 5000
const UNREACHABLE_POLLS = 3

// Why the mountpoint cannot be used: fuse-native's messages.
async function checkMountpoint (mnt, { mkdir = false, force = false, control = null } = {}) {
  if (force && control) {
    // A mount whose backend is gone answers ENOTCONN: detach it first.
    try {
      await fs.promises.stat(mnt)
    } catch (e) {
      if (e.code === 'ENOTCONN' || e.code === 'ENXIO') {
        await control.unmount(mnt, true).catch(() => {})
      }
    }
  }
  let st
  try {
    st = await fs.promises.stat(mnt)
  } catch (e) {
    if (e.code !== 'ENOENT') throw e
    if (!mkdir) throw new Error('Mountpoint does not exist')
    await fs.promises.mkdir(mnt, { recursive: true })
    st = await fs.promises.stat(mnt)
  }
  if (!st.isDirectory()) throw new Error('Mountpoint is not a directory')
  const parent = await fs.promises.stat(path.join(mnt, '..')).catch(() => null)
  if (parent && parent.dev !== st.dev) throw new Error('Mountpoint in use')
}

function privateDir () {
  let base = process.env.XDG_RUNTIME_DIR
  try {
    if (!base) throw new Error('unset')
    fs.accessSync(base, fs.constants.W_OK | fs.constants.X_OK)
  } catch (_) {
    base = os.tmpdir()
  }
  return fs.mkdtempSync(path.join(base, 'fusehost-'))
}

class Session {
  // `service`: the Service to serve (its onInit/onDestroy are set here);
  // `onGone()`: told once when the mount is gone, however it went.
  constructor (service, mnt, options, controlSocketPath, log, onGone) {
    this.service = service
    this.mnt = mnt
    this.options = options
    this.control = new ControlClient(controlSocketPath)
    this.log = log
    this.onGone = onGone
    this.mountId = null
    this.server = null
    this.dir = null
    this.timer = null
    this.gone = false
    this.goneDone = null
    this.polling = false
    this.unreachable = 0
    this.destroyed = null
    this.destroyedPromise = new Promise((resolve) => { this.destroyed = resolve })
    service.onDestroy = (mountId) => {
      if (this.mountId === null || mountId === this.mountId) {
        this.destroyed()
        if (this.mountId !== null) this._gone()
      }
    }
  }

  async start ({ mkdir, force }) {
    try {
      await checkMountpoint(this.mnt, { mkdir, force, control: this.control })
      this.dir = privateDir()
      const address = 'unix:' + path.join(this.dir, 'backend.sock')
      this.server = await startServer(this.service, address)
      try {
        this.mountId = await this.control.mount(address, this.mnt, this.options)
      } catch (e) {
        throw controlError(`mounting ${this.mnt} failed`, e)
      }
    } catch (e) {
      await this._release()
      throw e
    }
    this.timer = setInterval(() => this._poll(), POLL_MS)
  }

  // Asks the daemon whether the mount is still there (Destroy normally
  // says so at once; this notices a daemon that went away).
  async _poll () {
    if (this.gone || this.polling) return
    this.polling = true
    try {
      const mounts = await this.control.list()
      this.unreachable = 0
      if (!mounts.some((m) => String(m.mount_id) === this.mountId)) this._gone()
    } catch (e) {
      this.unreachable = (this.unreachable || 0) + 1
      if (this.unreachable >= UNREACHABLE_POLLS) {
        this.log(`fuse-hostd is gone (${e.details || e.message}); the mount went with it`)
        this._gone()
      }
    } finally {
      this.polling = false
    }
  }

  // Releases everything once; resolves when that is done.
  _gone () {
    if (!this.gone) {
      this.gone = true
      this.goneDone = this._release().then(() => this.onGone())
    }
    return this.goneDone
  }

  // Unmounts (lazily if busy) and stops serving once the daemon is done.
  async stop () {
    if (this.gone) return this.goneDone
    let unmountError = null
    for (const lazy of [false, true]) {
      try {
        await this.control.unmount(this.mnt, lazy)
        unmountError = null
        break
      } catch (e) {
        if (e.code === grpcStatus.NOT_FOUND) { unmountError = null; break } // gone already
        unmountError = e
        if (e.code !== grpcStatus.FAILED_PRECONDITION) break // busy: then lazily
      }
    }
    if (unmountError) {
      const err = controlError(`unmounting ${this.mnt} failed`, unmountError)
      err.unmountFailure = true
      throw err
    }
    // Destroy follows the unmount (after the last close when it had to be
    // lazy); open files are served until then, within a bound.
    let timer
    await Promise.race([this.destroyedPromise, new Promise((resolve) => { timer = setTimeout(resolve, DESTROY_WAIT_MS) })])
    clearTimeout(timer)
    return this._gone()
  }

  async _release () {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    // Nothing connects to the socket any more: its directory goes first,
    // so that a process killed while the server winds down leaves nothing
    // behind in /tmp.
    if (this.dir !== null) {
      fs.rmSync(this.dir, { recursive: true, force: true })
      this.dir = null
    }
    if (this.server !== null) {
      const server = this.server
      this.server = null
      await stopServer(server, this.service)
    }
    this.control.close()
  }
}

module.exports = { Session, checkMountpoint }
