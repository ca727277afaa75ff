'use strict'
// Translations of the operations on names and their metadata: each takes the
// protocol's request, calls the filesystem's operation with fuse-native's
// arguments, and answers the OpResult's reply.
//
// Ops here: getattr, readlink, mknod, mkdir, unlink, rmdir, symlink, rename,
// link, chmod, chown, truncate, utimens, the four xattr operations, statfs
// and access; and which of them carry the attributes of the directory that
// changed (OpResult.parent_attr).
//
// Every translation is `async fn(b, req) -> { errno } | { reply }`, with `b`
// the Bound filesystem (bound.js); `reply` holds the OpResult fields to set
// (none for a status operation). After a successful
// mknod/mkdir/symlink/link/chmod/chown/truncate/utimens the entry reply
// carries the file's attributes (from getattr), which saves the daemon a
// round trip; a failing getattr leaves them out (the daemon then asks).

const { ERRNO } = require('./errno')
const { encode } = require('./names')
const { load } = require('./protocol')
const { nsOfTimespec, msOfNs, nowNs, statfsReply } = require('./convert')

const ENOSYS = { errno: ERRNO.ENOSYS }
const OK = { reply: {} }
const RENAME_NOREPLACE = 1

// Operations that add or remove a name: the request's field naming the
// (new) path, and the old path's for a rename.
const NAME_CHANGES = {
  mknod: ['path', null],
  mkdir: ['path', null],
  symlink: ['path', null],
  link: ['new_path', null],
  create: ['path', null],
  unlink: ['path', null],
  rmdir: ['path', null],
  rename: ['new_path', 'old_path']
}

function parentOf (path) {
  const slash = path.lastIndexOf('/')
  return slash <= 0 ? '/' : path.slice(0, slash)
}

// Fills result.parent_attr (and old_parent_attr for a rename between
// directories) after `kind` changed a name, when getattr succeeds.
async function fillParentAttrs (b, kind, req, result) {
  const [newField, oldField] = NAME_CHANGES[kind]
  const path = b.path(req[newField])
  if (path === null) return
  const parent = parentOf(path)
  const attr = await b.attrOf(parent, null)
  if (attr) result.parent_attr = attr
  if (oldField !== null) {
    const old = b.path(req[oldField])
    if (old !== null && parentOf(old) !== parent) {
      const oldAttr = await b.attrOf(parentOf(old), null)
      if (oldAttr) result.old_parent_attr = oldAttr
    }
  }
}

// The entry reply after a change to `path`: set either way (the protocol
// sets the reply matching the op on every success).
async function entry (b, path, fh) {
  const attr = await b.attrOf(path, fh)
  return { reply: { entry: attr ? { attr } : {} } }
}

// The result of a status operation: success with nothing set, or its errno.
function status (answer) {
  return answer.errno ? { errno: answer.errno } : OK
}

async function getattr (b, req) {
  const { errno, attr } = await b.getattrOf(b.path(req.path), b.optFh(req))
  if (errno) return { errno }
  return { reply: { getattr: { attr } } }
}

async function readlink (b, req) {
  if (!b.has('readlink')) return ENOSYS
  const { errno, values } = await b.call('readlink', [b.path(req.path)])
  if (errno) return { errno }
  const target = values[0]
  const bytes = encode(target ?? '')
  return { reply: { readlink: { target: bytes } } }
}

// An operation that creates or changes `path` and answers its attributes.
async function changing (b, name, args, path, fh = null) {
  if (!b.has(name)) return ENOSYS
  const { errno } = await b.call(name, args)
  if (errno) return { errno }
  return entry(b, path, fh)
}

function mknod (b, req) {
  const path = b.path(req.path)
  return changing(b, 'mknod', [path, req.mode || 0, Number(req.rdev || 0)], path)
}

function mkdir (b, req) {
  const path = b.path(req.path)
  return changing(b, 'mkdir', [path, req.mode || 0], path)
}

async function unlink (b, req) {
  if (!b.has('unlink')) return ENOSYS
  return status(await b.call('unlink', [b.path(req.path)]))
}

async function rmdir (b, req) {
  if (!b.has('rmdir')) return ENOSYS
  return status(await b.call('rmdir', [b.path(req.path)]))
}

function symlink (b, req) {
  // fuse-native's order, libfuse's: symlink(target, new name).
  const path = b.path(req.path)
  return changing(b, 'symlink', [b.text(req.target), path], path)
}

async function rename (b, req) {
  const src = b.path(req.old_path)
  const dest = b.path(req.new_path)
  const flags = req.flags || 0
  // renameat2 (a fusehost extension) gets renameat2(2)'s flags; rename
  // cannot honour any, so a rename with flags is EINVAL (the protocol's
  // answer to a flag the filesystem does not know).
  if (b.has('renameat2')) return status(await b.call('renameat2', [src, dest, flags]))
  if (!b.has('rename')) return ENOSYS
  if (flags) return { errno: ERRNO.EINVAL }
  return status(await b.call('rename', [src, dest]))
}

