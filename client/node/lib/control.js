'use strict'
// The daemon's control socket (proto/control.proto), as far as a Fuse needs
// it: mount, unmount, list; and fuse-native's options turned into the
// daemon's mount options.

const grpc = require('@grpc/grpc-js')
const { load } = require('./protocol')
const { encode } = require('./names')

const DEFAULT_CONTROL_SOCKET = '/run/fuse-hostd/control.sock'
const CONTROL_SOCKET_ENV = 'FUSE_HOSTD_CONTROL_SOCKET'
const RPC_TIMEOUT_MS = 10 * 1000
const MOUNT_TIMEOUT_MS = 60 * 1000

function controlSocket (explicit) {
  return explicit || process.env[CONTROL_SOCKET_ENV] || DEFAULT_CONTROL_SOCKET
}

// fuse-native's options that are mount options of the daemon, by the name
// the daemon knows them by. true: a flag; otherwise name=value.
const DAEMON_OPTIONS = {
  allowOther: 'allow_other',
  ro: 'ro',
  rw: 'rw',
  fsname: 'fsname',
  subtype: 'subtype',
  entryTimeout: 'entry_timeout',
  attrTimeout: 'attr_timeout',
  negativeTimeout: 'negative_timeout',
  maxWrite: 'max_write',
  noexec: 'noexec',
  nosuid: 'nosuid',
  nodev: 'nodev',
  noatime: 'noatime',
  exec: 'exec',
  suid: 'suid',
  dev: 'dev'
}

// Options this SDK takes itself (see index.js), and fuse-native's that
// have nothing to do here: displayFolder and name are macOS's; autoUnmount
// is always the case (the mount goes when the process does, see index.js).
const SDK_OPTIONS = new Set([
  'debug', 'force', 'mkdir', 'timeout', 'defaultPermissions', 'useIno', 'uid',
  'gid', 'umask', 'kernelCache', 'directIo', 'getattrIsCheap', 'defaultTtl',
  'posixAcl', 'unsupportedXattrPrefixes', 'controlSocket', 'displayFolder',
  'name', 'autoUnmount'
])

// libfuse options fuse-native passes on that fuse-hostd has no use for or
// does not allow: accepted, named in a warning, and left out.
const IGNORED_OPTIONS = new Set([
  'allowRoot', 'blkdev', 'blksize', 'maxRead', 'fd', 'userId', 'autoCache',
  'acAttrTimeout', 'noforget', 'remember', 'modules'
])

// { options: the daemon's option string, ignored: [names] } of a Fuse's
// options. Without defaultPermissions the daemon mounts with
// no_default_permissions, as libfuse leaves permission checks to the
// filesystem unless asked (the kernel then sends access()).
function mountOptions (opts) {
  const out = [opts.defaultPermissions ? 'default_permissions' : 'no_default_permissions']
  const ignored = []
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined || value === null || value === false) continue
    const name = DAEMON_OPTIONS[key]
    if (name !== undefined) {
      out.push(value === true ? name : `${name}=${value}`)
    } else if (!SDK_OPTIONS.has(key)) {
      ignored.push(key)
    }
  }
  return { options: out.join(','), ignored, unknown: ignored.filter((k) => !IGNORED_OPTIONS.has(k)) }
}

// A Control client of the daemon at `socketPath`, with promise methods.
class ControlClient {
  constructor (socketPath) {
    this.socketPath = socketPath
    this.client = new (load().Control)('unix:' + socketPath, grpc.credentials.createInsecure())
  }

  _call (method, request, timeoutMs) {
    return new Promise((resolve, reject) => {
      this.client[method](request, { deadline: Date.now() + timeoutMs }, (err, reply) => {
        if (err) reject(err)
        else resolve(reply)
      })
    })
  }

  // Resolves to the new mount's id (a decimal string).
  async mount (backend, mountpoint, options) {
    const reply = await this._call('Mount', {
      backend, mountpoint: encode(mountpoint), options
    }, MOUNT_TIMEOUT_MS)
    return String(reply.mount_id || '0')
  }

  unmount (mountpoint, lazy) {
    return this._call('Unmount', { mountpoint: encode(mountpoint), lazy }, RPC_TIMEOUT_MS)
  }

  async list () {
    const reply = await this._call('List', {}, RPC_TIMEOUT_MS)
    return reply.mounts || []
  }

  close () {
    this.client.close()
  }
}

// An Error for a failed control call, with the daemon's one-line reason.
function controlError (what, err) {
  const e = new Error(`${what}: ${err.details || err.message}`)
  e.code = err.code
  return e
}

module.exports = {
  ControlClient,
  controlSocket,
  controlError,
  mountOptions,
  DEFAULT_CONTROL_SOCKET,
  CONTROL_SOCKET_ENV,
  grpcStatus: grpc.status
}