function link (b, req) {
  // fuse-native's order, libfuse's: link(existing name, new name).
  const dest = b.path(req.new_path)
  return changing(b, 'link', [b.path(req.old_path), dest], dest)
}

function chmod (b, req) {
  const path = b.path(req.path)
  return changing(b, 'chmod', [path, req.mode || 0], path, b.optFh(req))
}

function chown (b, req) {
  // An unset id is chown(2)'s -1: leave it unchanged.
  const path = b.path(req.path)
  const uid = req.uid === undefined || req.uid === null ? -1 : req.uid
  const gid = req.gid === undefined || req.gid === null ? -1 : req.gid
  return changing(b, 'chown', [path, uid, gid], path, b.optFh(req))
}

function truncate (b, req) {
  const path = b.path(req.path)
  const fh = b.optFh(req)
  const size = Number(req.size || 0)
  if (fh !== null && b.has('ftruncate')) {
    return changing(b, 'ftruncate', [path, fh, size], path, fh)
  }
  return changing(b, 'truncate', [path, size], path, fh)
}

// One utimens time in nanoseconds: null for OMIT (left unchanged), now for
// NOW, else the Timespec (nsec beyond a second cut to 999,999,999).
function timeArg (ts, now) {
  const kind = ts ? ts.kind || 0 : load().OMIT
  if (kind === load().OMIT) return null
  if (kind === load().NOW) return now
  return nsOfTimespec(ts.time)
}

async function utimens (b, req) {
  const path = b.path(req.path)
  const fh = b.optFh(req)
  const now = nowNs()
  const atime = timeArg(req.atime, now)
  const mtime = timeArg(req.mtime, now)
  if (b.has('utimensNs')) {
    // The fusehost extension: BigInt nanoseconds, null for "leave as is".
    return changing(b, 'utimensNs', [path, atime, mtime], path, fh)
  }
  if (!b.has('utimens')) return ENOSYS
  // fuse-native's utimens takes milliseconds and has no "leave unchanged":
  // an omitted time is passed as the file's current one, as libfuse does.
  let a = atime
  let m = mtime
  if (a === null || m === null) {
    const current = await b.getattrOf(path, fh)
    if (current.errno) return { errno: current.errno }
    if (a === null) a = nsOfTimespec(current.attr.atime)
    if (m === null) m = nsOfTimespec(current.attr.mtime)
  }
  return changing(b, 'utimens', [path, msOfNs(a), msOfNs(m)], path, fh)
}

async function setxattr (b, req) {
  if (!b.has('setxattr')) return ENOSYS
  // fuse-native's arguments: (path, name, value, position, flags); position
  // is macOS's and always 0 here.
  const value = req.value || Buffer.alloc(0)
  return status(await b.call('setxattr', [b.path(req.path), b.text(req.name), value, 0, req.flags || 0]))
}

async function getxattr (b, req) {
  if (!b.has('getxattr')) return ENOSYS
  const { errno, values } = await b.call('getxattr', [b.path(req.path), b.text(req.name), 0])
  if (errno) return { errno }
  const value = values[0]
  // fuse-native: no value (null) means the attribute does not exist.
  if (value === null || value === undefined) return { errno: ERRNO.ENODATA }
  const data = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8')
  return { reply: { xattr: data.length ? { data } : {} } }
}

async function listxattr (b, req) {
  if (!b.has('listxattr')) return ENOSYS
  const { errno, values } = await b.call('listxattr', [b.path(req.path)])
  if (errno) return { errno }
  const names = Array.isArray(values[0]) ? values[0] : []
  const parts = []
  for (const name of names) {
    parts.push(encode(name), Buffer.alloc(1))
  }
  const data = Buffer.concat(parts)
  return { reply: { xattr: data.length ? { data } : {} } }
}

async function removexattr (b, req) {
  if (!b.has('removexattr')) return ENOSYS
  return status(await b.call('removexattr', [b.path(req.path), b.text(req.name)]))
}

// What statfs answers without the operation: libfuse's default.
const DEFAULT_STATFS = { bsize: 512, namemax: 255 }

async function statfs (b, req) {
  if (!b.has('statfs')) return { reply: { statfs: statfsReply(DEFAULT_STATFS) } }
  const { errno, values } = await b.call('statfs', [b.path(req.path)])
  if (errno) return { errno }
  return { reply: { statfs: statfsReply(values[0]) } }
}

async function access (b, req) {
  if (!b.has('access')) return ENOSYS // the kernel then allows every access
  return status(await b.call('access', [b.path(req.path), req.mask || 0]))
}

const TRANSLATIONS = {
  getattr,
  readlink,
  mknod,
  mkdir,
  unlink,
  rmdir,
  symlink,
  rename,
  link,
  chmod,
  chown,
  truncate,
  utimens,
  setxattr,
  getxattr,
  listxattr,
  removexattr,
  statfs,
  access
}

module.exports = { TRANSLATIONS, NAME_CHANGES, fillParentAttrs, status, ENOSYS, OK }
